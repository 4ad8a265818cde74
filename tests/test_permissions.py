"""Permissions: declared by core and plugins, bundled by roles per company, refusals named;
personal-data fields masked without ``pii``; the effective permissions page."""

from __future__ import annotations

import csv
import io
import types

import pytest
from sqlalchemy import select

from core import access, merge, permissions
from core.fields import save
from core.models import CompanySetting, Customer, Membership, User
from core.permissions import Permission
from core.plugins import Manifest, PluginError, PluginManager, current, hookimpl
from core.tenancy import company_scope, unscoped

pytestmark = pytest.mark.guanxi_plugins("tests.permissions_plugin")

ID = "110101199003074477"
HOME = "北京市朝阳区建国路88号3单元"


@pytest.fixture
def kyc(app, db, company):
    """A company with the kyc plugin and one customer carrying an ID number and addresses."""
    firm = company(plugins=["kyc"])
    with company_scope(firm.id):
        customer = Customer(name="张三", phone="13800138000", address="上海市浦东新区世纪大道100号")
        db.session.add(customer)
        db.session.flush()
        fields = [f for f in current().registry.fields if f.plugin == "kyc"]
        save(fields, customer.id, {"kyc__id_number": ID, "kyc__home": HOME, "kyc__score": 7})
        db.session.commit()
        customer_id = customer.id
    return types.SimpleNamespace(company=firm, customer_id=customer_id)


def set_permissions(db, company, value):
    with company_scope(company.id):
        db.session.add(CompanySetting(key=access.PERMISSIONS_KEY, value=value))
        db.session.commit()


# -- the registry ----------------------------------------------------------------------------


def test_core_and_plugins_declare_permissions(app):
    declared = permissions.declared()
    assert {"pii", "export", "access_review", "kyc.verify"} <= set(declared)
    assert declared["pii"].plugin == "core" and declared["kyc.verify"].plugin == "kyc"
    assert declared["export"].roles == ("admin", "manager", "service_agent")


def test_two_plugins_declaring_one_permission_stop_the_start():
    def guanxi_permissions():
        return [Permission("twin", "Twin")]

    modules = []
    for name in ("alpha", "beta"):
        module = types.ModuleType(f"test_plugin_{name}")
        module.manifest = Manifest(name, name.title(), name, "1.0")
        module.guanxi_permissions = hookimpl(guanxi_permissions)
        modules.append(module)
    with pytest.raises(PluginError, match=r"plugin 'beta' declares permission 'twin'.*'alpha'"):
        PluginManager().install(modules)


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("admin", {"pii", "export", "import", "merge", "access_review", "kyc.verify"}),
        ("manager", {"pii", "export", "import", "merge", "kyc.verify"}),
        ("sales_rep", {"pii"}),
        ("service_agent", {"pii", "export"}),
        ("viewer", set()),
        ("agent", {"pii", "export"}),  # a role the core does not know: as before the registry
    ],
)
def test_roles_hold_their_defaults(app, role, expected):
    held = {n for n in permissions.declared() if permissions.grant(n, role, {}).held}
    assert held == expected


def test_a_company_setting_overrides_in_the_old_format(app):
    company = permissions.overrides({"export": ["viewer"], "kyc.verify": [], "bad": "x"})
    assert company == {"export": ("viewer",), "kyc.verify": ()}
    assert permissions.grant("export", "sales_rep", company) == permissions.Grant(True, "company")
    assert permissions.grant("kyc.verify", "viewer", company).held
    assert permissions.grant("pii", "viewer", company) == permissions.Grant(False, "default")


def test_an_unknown_permission_is_held_by_nobody(app, client, kyc, login_as):
    assert not permissions.grant("typo", "admin", {}).held
    assert not access.has_permission("typo")  # even outside a request
    login_as("admin", kyc.company)
    with app.test_request_context():
        assert not access.has_permission("typo")


# -- refusals name the permission --------------------------------------------------------------


def test_an_export_refusal_names_the_permission(client, login_as, kyc):
    login_as("sales_rep", kyc.company)
    response = client.get("/customers/export.csv")
    assert response.status_code == 403
    page = response.get_data(as_text=True)
    assert "export" in page and "sales_rep" in page


# -- personal data ---------------------------------------------------------------------------


def exported(client):
    response = client.get("/customers/export.csv")
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert len(rows) == 1
    return rows[0]


