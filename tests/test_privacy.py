"""A person's copy of their data and its erasure (PIPL), on the customer's personal-data page."""

from __future__ import annotations

import io
import json
import zipfile

from sqlalchemy import func, select

from core.models import AuditLog, Contact, Customer, Interaction, ServiceTicket
from core.tenancy import company_scope
from core.tickets import open_ticket


def _person(db, co, user):
    with company_scope(co.id):
        customer = Customer(
            name="赵敏",
            phone="13912345678",
            email="zm@example.com",
            address="杭州市西湖区1号",
            status="active",
            revenue=5000,
        )
        db.session.add(customer)
        db.session.flush()
        db.session.add(Contact(customer_id=customer.id, name="赵敏", phone="13912345678"))
        db.session.add(
            Interaction(
                customer_id=customer.id,
                user_id=user.id,
                kind="call",
                purpose="回访赵敏",
                result="赵敏说很满意",
            )
        )
        open_ticket(customer_id=customer.id, subject="赵敏的空调坏了", description="13912345678")
        db.session.commit()
        return customer.id


def test_an_admin_downloads_everything_held_about_a_person(app, db, client, login_as):
    admin = login_as("admin")
    with client.session_transaction() as session:
        co_id = session["company_id"]
    from core.models import Company

    cid = _person(db, db.session.get(Company, co_id), admin)
    data = client.get(f"/customers/{cid}/personal-data.json")
    assert data.status_code == 200
    sections = json.loads(data.data)
    assert sections["customer"][0]["phone"] == "13912345678"
    assert {len(sections[k]) for k in ("contacts", "interactions", "tickets")} == {1}
    archive = zipfile.ZipFile(io.BytesIO(client.get(f"/customers/{cid}/personal-data.zip").data))
    assert {"customer.csv", "contacts.csv", "tickets.csv"} <= set(archive.namelist())
    assert "赵敏" in archive.read("customer.csv").decode("utf-8-sig")
    with company_scope(co_id):
        assert (
            db.session.scalar(select(func.count()).where(AuditLog.action == "export_person")) == 2
        )


def test_erasure_needs_the_name_and_then_leaves_nothing_that_identifies(app, db, client, login_as):
    admin = login_as("admin")
    with client.session_transaction() as session:
        co_id = session["company_id"]
    from core.models import Company

    cid = _person(db, db.session.get(Company, co_id), admin)
    refused = client.post(f"/customers/{cid}/personal-data", data={"confirm": "赵"})
    assert refused.status_code == 422
    done = client.post(f"/customers/{cid}/personal-data", data={"confirm": "赵敏"})
    assert done.status_code == 302
    with company_scope(co_id):
        customer = db.session.get(Customer, cid)
        assert customer.name == f"已删除 #{cid}" and customer.phone is None
        assert customer.revenue == 5000  # figures stay
        everything = json.dumps(
            [[c.name, c.phone] for c in db.session.scalars(select(Contact))]
            + [[i.purpose, i.result] for i in db.session.scalars(select(Interaction))]
            + [[t.subject, t.description] for t in db.session.scalars(select(ServiceTicket))],
            ensure_ascii=False,
        )
        assert "赵敏" not in everything and "13912345678" not in everything
        tickets = db.session.scalars(select(ServiceTicket)).all()
        assert tickets and all(t.subject == f"#{t.id}" for t in tickets)  # the number stays
        assert db.session.scalar(select(func.count()).where(AuditLog.action == "erase")) == 1


def test_only_administrators_handle_personal_data_requests(app, db, client, login_as):
    manager = login_as("manager")
    with client.session_transaction() as session:
        co_id = session["company_id"]
    from core.models import Company

    cid = _person(db, db.session.get(Company, co_id), manager)
    assert client.get(f"/customers/{cid}/personal-data").status_code == 403
    assert client.get(f"/customers/{cid}/personal-data.json").status_code == 403
