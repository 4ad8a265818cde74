"""Extension fields of type ``customer``: a doctor's hospital (``pharma__hospital``).

Checked: storage (foreign key, SET NULL), form select and refusal, JSON 422 naming the field,
list display and filter, import by code or name with per-row errors, export by name, merge
re-pointing, and the company boundary.
"""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import delete, text

from core import fields, importer, merge
from core.models import Customer
from core.plugins import current
from core.tenancy import company_scope

KEY = "pharma__hospital"


def declared():
    return current().registry.fields_for("customer", ["pharma"])


def field():
    return next(f for f in declared() if f.key == KEY)


@pytest.fixture
def pharma(company):
    """A pharma company with two hospitals, a pharmacy and a doctor at the first hospital."""
    co = company(plugins=["sales", "pharma"])
    with company_scope(co.id):
        from core.db import db

        rows = {}
        for name, kind, code in [
            ("协和医院", "hospital", "H1"),
            ("人民医院", "hospital", "H2"),
            ("百姓药房", "pharmacy", "P1"),
            ("王医生", "doctor", "D1"),
        ]:
            rows[code] = Customer(name=name, kind=kind, code=code)
            db.session.add(rows[code])
        db.session.flush()
        fields.save(declared(), rows["D1"].id, {KEY: rows["H1"].id})
        db.session.commit()
        ids = {code: c.id for code, c in rows.items()}
    return co, ids


def test_declaration_is_a_foreign_key_set_null_and_indexed(app):
    column = fields.side_table("pharma", "customer").c.hospital
    (fk,) = column.foreign_keys
    assert fk.target_fullname == "customer.id" and fk.ondelete == "SET NULL"
    assert column.index
    assert field().kinds == ("hospital",)


def test_kinds_are_refused_on_other_types(app):
    from core.plugins.manifest import PluginError

    with pytest.raises(PluginError, match="kinds"):
        fields.attach(fields.Field("customer", "x", "integer", "X", kinds=("hospital",)), "t")


def test_detail_links_the_hospital_and_the_list_filters_by_name(db, client, pharma, login_as):
    co, ids = pharma
    login_as("admin", co)
    page = client.get(f"/customers/{ids['D1']}").get_data(as_text=True)
    assert f'href="/customers/{ids["H1"]}"' in page and "协和医院" in page
    listing = client.get(f"/customers/?{KEY}=协和").get_data(as_text=True)
    assert f'data-customer="{ids["D1"]}"' in listing
    assert f'data-customer="{ids["H2"]}"' not in listing
    by_id = client.get(f"/customers/?{KEY}={ids['H2']}").get_data(as_text=True)
    assert f'data-customer="{ids["D1"]}"' not in by_id


def test_form_offers_hospitals_only_and_refuses_another_kind(db, client, pharma, login_as):
    co, ids = pharma
    login_as("admin", co)
    form = client.get(f"/customers/{ids['D1']}/edit").get_data(as_text=True)
    assert f'<option selected value="{ids["H1"]}">' in form or "selected" in form
    assert (
        "人民医院" in form
        and "百姓药房" not in form.split(f'name="{KEY}"')[1].split("</select>")[0]
    )
    data = {"name": "王医生", "kind": "doctor", "status": "potential", KEY: str(ids["P1"])}
    response = client.post(f"/customers/{ids['D1']}/edit", data=data)
    assert response.status_code == 422
    assert f'data-field="{KEY}"' in response.get_data(as_text=True)
    data[KEY] = str(ids["H2"])
    assert client.post(f"/customers/{ids['D1']}/edit", data=data).status_code == 302
    with company_scope(co.id):
        assert fields.load(declared(), [ids["D1"]])[ids["D1"]][KEY] == ids["H2"]