def test_a_viewer_sees_id_numbers_and_addresses_masked(db, client, login_as, kyc):
    set_permissions(db, kyc.company, {"export": []})  # let the viewer download, to check the CSV
    login_as("viewer", kyc.company)
    page = client.get(f"/customers/{kyc.customer_id}").get_data(as_text=True)
    assert "110****4477" in page and ID not in page
    assert "北京市朝阳****" in page and "建国路" not in page
    assert "上海市浦东****" in page and "世纪大道" not in page
    api = client.get(f"/api/v1/customers/{kyc.customer_id}").get_json()
    assert api["kyc__id_number"] == "110****4477" and api["kyc__home"] == "北京市朝阳****"
    assert api["address"] == "上海市浦东****" and api["kyc__score"] == 7
    listed = client.get("/api/v1/customers").get_json()["data"][0]
    assert listed["kyc__id_number"] == "110****4477" and listed["address"] == "上海市浦东****"
    row = exported(client)
    assert row["kyc__id_number"] == "110****4477" and row["kyc__home"] == "北京市朝阳****"
    assert row["address"] == "上海市浦东****" and row["phone"] == "138****8000"
    assert row["kyc__score"] == "7"


def test_a_manager_sees_them_whole(client, login_as, kyc):
    login_as("manager", kyc.company)
    page = client.get(f"/customers/{kyc.customer_id}").get_data(as_text=True)
    assert ID in page and HOME in page and "世纪大道100号" in page
    api = client.get(f"/api/v1/customers/{kyc.customer_id}").get_json()
    assert api["kyc__id_number"] == ID and api["address"] == "上海市浦东新区世纪大道100号"
    row = exported(client)
    assert row["kyc__id_number"] == ID and row["kyc__home"] == HOME
    assert row["address"] == "上海市浦东新区世纪大道100号"


def test_a_company_may_withhold_pii_from_reps(db, client, login_as, kyc):
    set_permissions(db, kyc.company, {"pii": ["viewer", "sales_rep"]})
    login_as("sales_rep", kyc.company)
    # The rep sees no customer they do not own; give them this one.
    with company_scope(kyc.company.id), unscoped():
        rep = db.session.scalars(select(Membership).where(Membership.role == "sales_rep")).one()
        db.session.get(Customer, kyc.customer_id).owner_id = rep.user_id
        db.session.commit()
    api = client.get(f"/api/v1/customers/{kyc.customer_id}").get_json()
    assert api["kyc__id_number"] == "110****4477" and api["phone"] == "138****8000"


@pytest.mark.parametrize(
    ("raw", "masked"),
    [(HOME, "北京市朝阳****"), ("上海", "****"), ("", ""), (None, "")],
)
def test_mask_address(raw, masked):
    assert access.mask_address(raw) == masked


# -- the effective permissions page ----------------------------------------------------------


def test_an_admin_sees_a_members_effective_permissions_per_company(
    db, client, company, make_user, login_as, kyc
):
    other = company()
    rep = make_user("sales_rep", kyc.company)
    with unscoped():
        db.session.add(Membership(user_id=rep.id, company_id=other.id, role="manager"))
        db.session.commit()
    set_permissions(db, kyc.company, {"export": ["viewer"]})
    admin = login_as("admin", kyc.company)
    with unscoped():  # the admin reviews the second company too
        db.session.add(Membership(user_id=admin.id, company_id=other.id, role="admin"))
        db.session.commit()
    assert 'href="/settings/permissions/"' in client.get("/settings/").get_data(as_text=True)
    html = client.get(f"/settings/permissions/?user={rep.id}").get_data(as_text=True)
    first = html.split(f'data-company="{kyc.company.id}"')[1].split("</section>")[0]
    assert 'data-rule="own_or_team"' in first
    assert 'data-permission="export" data-held="yes" data-source="company"' in first
    assert 'data-permission="pii" data-held="yes" data-source="default"' in first
    assert 'data-permission="kyc.verify" data-held="no" data-source="default"' in first
    second = html.split(f'data-company="{other.id}"')[1].split("</section>")[0]
    assert 'data-rule="all"' in second and "kyc.verify" not in second  # not enabled there
    assert 'data-permission="export" data-held="yes" data-source="default"' in second


def test_companies_the_admin_cannot_review_are_not_named(db, client, company, make_user, kyc):
    elsewhere = company(name="别家公司")
    rep = make_user("sales_rep", kyc.company)
    with unscoped():
        db.session.add(Membership(user_id=rep.id, company_id=elsewhere.id, role="admin"))
        db.session.commit()
    admin = make_user("admin", kyc.company)
    with client.session_transaction() as session:
        session["_user_id"] = str(admin.id)
        session["_fresh"] = True
        session["company_id"] = kyc.company.id
    html = client.get(f"/settings/permissions/?user={rep.id}").get_data(as_text=True)
    assert f'data-company="{kyc.company.id}"' in html and "别家公司" not in html


