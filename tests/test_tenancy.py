"""Tenancy: every business model's rows are invisible and unwritable from another company."""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from core import models
from core.db import utcnow
from core.models import (
    ApiToken,
    AuditLog,
    BackgroundTask,
    CalendarRecord,
    Channel,
    ChannelClaim,
    Comment,
    CompanyPlugin,
    CompanySetting,
    Consent,
    Contact,
    Customer,
    CustomerTag,
    Interaction,
    Membership,
    Notification,
    Obligation,
    ServiceTicket,
    SlaPolicy,
    Tag,
    Team,
    User,
    WorkflowHistory,
)
from core.tenancy import TenancyError, TenantMixin, company_scope


def build(model, refs):
    """A valid new row of ``model`` in the company in scope (``refs`` holds its parents)."""
    now = utcnow()
    return {
        Customer: lambda: Customer(name="张三"),
        Contact: lambda: Contact(customer_id=refs["customer"].id, name="李主任"),
        Channel: lambda: Channel(name="华东代理"),
        ServiceTicket: lambda: ServiceTicket(customer_id=refs["customer"].id, subject="报修"),
        SlaPolicy: lambda: SlaPolicy(
            priority="urgent", first_response_minutes=30, resolution_minutes=240
        ),
        Interaction: lambda: Interaction(customer_id=refs["customer"].id, purpose="电话回访"),
        AuditLog: lambda: AuditLog(action="create", entity_type="customer"),
        WorkflowHistory: lambda: WorkflowHistory(
            workflow="ticket",
            subject_type="service_ticket",
            subject_id=1,
            transition="start",
            from_state="new",
            to_state="in_progress",
        ),
        Team: lambda: Team(name="客服一组"),
        Membership: lambda: Membership(user_id=refs["spare"].id, role="agent"),
        CalendarRecord: lambda: CalendarRecord(name="default", config={}),
        Obligation: lambda: Obligation(
            kind="ticket.resolution",
            subject_type="service_ticket",
            subject_id=1,
            target_minutes=60,
            warn_at=now,
            due_at=now + timedelta(hours=1),
            escalate_at=now + timedelta(hours=2),
        ),
        CompanyPlugin: lambda: CompanyPlugin(plugin="sales"),
        Notification: lambda: Notification(user_id=refs["user"].id, kind="x", message="到期提醒"),
        ChannelClaim: lambda: ChannelClaim(
            channel_id=refs["channel"].id, customer_id=refs["customer"].id
        ),
        Comment: lambda: Comment(subject_type="customer", subject_id=1, body="@李主任 请跟进"),
        CompanySetting: lambda: CompanySetting(key="classify", value={}),
        Tag: lambda: Tag(name="重点客户"),
        Consent: lambda: Consent(
            customer_id=refs["customer"].id, channel="sms", purpose="survey", source="电话"
        ),
        CustomerTag: lambda: CustomerTag(customer_id=refs["customer"].id, tag_id=refs["tag"].id),
        BackgroundTask: lambda: BackgroundTask(kind="import", target="core.importer:run"),
        ApiToken: lambda: ApiToken(
            user_id=refs["user"].id, name="ERP", prefix="gx_abc", token_hash=secrets.token_hex(32)
        ),
    }[model]()


CORE_TENANT_MODELS = sorted(
    (m.class_ for m in models.Customer.registry.mappers if issubclass(m.class_, TenantMixin)),
    key=lambda cls: cls.__name__,
)
CORE_TENANT_MODELS = [m for m in CORE_TENANT_MODELS if m.__module__.startswith("core.")]


def test_every_core_business_model_is_covered_here():
    builders = {
        "ApiToken", "AuditLog", "CalendarRecord", "Channel", "ChannelClaim", "Comment",
        "BackgroundTask",
        "CompanyPlugin",
        "CompanySetting", "Consent", "Contact", "Customer", "CustomerTag", "Interaction",
        "Membership",
        "Notification", "Obligation", "ServiceTicket", "SlaPolicy", "Tag", "Team",
        "WorkflowHistory",
    }  # fmt: skip
    assert {m.__name__ for m in CORE_TENANT_MODELS} == builders


@pytest.fixture
def two_companies(app, db, company, make_user):
    a, b = company(code="a"), company(code="b")
    rows = {}
    for co in (a, b):
        user = make_user("admin", co)
        spare = User(email=f"spare@{co.code}.test", name="spare", password_hash="!")
        db.session.add(spare)
        db.session.commit()
        with company_scope(co.id):
            customer = Customer(name=f"{co.code}-customer")
            channel, tag = Channel(name=f"{co.code}-channel"), Tag(name="VIP")
            db.session.add_all([customer, channel, tag])
            db.session.flush()
            refs = {
                "customer": customer,
                "channel": channel,
                "tag": tag,
                "user": user,
                "spare": spare,
            }
            made = {}
            for model in CORE_TENANT_MODELS:
                row = model() if model in (Customer,) else build(model, refs)
                if model is Customer:
                    row.name = "又一个客户"
                db.session.add(row)
                made[model] = row
            db.session.commit()
            rows[co.code] = {m: r.id for m, r in made.items()} | {"user": user.id}
    return a.id, b.id, rows