def test_json_422_names_the_field_and_other_companies_are_not_visible(
    db, client, pharma, company, login_as
):
    co, ids = pharma
    other = company(plugins=["sales", "pharma"])
    with company_scope(other.id):
        foreign = Customer(name="外院", kind="hospital")
        db.session.add(foreign)
        db.session.commit()
        foreign_id = foreign.id
    login_as("admin", co)
    for bad in (ids["P1"], foreign_id, 999999):
        response = client.patch(f"/api/v1/customers/{ids['D1']}", json={KEY: bad})
        assert response.status_code == 422, bad
        assert KEY in response.get_json()["error"]["fields"]
    ok = client.patch(f"/api/v1/customers/{ids['D1']}", json={KEY: ids["H2"]})
    assert ok.status_code == 200 and ok.get_json()[KEY] == ids["H2"]
    listed = client.get(f"/api/v1/customers?{KEY}={ids['H2']}").get_json()
    assert [r["id"] for r in listed["data"]] == [ids["D1"]]


def test_import_takes_code_or_name_and_reports_bad_rows(db, pharma, make_user, tmp_path):
    co, ids = pharma
    path = tmp_path / "doctors.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        csv.writer(out).writerows(
            [
                ["name", "kind", KEY],
                ["李医生", "doctor", "H2"],
                ["赵医生", "doctor", "协和医院"],
                ["钱医生", "doctor", "百姓药房"],
                ["孙医生", "doctor", "不存在医院"],
            ]
        )
    with company_scope(co.id):
        outcome = importer.import_file(
            path, "customers", user_id=make_user("admin", co).id, mode="batched", batch=10
        )
        assert outcome["created"] == 2
        assert [(e["line"], e["column"]) for e in outcome["errors"]] == [(4, KEY), (5, KEY)]
        rows = db.session.execute(
            text(
                "SELECT c.name, x.hospital FROM customer c"
                " JOIN pharma_customer_ext x ON x.id = c.id"
                " WHERE c.name IN ('李医生', '赵医生') ORDER BY c.name"
            )
        ).all()
        assert sorted(rows) == sorted([("李医生", ids["H2"]), ("赵医生", ids["H1"])])


def test_export_writes_the_name(db, client, pharma, login_as):
    co, ids = pharma
    login_as("admin", co)
    body = client.get("/customers/export.csv").get_data(as_text=True).lstrip("\ufeff")
    rows = list(csv.DictReader(io.StringIO(body)))
    doctor = next(r for r in rows if r["code"] == "D1")
    assert doctor[KEY] == "协和医院"


def test_merge_repoints_references_and_delete_sets_null(db, pharma, make_user):
    co, ids = pharma
    admin = make_user("admin", co)
    with company_scope(co.id):
        survivor, merged = db.session.get(Customer, ids["H2"]), db.session.get(Customer, ids["H1"])
        result = merge.merge_customers(survivor, merged, admin)
        db.session.commit()
        assert result.moved["pharma_customer_ext.hospital"] == 1
        assert fields.load(declared(), [ids["D1"]])[ids["D1"]][KEY] == ids["H2"]
        db.session.execute(delete(Customer).where(Customer.id == ids["H2"]))
        db.session.commit()
        assert fields.load(declared(), [ids["D1"]])[ids["D1"]][KEY] is None


def test_bulk_checks_every_items_reference_in_one_query(db, client, pharma, login_as):
    from core.testing import QueryCounter

    co, ids = pharma
    login_as("admin", co)

    def items(n, bad_at=None):
        return {
            "items": [
                {"name": f"医生{i}", "kind": "doctor", KEY: ids["P1"] if i == bad_at else ids["H1"]}
                for i in range(n)
            ]
        }

    refused = client.post("/api/v1/customers/bulk", json=items(4, bad_at=2))
    assert refused.status_code == 422
    assert set(refused.get_json()["error"]["fields"]["items"]) == {"2"}
    assert KEY in refused.get_json()["error"]["fields"]["items"]["2"]
    counts = []
    for n in (3, 12):
        with QueryCounter(db.engine) as counter:
            client.post("/api/v1/customers/bulk", json=items(n, bad_at=0))
        counts.append(counter.count)
    assert counts[0] == counts[1]