def test_the_page_refuses_without_the_permission_and_says_which(client, login_as, kyc):
    login_as("manager", kyc.company)
    response = client.get("/settings/permissions/")
    assert response.status_code == 403
    assert "access_review" in response.get_data(as_text=True)
    assert "/settings/permissions/" not in client.get("/settings/").get_data(as_text=True)


@pytest.mark.parametrize("raw", ["abc", "999999", "-1"])
def test_a_bad_user_is_a_clear_400(client, login_as, kyc, raw):
    login_as("admin", kyc.company)
    response = client.get(f"/settings/permissions/?user={raw}")
    assert response.status_code == 400
    assert "No member" in response.get_data(as_text=True) or "没有成员" in response.get_data(
        as_text=True
    )


def test_a_company_decides_who_imports_and_who_merges(db, client, login_as, kyc):
    login_as("sales_rep", kyc.company)
    refused = client.get("/imports/")
    assert refused.status_code == 403 and "import" in refused.get_data(as_text=True)
    set_permissions(
        db,
        kyc.company,
        {"import": ["viewer", "service_agent"], "merge": ["manager", "sales_rep", "viewer"]},
    )
    assert client.get("/imports/").status_code == 200  # reps import in this company
    login_as("manager", kyc.company)
    refused = client.get("/customers/duplicates")
    assert refused.status_code == 403 and "merge" in refused.get_data(as_text=True)
    with company_scope(kyc.company.id):
        other = Customer(name="张三")
        db.session.add(other)
        db.session.flush()
        manager = db.session.scalars(
            select(User).join(Membership).where(Membership.role == "manager")
        ).one()
        with pytest.raises(merge.MergeRefused, match="merge"):
            merge.merge_customers(db.session.get(Customer, kyc.customer_id), other, manager)
        db.session.rollback()


def test_the_edit_form_does_not_reveal_personal_data_and_keeps_it(db, client, login_as, kyc):
    set_permissions(db, kyc.company, {"pii": ["viewer", "sales_rep"]})
    rep = login_as("sales_rep", kyc.company)
    with company_scope(kyc.company.id), unscoped():
        db.session.get(Customer, kyc.customer_id).owner_id = rep.id
        db.session.commit()
    url = f"/customers/{kyc.customer_id}/edit"
    page = client.get(url).get_data(as_text=True)
    for whole in ("13800138000", ID, HOME, "世纪大道100号"):
        assert whole not in page
    assert "138****8000" in page and "110****4477" in page  # as placeholders
    form = {
        "name": "张三丰",
        "kind": "consumer",
        "status": "potential",
        "owner_id": rep.id,
        "phone": "",
        "address": "",
        "kyc__id_number": "",
        "kyc__home": "",
        "kyc__score": "7",
    }
    assert client.post(url, data=form).status_code == 302
    api = client.get(f"/api/v1/customers/{kyc.customer_id}").get_json()
    assert api["name"] == "张三丰" and api["phone"] == "138****8000"
    with company_scope(kyc.company.id):
        saved = db.session.get(Customer, kyc.customer_id)
        db.session.refresh(saved)
        assert saved.phone == "13800138000" and saved.address.startswith("上海市浦东新区")
    refused = client.post(url, data={**form, "name": ""})
    assert refused.status_code == 422 and "13800138000" not in refused.get_data(as_text=True)
    assert client.post(url, data={**form, "phone": "13900001111"}).status_code == 302
    with company_scope(kyc.company.id):
        saved = db.session.get(Customer, kyc.customer_id)
        db.session.refresh(saved)
        assert saved.phone == "13900001111"  # typed into, the input replaces the stored value
    login_as("manager", kyc.company)
    whole = client.get(f"/api/v1/customers/{kyc.customer_id}").get_json()
    assert whole["kyc__id_number"] == ID and whole["kyc__home"] == HOME


def test_a_contacts_phone_is_not_revealed_by_its_edit_form(db, client, login_as, kyc):
    from core.models import Contact

    set_permissions(db, kyc.company, {"pii": ["viewer", "sales_rep"]})
    rep = login_as("sales_rep", kyc.company)
    with company_scope(kyc.company.id), unscoped():
        db.session.get(Customer, kyc.customer_id).owner_id = rep.id
        contact = Contact(
            customer_id=kyc.customer_id, name="李四", phone="13712345678", company_id=kyc.company.id
        )
        db.session.add(contact)
        db.session.commit()
        contact_id = contact.id
    url = f"/customers/{kyc.customer_id}/contacts/{contact_id}/edit"
    page = client.get(url).get_data(as_text=True)
    assert "13712345678" not in page and "137****5678" in page
    assert client.post(url, data={"name": "李四", "phone": ""}).status_code == 302
    with company_scope(kyc.company.id):
        assert db.session.get(Contact, contact_id).phone == "13712345678"