@pytest.mark.parametrize("model", CORE_TENANT_MODELS, ids=lambda m: m.__name__)
def test_reading_another_companys_row_finds_nothing(app, db, two_companies, model):
    a, b, rows = two_companies
    theirs = rows["b"][model]
    db.session.expunge_all()
    with company_scope(a):
        assert db.session.get(model, theirs) is None
        assert db.session.scalar(select(model).where(model.id == theirs)) is None
        ids = set(db.session.scalars(select(model.id)))
        assert rows["a"][model] in ids and theirs not in ids
        assert db.session.scalar(select(func.count()).select_from(model)) == len(ids)


@pytest.mark.parametrize("model", CORE_TENANT_MODELS, ids=lambda m: m.__name__)
def test_writing_another_companys_row_is_refused(app, db, two_companies, model):
    a, b, rows = two_companies
    with company_scope(b):
        theirs = db.session.get(model, rows["b"][model])
    with company_scope(a):
        # an update of a row loaded elsewhere
        theirs.company_id = theirs.company_id  # no-op assignment marks nothing; touch a column
        db.session.add(theirs)
        candidates = [
            c for c in model.__mapper__.column_attrs if c.key not in ("id", "company_id", "version")
        ]
        # a plain column if there is one (a link table has only foreign keys)
        column = next((c for c in candidates if not c.columns[0].foreign_keys), candidates[0]).key
        setattr(theirs, column, getattr(theirs, column))
        from sqlalchemy.orm.attributes import flag_modified

        flag_modified(theirs, column)
        with pytest.raises(TenancyError, match="belongs to another company"):
            db.session.flush()
        db.session.rollback()
        # a delete
        with company_scope(b):
            theirs = db.session.get(model, rows["b"][model])
        db.session.delete(theirs)
        with pytest.raises(TenancyError, match="belongs to another company"):
            db.session.flush()
        db.session.rollback()
        # a bulk UPDATE through the ORM touches only our own rows
        result = db.session.execute(
            update(model).where(model.id == rows["b"][model]).values(company_id=a)
        )
        assert result.rowcount == 0
        db.session.rollback()
        # creating a row for the other company
        row = build(
            model,
            {
                "customer": Customer(id=0),
                "channel": _User(0),
                "tag": _User(0),
                "user": _User(rows["a"]["user"]),
                "spare": _User(0),
            },
        )
        row.company_id = b
        db.session.add(row)
        with pytest.raises(TenancyError, match="cannot be created here"):
            db.session.flush()
        db.session.rollback()


class _User:
    def __init__(self, user_id):
        self.id = user_id


@pytest.mark.parametrize(
    "model", [Contact, ServiceTicket, Interaction, Consent], ids=lambda m: m.__name__
)
def test_pointing_at_another_companys_customer_is_refused(app, db, two_companies, model):
    a, b, rows = two_companies
    theirs = rows["b"][Customer]
    with company_scope(a):
        row = build(model, {"customer": _User(theirs)})
        db.session.add(row)
        with pytest.raises(TenancyError, match="another company"):
            db.session.flush()
        db.session.rollback()
        with company_scope(b):
            their_customer = db.session.get(Customer, theirs)
        if not hasattr(model, "customer"):
            return
        mine = db.session.get(model, rows["a"][model])
        mine.customer = their_customer
        with pytest.raises(TenancyError, match="another company"):
            db.session.flush()
        db.session.rollback()


def test_no_company_in_scope_is_an_error_not_every_company(app, db, two_companies):
    with pytest.raises(TenancyError, match="no company in scope"):
        db.session.scalars(select(Customer)).all()


def test_a_user_cannot_switch_to_a_company_they_do_not_belong_to(app, client, company, login_as):
    a, b = company(), company()
    login_as("admin", a)
    response = client.post(f"/switch/{b.id}")
    assert response.status_code in (403, 404)
    with client.session_transaction() as session:
        assert session["company_id"] == a.id


def test_a_session_pointing_at_a_foreign_company_sees_nothing(app, db, client, company, login_as):
    a, b = company(), company()
    with company_scope(b.id):
        db.session.add(Customer(name="别家的客户"))
        db.session.commit()
    login_as("admin", a)
    with client.session_transaction() as session:
        session["company_id"] = b.id  # e.g. a stale cookie after membership was revoked
    assert "别家的客户" not in client.get("/customers/").get_data(as_text=True)
