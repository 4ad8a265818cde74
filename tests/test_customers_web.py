"""Customer form (owner, channel, tags, status), contacts, and the detail page's links."""

from __future__ import annotations

import re

from sqlalchemy import select

from core import customers
from core.models import AuditLog, Channel, Contact, Customer, Tag
from core.tenancy import company_scope


def errors(html):
    return dict(re.findall(r'data-field="([^"]+)">([^<]+)<', html))


def test_create_with_owner_channel_tags_and_status(app, db, client, company, login_as, make_user):
    acme = company()
    login_as("manager", acme)
    colleague = make_user("sales_rep", acme)
    with company_scope(acme.id):
        channel = Channel(name="华东代理")
        db.session.add_all([channel, Tag(name="VIP")])
        db.session.commit()
        channel_id = channel.id
    form = client.get("/customers/new").get_data(as_text=True)
    assert colleague.name in form and "华东代理" in form and 'name="tags"' in form
    assert 'name="value_tier"' not in form  # computed, never typed in
    response = client.post(
        "/customers/new",
        data={
            "name": "协和医院",
            "kind": "consumer",
            "status": "existing",
            "owner_id": colleague.id,
            "channel_id": channel_id,
            "tags": "VIP，重点客户, VIP",
        },
    )
    assert response.status_code == 302
    with company_scope(acme.id):
        customer = db.session.scalar(select(Customer).where(Customer.name == "协和医院"))
        assert customer.owner_id == colleague.id and customer.channel_id == channel_id
        assert customer.status == "existing"
        assert customers.tags_of([customer.id])[customer.id] == ["VIP", "重点客户"]
        assert len(db.session.scalars(select(Tag)).all()) == 2  # 重点客户 created, VIP reused
        assert customer.loyalty == "new" and customer.value_tier == "D"  # classified on save
    page = client.get(response.location).get_data(as_text=True)
    assert "华东代理" in page and "重点客户" in page and colleague.name in page


def test_edit_replaces_tags_and_refuses_bad_input_at_the_field(
    app, db, client, company, login_as, make_user
):
    acme = company()
    other = company()
    login_as("manager", acme)
    outsider = make_user("sales_rep", other)
    with company_scope(acme.id):
        customer = Customer(name="甲")
        db.session.add(customer)
        db.session.flush()
        customers.set_tags(customer, ["VIP", "老客户"])
        db.session.commit()
        customer_id = customer.id
    edit = client.get(f"/customers/{customer_id}/edit").get_data(as_text=True)
    assert 'value="VIP, 老客户"' in edit
    bad = client.post(
        f"/customers/{customer_id}/edit",
        data={"name": "", "kind": "consumer", "email": "no", "owner_id": outsider.id},
    )
    assert bad.status_code == 422
    assert {"name", "email", "owner_id"} <= set(errors(bad.get_data(as_text=True)))
    long_tag = client.post(
        f"/customers/{customer_id}/edit", data={"name": "甲", "kind": "consumer", "tags": "x" * 61}
    )
    assert long_tag.status_code == 422 and "tags" in errors(long_tag.get_data(as_text=True))
    ok = client.post(
        f"/customers/{customer_id}/edit", data={"name": "甲", "kind": "consumer", "tags": "新客户"}
    )
    assert ok.status_code == 302
    with company_scope(acme.id):
        assert customers.tags_of([customer_id])[customer_id] == ["新客户"]


