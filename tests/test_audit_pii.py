"""The audit log viewer and its CSV export mask personal values for a member without ``pii``:
customers' phones and addresses, contacts' phones and extension fields declared ``pii``, in the
old → new values of updates and in a merge's snapshot, as the customer pages mask them."""

from __future__ import annotations

import csv
import io
import types

import pytest

from core import audit, merge
from core.access import PERMISSIONS_KEY
from core.models import AuditLog, CompanySetting, Contact, Customer
from core.plugins import current
from core.tenancy import company_scope

pytestmark = pytest.mark.guanxi_plugins("tests.permissions_plugin")

ID = "110101199003074477"
ID_NEW = "320102198807121234"
HOME = "北京市朝阳区建国路88号3单元"
OLD_ADDRESS = "上海市浦东新区世纪大道100号"
NEW_ADDRESS = "广州市天河区天河路385号"
MERGED_ADDRESS = "深圳市南山区科技园南区1栋"
#: Whole values a member without ``pii`` must not see, with what they see instead.
MASKED = {
    "13900001111": "139****1111",  # customer phone, old
    "13900002222": "139****2222",  # customer phone, new
    OLD_ADDRESS: "上海市浦东****",
    NEW_ADDRESS: "广州市天****",
    "13700003333": "137****3333",  # contact phone, old
    "13700004444": "137****4444",  # contact phone, new
    "13600005555": "136****5555",  # the merged customer's phone
    MERGED_ADDRESS: "深圳市南****",
    ID: "110****4477",  # the merged customer's ID number (extension field, pii)
    HOME: "北京市朝阳****",  # the merged customer's home (extension field, pii="address")
    ID_NEW: "320****1234",
}


@pytest.fixture
def history(app, db, company, make_user):
    """A kyc company whose audit log holds personal values: an update of a customer's phone,
    address and e-mail, an update of a contact's phone, a merge, and an extension field's
    old → new values as a caller might describe them."""
    firm = company(plugins=["kyc"])
    admin = make_user("admin", firm)
    with company_scope(firm.id):
        customer = Customer(name="张三", phone="13900001111", address=OLD_ADDRESS)
        db.session.add(customer)
        db.session.flush()
        contact = Contact(customer_id=customer.id, name="李四", phone="13700003333")
        db.session.add(contact)
        db.session.commit()
        db.session.refresh(customer)  # loaded, as a page loads it: the old values are known
        db.session.refresh(contact)
        customer.phone, customer.address = "13900002222", NEW_ADDRESS
        customer.email = "zhang@example.com"
        audit.record("update", "customer", customer.id, user_id=admin.id)
        contact.phone = "13700004444"
        audit.record("update", "contact", contact.id, {"customer_id": customer.id})
        db.session.commit()

        twin = Customer(name="张三 (2)", phone="13600005555", address=MERGED_ADDRESS)
        db.session.add(twin)
        db.session.flush()
        fields = [f for f in current().registry.fields if f.plugin == "kyc"]
        from core.fields import save

        save(fields, twin.id, {"kyc__id_number": ID, "kyc__home": HOME, "kyc__score": 7})
        db.session.commit()
        merge.merge_customers(customer, twin, admin)
        db.session.add(
            AuditLog(
                action="update",
                entity_type="customer",
                entity_id=customer.id,
                data={"changes": {"kyc__id_number": [ID, ID_NEW], "kyc__score": [7, 8]}},
            )
        )
        db.session.commit()
        company_id = customer.company_id
    return types.SimpleNamespace(company=firm, company_id=company_id)


def _withhold_pii_from_managers(db, company_id):
    """The setting names the roles *without* the permission."""
    with company_scope(company_id):
        db.session.add(CompanySetting(key=PERMISSIONS_KEY, value={"pii": ["viewer", "manager"]}))
        db.session.commit()


def _csv_data(client) -> str:
    response = client.get("/audit/export.csv")
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    return "\n".join(row["data"] for row in rows)


def test_a_manager_without_pii_sees_personal_values_masked(db, client, login_as, history):
    _withhold_pii_from_managers(db, history.company_id)
    login_as("manager", history.company)
    page = client.get("/audit/").get_data(as_text=True)
    exported = _csv_data(client)
    for text in (page, exported):
        for whole, masked in MASKED.items():
            assert whole not in text, whole
            assert masked in text, masked
        assert "zhang@example.com" in text  # e-mail stays whole, as on the customer pages
        assert "kyc__score" in text and "张三 (2)" in text  # what is not personal stays
    assert "139****1111 → 139****2222" in page
    assert "上海市浦东**** → 广州市天****" in page
    assert "137****3333 → 137****4444" in page
    assert "110****4477 → 320****1234" in page and "7 → 8" in page


def test_an_admin_with_pii_sees_them_whole(db, client, login_as, history):
    _withhold_pii_from_managers(db, history.company_id)
    login_as("admin", history.company)
    page = client.get("/audit/").get_data(as_text=True)
    exported = _csv_data(client)
    for text in (page, exported):
        for whole, masked in MASKED.items():
            assert whole in text, whole
            assert masked not in text, masked
    assert "13900001111 → 13900002222" in page
    assert f"{OLD_ADDRESS} → {NEW_ADDRESS}" in page
    assert f"{ID} → {ID_NEW}" in page


def test_a_plugin_marks_its_own_personal_columns(app):
    """``info={"pii": kind}`` on a mapped column: the core's customer phone and address and
    contact phone, and a plugin's own (the property plugin's complaint reporter phone)."""
    from core.web.audit import personal_columns, redact

    with app.app_context():
        personal = personal_columns()
        assert {"phone", "address"} <= set(personal["customer"]) and "email" not in personal[
            "customer"
        ]
        data = {"changes": {"reporter_phone": ["13900001111", None], "root_cause": [None, "pipe"]}}
        out = redact("property_complaint", data, personal)
    assert out["changes"] == {"reporter_phone": ["139****1111", None], "root_cause": [None, "pipe"]}
    assert data["changes"]["reporter_phone"][0] == "13900001111"  # the row's data is untouched
