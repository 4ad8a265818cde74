"""Pharma KPIs: orders by hospital, the sales early warning, orders per rep, doctors per
hospital and the managers' dashboard box, with hand-computed expectations on a small data set
(pharma enabled for one company, not for another)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest

from core import fields, reports
from core.models import Customer
from core.plugins import current
from core.tenancy import company_scope
from core.testing import QueryCounter
from plugins.pharma import kpis
from plugins.sales.models import Order

D = Decimal


@pytest.fixture
def pharma(app, db, company, make_user):
    """Hospitals H1 (3a, rep1), H2 (2a, rep2), H3 (3a, rep1), a pharmacy P; doctors D1 and D2
    at H1, D3 at H2; orders (amount, date, owner):

    ====  ===========  ======  =====  =========
    H1    2026-09-10   1000    rep1
    H1    2026-10-05    700    rep1
    H1    2026-10-20    300    rep1   cancelled
    H1    2026-11-02    200    rep1
    H2    2026-09-20    500    rep2
    H3    2026-08-30   9999    rep1
    H3    2026-09-15    400    rep1
    H3    2026-10-10    380    rep1
    P     2026-09-05    800    rep2   (not a hospital)
    ====  ===========  ======  =====  =========
    """
    co = company(plugins=["sales", "pharma"])
    plain = company(plugins=["sales"])
    rep1, rep2 = make_user("sales_rep", co), make_user("sales_rep", co)
    manager = make_user("manager", co)
    with company_scope(co.id):
        declared = current().registry.fields_for("customer", ["pharma"])
        made = {}
        for code, kind, owner in [
            ("H1", "hospital", rep1),
            ("H2", "hospital", rep2),
            ("H3", "hospital", rep1),
            ("P", "pharmacy", rep2),
            ("D1", "doctor", rep1),
            ("D2", "doctor", rep1),
            ("D3", "doctor", rep2),
        ]:
            made[code] = Customer(name=f"{code}名", code=code, kind=kind, owner_id=owner.id)
            db.session.add(made[code])
        db.session.flush()
        ids = {code: c.id for code, c in made.items()}
        for code, grade in (("H1", "3a"), ("H2", "2a"), ("H3", "3a")):
            fields.save(declared, ids[code], {"pharma__hospital_grade": grade})
        for doctor, hospital in (("D1", "H1"), ("D2", "H1"), ("D3", "H2")):
            fields.save(declared, ids[doctor], {"pharma__hospital": ids[hospital]})
        rows = [
            ("H1", "2026-09-10", 1000, rep1, "paid"),
            ("H1", "2026-10-05", 700, rep1, "open"),
            ("H1", "2026-10-20", 300, rep1, "cancelled"),
            ("H1", "2026-11-02", 200, rep1, "open"),
            ("H2", "2026-09-20", 500, rep2, "paid"),
            ("H3", "2026-08-30", 9999, rep1, "paid"),
            ("H3", "2026-09-15", 400, rep1, "paid"),
            ("H3", "2026-10-10", 380, rep1, "open"),
            ("P", "2026-09-05", 800, rep2, "paid"),
        ]
        for n, (code, day, amount, owner, state) in enumerate(rows):
            db.session.add(
                Order(
                    number=f"SO-{n}",
                    customer_id=ids[code],
                    ordered_on=date.fromisoformat(day),
                    amount=D(amount),
                    owner_id=owner.id,
                    state=state,
                )
            )
        db.session.commit()
    return SimpleNamespace(
        co=co, plain=plain, ids=ids, rep1=rep1, rep2=rep2, manager=manager, name=lambda c: f"{c}名"
    )


def parsed(name, **params):
    report = reports.get(name)
    assert report is not None
    values, errors = reports.parse(report, {k: str(v) for k, v in params.items()})
    assert not errors
    return report, values


def run(name, **params):
    return reports.run(*parsed(name, **params))


def test_early_warning_lists_falls_beyond_the_threshold(db, pharma):
    with company_scope(pharma.co.id):
        result = run("pharma_sales_warning", start="2026-10-01", end="2026-10-31")
        got = [(r["label"], r["previous"], r["current"], r["change"]) for r in result.rows]
        # previous period: 2026-08-31 … 2026-09-30 (31 days, like October)
        assert got == [("H2名", D(500), D(0), -1.0), ("H1名", D(1000), D(700), -0.3)]
        assert result.rows[1]["fall"] == D(300) and result.rows[1]["grade"] in (
            "Grade III-A",
            "三级甲等",
        )
        stricter = run("pharma_sales_warning", start="2026-10-01", end="2026-10-31", threshold=30)
        assert [r["label"] for r in stricter.rows] == ["H2名"]  # -30 % is not more than 30 %
        assert kpis.warning_periods({"start": date(2026, 10, 1), "end": date(2026, 10, 31)}) == (
            date(2026, 8, 31),
            date(2026, 9, 30),
            date(2026, 10, 1),
            date(2026, 10, 31),
        )


def test_orders_by_hospital_per_month_quarter_and_grade(db, pharma):
    with company_scope(pharma.co.id):
        dates = {"start": "2026-08-01", "end": "2026-11-30"}
        result = run("pharma_hospital_orders", **dates)
        got = {
            r["label"]: (r["p2026_08"], r["p2026_09"], r["p2026_10"], r["p2026_11"], r["orders"])
            for r in result.rows
        }
        assert got == {
            "H3名": (D(9999), D(400), D(380), D(0), 3),
            "H1名": (D(0), D(1000), D(700), D(200), 3),
            "H2名": (D(0), D(500), D(0), D(0), 1),
        }
        assert [r["label"] for r in result.rows] == ["H3名", "H1名", "H2名"]
        quarters = run("pharma_hospital_orders", period="quarter", **dates)
        assert {r["label"]: (r["p2026_Q3"], r["p2026_Q4"]) for r in quarters.rows} == {
            "H3名": (D(10399), D(380)),
            "H1名": (D(1000), D(900)),
            "H2名": (D(500), D(0)),
        }
        grades = run("pharma_hospital_orders", dimension="grade", **dates)
        assert [(r["value"], r["amount"], r["orders"]) for r in grades.rows] == [
            ("3a", D(12679), 6),
            ("2a", D(500), 1),
        ]


def test_orders_per_rep_and_month(db, pharma):
    with company_scope(pharma.co.id):
        result = run("pharma_rep_activity", start="2026-08-01", end="2026-11-30")
        got = {
            r["value"]: (r["p2026_08"], r["p2026_09"], r["np2026_09"], r["amount"], r["orders"])
            for r in result.rows
        }
        assert got == {
            pharma.rep1.id: (D(9999), D(1400), 2, D(12679), 6),
            pharma.rep2.id: (D(0), D(1300), 2, D(1300), 2),
        }


def test_doctors_per_hospital_follow_the_hospital_field(db, pharma):
    with company_scope(pharma.co.id):
        result = run("pharma_hospital_doctors")
        assert [(r["label"], r["doctors"]) for r in result.rows] == [
            ("H1名", 2),
            ("H2名", 1),
            ("H3名", 0),
        ]


def test_each_report_is_one_statement_whatever_the_size(db, pharma):
    params = {
        "pharma_sales_warning": {"start": "2026-10-01", "end": "2026-10-31"},
        "pharma_hospital_orders": {"start": "2026-08-01", "end": "2026-11-30"},
        "pharma_rep_activity": {"start": "2026-08-01", "end": "2026-11-30"},
        "pharma_hospital_doctors": {},
    }
    with company_scope(pharma.co.id):
        for name, p in params.items():
            report, values = parsed(name, **p)
            with QueryCounter(db.engine) as counter:
                reports.run(report, values)
            assert counter.count == 1, name
        for n in range(30):  # more hospitals with orders: still one statement each
            hospital = Customer(name=f"新医院{n}", kind="hospital")
            db.session.add(hospital)
            db.session.flush()
            db.session.add(
                Order(
                    number=f"X-{n}",
                    customer_id=hospital.id,
                    ordered_on=date(2026, 9, 1),
                    amount=D(100),
                    state="open",
                )  # fmt: skip
            )
        db.session.commit()
        for name, p in params.items():
            report, values = parsed(name, **p)
            with QueryCounter(db.engine) as counter:
                reports.run(report, values)
            assert counter.count == 1, name
        assert len(run("pharma_sales_warning", **params["pharma_sales_warning"]).rows) == 32


def test_pages_drill_down_and_the_company_without_pharma(db, client, pharma, login_as, monkeypatch):
    login_as("manager", pharma.co)
    page = client.get("/reports/pharma_sales_warning?start=2026-10-01&end=2026-10-31")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "H2名" in html and f"customer={pharma.ids['H2']}" in html and "<svg" in html
    for name in ("pharma_hospital_orders", "pharma_rep_activity", "pharma_hospital_doctors"):
        assert client.get(f"/reports/{name}").status_code == 200
    doctors = client.get("/reports/pharma_hospital_doctors").get_data(as_text=True)
    assert f"pharma__hospital={pharma.ids['H1']}" in doctors
    assert client.get("/reports/pharma_sales_warning?threshold=7").status_code == 400

    monkeypatch.setattr(kpis, "today", lambda: date(2026, 11, 30))
    # the last 90 days (2026-09-02 … 11-30) against the 90 before (06-04 … 09-01): H3 fell from
    # 9999 to 780 (-92.2 %); H1 and H2 ordered nothing before; P is no hospital
    with company_scope(pharma.co.id):
        rows = kpis.early_warning()
    assert [(r["label"], r["previous"], r["current"]) for r in rows] == [("H3名", D(9999), D(780))]
    dashboard = client.get("/dashboard/").get_data(as_text=True)
    assert "H3名" in dashboard and "-92.2%" in dashboard

    login_as("sales_rep", pharma.co)
    dashboard = client.get("/dashboard/").get_data(as_text=True)
    assert "销售预警" not in dashboard and "Sales early warning" not in dashboard

    login_as("manager", pharma.plain)
    assert client.get("/reports/pharma_sales_warning").status_code == 404
    dashboard = client.get("/dashboard/").get_data(as_text=True)
    assert "销售预警" not in dashboard and "Sales early warning" not in dashboard


def test_demo_makes_the_early_warning_show_hospitals(app, db, company, make_user):
    co = company(plugins=["sales", "pharma"], code="demo-pharma-kpis")
    admin = make_user("admin", co)
    with company_scope(co.id):
        hospitals = [
            Customer(name=f"医院{n}", kind="hospital", owner_id=admin.id) for n in range(6)
        ]
        db.session.add_all(hospitals)
        db.session.flush()
        for n, hospital in enumerate(hospitals[1:]):  # hospital 0 ordered nothing lately
            db.session.add(
                Order(
                    number=f"R-{n}",
                    customer_id=hospital.id,
                    amount=D(5000),
                    state="open",
                    ordered_on=kpis.today() - timedelta(days=10),
                )  # fmt: skip
            )
        db.session.commit()
        assert kpis.early_warning() == []
        kpis.demo(co, None)
        db.session.commit()
        rows = kpis.early_warning(limit=10)
        assert len(rows) == 4
        assert rows[0]["label"] == "医院0" and rows[0]["change"] == -1.0
        assert all(r["change"] <= -0.5 for r in rows)


def test_hospital_page_lists_its_doctors(db, client, pharma, login_as):
    login_as("manager", pharma.co)
    page = client.get(f"/customers/{pharma.ids['H1']}").get_data(as_text=True)
    assert "D1名" in page and "D2名" in page and "D3名" not in page
    assert f"pharma__hospital={pharma.ids['H1']}" in page
    doctor = client.get(f"/customers/{pharma.ids['D3']}").get_data(as_text=True)
    assert f'href="/customers/{pharma.ids["H2"]}"' in doctor  # the doctor links the hospital
    with company_scope(pharma.co.id):
        assert kpis.hospital_doctors(pharma.ids["H3"]) == (0, [])