def test_contacts_are_added_edited_deleted_and_listed_with_roles(
    app, db, client, company, login_as
):
    acme = company()
    rep = login_as("sales_rep", acme)
    with company_scope(acme.id):
        customer = Customer(name="康泰医药", owner_id=rep.id)
        db.session.add(customer)
        db.session.commit()
        customer_id = customer.id
    base = f"/customers/{customer_id}/contacts"
    bad = client.post(f"{base}/new", data={"name": "", "email": "x", "decision_role": "king"})
    assert bad.status_code == 422
    assert {"name", "email", "decision_role"} <= set(errors(bad.get_data(as_text=True)))
    added = client.post(
        f"{base}/new",
        data={"name": "李主任", "title": "采购部主任", "decision_role": "decider", "phone": "139"},
    )
    assert added.status_code == 302
    page = client.get(f"/customers/{customer_id}").get_data(as_text=True)
    assert "李主任" in page and ("Decider" in page or "决策者" in page)
    with company_scope(acme.id):
        contact_id = db.session.scalar(select(Contact.id))
    assert (
        client.post(
            f"{base}/{contact_id}/edit", data={"name": "李主任", "decision_role": "approver"}
        ).status_code
        == 302
    )
    with company_scope(acme.id):
        assert db.session.get(Contact, contact_id).decision_role == "approver"
    assert client.post(f"/customers/999999/contacts/{contact_id}/edit").status_code == 404
    assert client.post(f"{base}/{contact_id}/delete").status_code == 302
    with company_scope(acme.id):
        assert db.session.scalar(select(Contact.id)) is None
        actions = set(
            db.session.scalars(select(AuditLog.action).where(AuditLog.entity_type == "contact"))
        )
        assert actions == {"create", "update", "delete"}


def test_viewer_reads_but_cannot_write(app, db, client, company, login_as):
    acme = company()
    login_as("viewer", acme)
    with company_scope(acme.id):
        customer = Customer(name="甲")
        db.session.add(customer)
        db.session.commit()
        customer_id = customer.id
    page = client.get(f"/customers/{customer_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "/edit" not in html and "contacts/new" not in html
    assert client.get(f"/customers/{customer_id}/edit").status_code == 403
    assert (
        client.post(f"/customers/{customer_id}/contacts/new", data={"name": "x"}).status_code == 403
    )


def test_detail_links_to_log_an_interaction_and_open_a_ticket(app, db, client, company, login_as):
    acme = company()
    rep = login_as("sales_rep", acme)
    with company_scope(acme.id):
        customer = Customer(name="甲", owner_id=rep.id)
        db.session.add(customer)
        db.session.commit()
        customer_id = customer.id
    html = client.get(f"/customers/{customer_id}").get_data(as_text=True)
    assert f"/interactions/new?customer_id={customer_id}" in html
    assert f"/tickets/new?customer_id={customer_id}" in html
    assert 'id="timeline"' in html and 'id="comments"' in html


BAD_FORMS = [
    {"name": "甲\x00"},
    {"name": "甲", "tags": "VIP\x00"},
    {"name": "甲", "owner_id": "abc"},
    {"name": "甲", "owner_id": "99999999999999999999"},
    {"name": "甲", "channel_id": "-1"},
    {"name": "甲", "status": "bogus"},
    {"name": "甲", "kind": "x"},
    {"name": "x" * 201},
]


def test_no_input_makes_a_500(app, db, client, company, login_as):
    acme = company()
    rep = login_as("sales_rep", acme)
    with company_scope(acme.id):
        customer = Customer(name="甲", owner_id=rep.id)
        db.session.add(customer)
        db.session.commit()
        customer_id = customer.id
    for data in BAD_FORMS:
        body = {"kind": "consumer", **data}
        assert client.post("/customers/new", data=body).status_code == 422, data
        assert client.post(f"/customers/{customer_id}/edit", data=body).status_code == 422, data
    for data in (
        {"name": "乙\x00"},
        {"name": "乙", "decision_role": "\x00"},
        {"name": "乙", "phone": "1" * 41},
    ):
        assert client.post(f"/customers/{customer_id}/contacts/new", data=data).status_code == 422
    for url in (
        "/customers/99999999999",
        "/customers/0",
        f"/customers/{customer_id}?before=%00",
        "/customers/?owner_id=99999999999",
        "/customers/?q=" + "x" * 300,
        "/customers/?sort=name&after=" + "A" * 700,
        "/customers/99999999999/contacts/new",
        f"/customers/{customer_id}/contacts/99999999999/edit",
        "/customers/export.csv?kind=alien",
    ):
        assert client.get(url).status_code in (400, 404), url
    with company_scope(acme.id):
        assert db.session.scalar(select(Customer.name).where(Customer.id == customer_id)) == "甲"
