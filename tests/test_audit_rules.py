"""The audit rows of the write rules the generic crawl of tests/test_audit_coverage.py cannot
exercise (forms no page shows as they are posted, uploads, public pages, records the API's copy
of a record cannot create): for each, the request a user makes, the change it made, and the
audit row (action, entity, and for updates the old → new values) written for the company.

tests/test_audit_coverage.py names these tests in ``COVERED_ELSEWHERE``."""

from __future__ import annotations

import io
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from core.db import utcnow
from core.models import AuditLog, Customer, Interaction, ServiceTicket, SlaPolicy
from core.tenancy import company_scope
from core.tickets import open_ticket
from tests import (
    test_insurance_policies,
    test_marketing_web,
    test_pharma_tiering,
    test_property_public,
    test_surveys_web,
)

#: The insurance company of tests/test_insurance_policies.py (agents, products, a customer).
ins = test_insurance_policies.ins
#: The pharma company of tests/test_pharma_tiering.py (an active scheme, four doctors).
clinic = test_pharma_tiering.clinic
#: The property company of tests/test_property_public.py (estates, units, a team, an agent).
estate = test_property_public.estate
#: The marketing company of tests/test_marketing_web.py (six customers, three with SMS consent).
shop = test_marketing_web.shop
#: A company with surveys (tests/test_surveys_web.py).
surveyed = test_surveys_web.surveyed


def audited(db: Any, company: Any, action: str, entity_type: str, entity_id: Any = None) -> Any:
    """The newest audit row of ``company`` with this action and entity (asserted to exist)."""
    db.session.expire_all()
    with company_scope(company.id):
        stmt = select(AuditLog).where(
            AuditLog.action == action, AuditLog.entity_type == entity_type
        )
        if entity_id is not None:
            stmt = stmt.where(AuditLog.entity_id == entity_id)
        row = db.session.scalars(stmt.order_by(AuditLog.id.desc())).first()
    assert row is not None, f"no {action} {entity_type} #{entity_id} in the audit log"
    assert row.company_id == company.id
    return row


def count(db: Any, company: Any, model: Any, *where: Any) -> int:
    db.session.expire_all()
    with company_scope(company.id):
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def one(db: Any, company: Any, model: Any, *where: Any) -> Any:
    db.session.expire_all()
    with company_scope(company.id):
        newest = model.__mapper__.primary_key[0].desc()
        return db.session.scalars(select(model).where(*where).order_by(newest)).first()


def add(db: Any, company: Any, *rows: Any) -> list[int]:
    with company_scope(company.id):
        db.session.add_all(rows)
        db.session.commit()
        return [r.id for r in rows]


def local(moment: Any) -> str:
    from zoneinfo import ZoneInfo

    return moment.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%dT%H:%M")


# -- interactions ------------------------------------------------------------------------------


def test_interaction_create(db, client, company, login_as):
    co = company()
    login_as("manager", co)
    (wang,) = add(db, co, Customer(name="王女士"))
    when = local(utcnow() - timedelta(hours=2))
    form = {"kind": "visit", "occurred_at": when, "duration_minutes": "30", "result": "已修好"}
    assert client.post(f"/interactions/new?customer_id={wang}", data=form).status_code == 302
    row = one(db, co, Interaction)
    assert (row.customer_id, row.result) == (wang, "已修好")
    assert audited(db, co, "create", "interaction", row.id).data["customer_id"] == wang


def test_interaction_edit(db, client, company, login_as):
    co = company()
    me = login_as("sales_rep", co)
    (wang,) = add(db, co, Customer(name="王女士", owner_id=me.id))
    (visit,) = add(
        db, co, Interaction(customer_id=wang, user_id=me.id, kind="visit", occurred_at=utcnow())
    )
    when = local(utcnow() - timedelta(hours=1))
    form = {"kind": "meeting", "occurred_at": when, "duration_minutes": "45"}
    assert client.post(f"/interactions/{visit}/edit", data=form).status_code == 302
    assert one(db, co, Interaction).kind == "meeting"
    changes = audited(db, co, "update", "interaction", visit).data["changes"]
    assert changes["kind"] == ["visit", "meeting"] and changes["duration_minutes"] == [None, 45]


def test_interaction_done(db, client, company, login_as):
    co = company()
    me = login_as("sales_rep", co)
    (wang,) = add(db, co, Customer(name="王女士", owner_id=me.id))
    due = utcnow() - timedelta(days=1)
    (step,) = add(
        db,
        co,
        Interaction(
            customer_id=wang,
            user_id=me.id,
            kind="call",
            occurred_at=utcnow() - timedelta(days=3),
            next_step="发送报价单",
            next_step_due=due,
        ),
    )
    assert client.post(f"/interactions/{step}/done").status_code == 302
    assert one(db, co, Interaction).next_step_done_at is not None
    row = audited(db, co, "update", "interaction", step)
    assert row.data["next_step_done"] is True
    assert row.data["changes"]["next_step_done_at"][0] is None


# -- tickets -----------------------------------------------------------------------------------


def _ticket(db: Any, co: Any, **values: Any) -> int:
    (customer,) = add(db, co, Customer(name="王女士"))
    with company_scope(co.id):
        ticket = open_ticket(customer_id=customer, subject="空调不制冷", **values)
        db.session.commit()
        return ticket.id


def test_ticket_assignment(db, client, company, login_as, make_user):
    co = company()
    agent = make_user("service_agent", co)
    ticket = _ticket(db, co)
    login_as("manager", co)
    form = {"version": 1, "assignee_id": agent.id, "team_id": ""}
    assert client.post(f"/tickets/{ticket}/assignment", data=form).status_code == 302
    assert one(db, co, ServiceTicket).assignee_id == agent.id
    row = audited(db, co, "update", "service_ticket", ticket)
    assert row.data["assignee_id"] == [None, agent.id]
    assert row.data["changes"]["assignee_id"] == [None, agent.id]


def test_ticket_record_followup(db, client, company, login_as, make_user):
    co = company()
    agent = make_user("service_agent", co)
    ticket = _ticket(db, co, assignee_id=agent.id)
    login_as("service_agent", co)
    client.post(f"/tickets/{ticket}/transition/start", data={"start-version": 1})
    client.post(
        f"/tickets/{ticket}/transition/resolve",
        data={"resolve-version": 2, "resolve-comment": "已更换压缩机"},
    )
    assert one(db, co, ServiceTicket).state == "resolved"
    login_as("manager", co)
    form = {"customer_score": 5, "quality_score": 90, "result": "满意"}
    assert client.post(f"/tickets/{ticket}/followup", data=form).status_code == 302
    visit = one(db, co, Interaction, Interaction.ticket_id == ticket)
    assert (visit.kind, visit.customer_score) == ("follow_up", 5)
    row = audited(db, co, "create", "interaction", visit.id)
    assert row.data["follow_up_of"] == ticket and row.data["customer_score"] == 5


def test_ticket_settings_sla(db, client, company, login_as):
    co = company()
    login_as("manager", co)
    minutes = {"urgent": (15, 120), "high": (60, 480), "normal": (240, 1620), "low": (480, 2700)}
    form: dict[str, Any] = {"followup_threshold": 2}
    for priority, (first, resolve) in minutes.items():
        form[f"{priority}__first"], form[f"{priority}__resolution"] = first, resolve
    assert client.post("/tickets/settings/sla", data=form).status_code == 302
    urgent = one(db, co, SlaPolicy, SlaPolicy.priority == "urgent")
    assert (urgent.first_response_minutes, urgent.resolution_minutes) == (15, 120)
    assert audited(db, co, "update", "sla_policy").data["minutes"]["urgent"] == [15, 120]
    form["urgent__resolution"] = 180
    assert client.post("/tickets/settings/sla", data=form).status_code == 302
    assert audited(db, co, "update", "sla_policy").data["minutes"] == {"urgent": [15, 180]}


# -- imports -----------------------------------------------------------------------------------


def _upload(client: Any, data: bytes) -> Any:
    return client.post(
        "/imports/",
        data={"kind": "customers", "file": (io.BytesIO(data), "客户.csv")},
        content_type="multipart/form-data",
    )


def _finished(client: Any, task_id: int) -> dict[str, Any]:
    from core import tasks

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = client.get(f"/imports/{task_id}/status").get_json()
        if state["finished"]:
            tasks.wait(task_id)
            return state
        time.sleep(0.05)
    raise AssertionError("the import did not finish")


def test_import_upload_and_mapping(db, client, company, login_as):
    """The upload keeps the file only (no row, nothing to audit); the mapping's POST starts the
    import, whose run is audited with its file and counts."""
    co = company()
    login_as("manager", co)
    uploaded = _upload(client, "code,name\nK1,甲\nK2,乙\n".encode())
    assert uploaded.status_code == 302 and "/imports/file/" in uploaded.location
    assert count(db, co, AuditLog) == 0 and count(db, co, Customer) == 0
    started = client.post(uploaded.location, data={"map-0": "code", "map-1": "name"})
    assert started.status_code == 302
    assert _finished(client, int(started.location.rsplit("/", 1)[1]))["status"] == "done"
    assert count(db, co, Customer) == 2
    row = audited(db, co, "import", "customer")
    assert (row.data["file"], row.data["created"], row.data["status"]) == ("客户.csv", 2, "done")


def test_import_resume(db, client, company, login_as, failing_import):

    co = company()
    login_as("admin", co)
    lines = ["code,name"] + [f"R{i:03d},客户{i}" for i in range(20)]
    uploaded = _upload(client, "\n".join(lines).encode())
    failing_import(2, RuntimeError("database went away"))
    started = client.post(
        uploaded.location, data={"map-0": "code", "map-1": "name", "mode": "batched", "batch": "10"}
    )
    task_id = int(started.location.rsplit("/", 1)[1])
    assert _finished(client, task_id)["status"] == "failed"
    assert client.post(f"/imports/{task_id}/resume").status_code == 302
    row = audited(db, co, "update", "background_task", task_id)
    assert row.data["changes"]["status"] == ["failed", "queued"]
    assert _finished(client, task_id)["status"] == "done"
    assert count(db, co, Customer) == 20
    assert audited(db, co, "import", "customer").data["status"] == "done"


# -- customers: merge, personal data; plugin settings; channel claims ---------------------------


def test_customer_merge_page(db, client, company, login_as):
    co = company()
    login_as("manager", co)
    survivor, merged = add(
        db, co, Customer(name="康泰医药", phone="13800000001"), Customer(name="康泰 医药")
    )
    url = f"/customers/merge?a={survivor}&b={merged}"
    form = {"survivor": str(survivor), "version_a": "1", "version_b": "1", "confirm": "y"}
    assert client.post(url, data=form).status_code == 302
    assert count(db, co, Customer) == 1
    assert audited(db, co, "merge", "customer", survivor).data


def test_privacy_page_erasure(db, client, company, login_as):
    co = company()
    login_as("admin", co)
    (person,) = add(db, co, Customer(name="赵敏", phone="13912345678"))
    assert (
        client.post(f"/customers/{person}/personal-data", data={"confirm": "赵敏"}).status_code
        == 302
    )
    assert one(db, co, Customer).phone is None
    audited(db, co, "erase", "customer", person)


@pytest.mark.guanxi_plugins("tests.sample_plugin")
def test_plugin_settings(db, client, company, login_as, monkeypatch):
    from dataclasses import replace

    from core.plugins import current
    from core.plugins.settings import Setting, plugin_settings

    manager = current()
    schema = (Setting("limit", "integer", "Limit", "上限", default=5, min=1, max=10),)
    monkeypatch.setitem(
        manager.manifests, "sample", replace(manager.manifests["sample"], settings=schema)
    )
    co = company(plugins=["sample"])
    login_as("admin", co)
    assert client.post("/settings/plugins/sample/settings", data={"limit": "7"}).status_code == 302
    assert plugin_settings("sample", co.id) == {"limit": 7}
    row = audited(db, co, "update", "plugin")
    assert row.data["plugin"] == "sample" and row.data["settings"]["limit"] == 7


def test_channel_add_claim(db, client, company, login_as):
    from core.models import Channel, ChannelClaim

    co = company()
    login_as("manager", co)
    (channel,) = add(db, co, Channel(name="华南经销商", type="distributor"))
    (customer,) = add(db, co, Customer(name="丙药房", code="C-S1"))
    form = {"customer": "C-S1", "note": "首先开发"}
    assert client.post(f"/channels/{channel}/claims", data=form).status_code == 302
    claim = one(db, co, ChannelClaim)
    assert (claim.channel_id, claim.customer_id) == (channel, customer)
    assert audited(db, co, "create", "channel_claim", claim.id).data == {"customer": customer}


# -- sales -------------------------------------------------------------------------------------


def _bearer(db: Any, user: Any, co: Any) -> dict[str, str]:
    from core import tokens

    _row, secret = tokens.issue(user, co.id, "audit")
    db.session.commit()
    return {"Authorization": f"Bearer {secret}"}


def _sales(db: Any, company: Any) -> tuple[Any, int]:
    co = company(plugins=["sales"])
    (customer,) = add(db, co, Customer(name="协和医院", code="C-1", status="existing"))
    return co, customer


def _order(db: Any, co: Any, customer: int, user: Any, price: str = "800") -> int:
    from decimal import Decimal

    from core.testing import company_today
    from plugins.sales import orders as svc

    with company_scope(co.id):
        data = svc.OrderInput(customer, company_today(), [svc.LineInput("产品", 1, Decimal(price))])
        order = svc.create_order(data, user)
        db.session.commit()
        return order.id


def _lines(product: str, quantity: str, price: str) -> dict[str, str]:
    return {"lines-0-product": product, "lines-0-quantity": quantity, "lines-0-unit_price": price}


def test_sales_order_new(db, client, company, login_as):
    from core.testing import company_today
    from plugins.sales.models import Order

    co, customer = _sales(db, company)
    login_as("manager", co)
    form = {
        "customer": f"#{customer} 协和医院",
        "ordered_on": company_today().isoformat(),
        **_lines("阿莫西林胶囊", "10", "120.50"),
    }
    assert client.post("/sales/orders/new", data=form).status_code == 302
    order = one(db, co, Order)
    assert str(order.amount) == "1205.00"
    audited(db, co, "create", "sales_order", order.id)


def test_sales_order_edit(db, client, company, login_as):
    from core.testing import company_today
    from plugins.sales.models import Order

    co, customer = _sales(db, company)
    manager = login_as("manager", co)
    order = _order(db, co, customer, manager)
    form = {
        "ordered_on": company_today().isoformat(),
        "version": str(one(db, co, Order).version),
        "channel_id": "",
        "owner_id": "",
        "notes": "改了数量",
        **_lines("产品", "2", "800"),
    }
    assert client.post(f"/sales/orders/{order}/edit", data=form).status_code == 302
    assert str(one(db, co, Order).amount) == "1600.00"
    changes = audited(db, co, "update", "sales_order", order).data["changes"]
    assert changes["amount"] == ["800.00", "1600.00"] and changes["notes"] == [None, "改了数量"]


def test_sales_payment_reverse(db, client, company, login_as):
    from decimal import Decimal

    from core.testing import company_today
    from plugins.sales import orders as svc
    from plugins.sales.models import Order, Payment

    co, customer = _sales(db, company)
    manager = login_as("manager", co)
    order = _order(db, co, customer, manager)
    with company_scope(co.id):
        payment = svc.record_payment(
            db.session.get(Order, order), Decimal(800), company_today(), manager
        ).id
        db.session.commit()
    assert one(db, co, Order).state == "paid"
    url = f"/sales/orders/{order}/payments/{payment}/reverse"
    assert client.post(url).status_code == 302
    assert (one(db, co, Order).state, count(db, co, Payment)) == ("open", 0)
    audited(db, co, "delete", "sales_payment", payment)


def test_sales_opportunity_call(db, client, company, login_as):
    from decimal import Decimal

    from plugins.sales import funnel

    co, customer = _sales(db, company)
    manager = login_as("manager", co)
    with company_scope(co.id):
        opp = funnel.open_opportunity(
            manager, name="年度采购", customer_id=customer, amount=Decimal(100000)
        ).id
        db.session.commit()
    form = {"outcome": "continuation", "result": "再考虑"}
    assert client.post(f"/sales/opportunities/{opp}/calls", data=form).status_code == 302
    call = one(db, co, Interaction)
    assert (call.subject_type, call.subject_id, call.result) == ("sales_opportunity", opp, "再考虑")
    audited(db, co, "create", "interaction", call.id)


def test_api_sales_orders_create(db, client, company, make_user):
    from plugins.sales.models import Order

    co, customer = _sales(db, company)
    head = _bearer(db, make_user("manager", co), co)
    body = {
        "customer_id": customer,
        "ordered_on": "2026-01-10",
        "lines": [{"product": "布洛芬", "quantity": "4", "unit_price": "25.50"}],
    }
    made = client.post("/api/v1/sales_orders", json=body, headers=head)
    assert made.status_code == 201, made.get_json()
    order = one(db, co, Order)
    assert order.id == made.get_json()["id"] and str(order.amount) == "102.00"
    assert audited(db, co, "create", "sales_order", order.id).data["via"] == "api"


def test_api_sales_payments_update(db, client, company, make_user):
    """Payments are never changed through the API (a manager reverses one in the web): the
    PATCH is refused and writes nothing, so there is nothing to audit."""
    from decimal import Decimal

    from core.testing import company_today
    from plugins.sales import orders as svc
    from plugins.sales.models import Order, Payment

    co, customer = _sales(db, company)
    manager = make_user("manager", co)
    order = _order(db, co, customer, manager)
    with company_scope(co.id):
        payment = svc.record_payment(
            db.session.get(Order, order), Decimal(300), company_today(), manager
        ).id
        db.session.commit()
    head = _bearer(db, manager, co)
    before = count(db, co, AuditLog)
    changed = client.patch(f"/api/v1/sales_payments/{payment}", json={"amount": "1"}, headers=head)
    assert changed.status_code == 403
    assert str(one(db, co, Payment).amount) == "300.00"
    assert count(db, co, AuditLog) == before


# -- insurance ---------------------------------------------------------------------------------


def _agent_form(**values: Any) -> dict[str, Any]:
    day = utcnow().date() + timedelta(days=365)
    return {
        "licence_number": "0201999",
        "licence_classes": ["life", "accident"],
        "licence_expires_on": day.isoformat(),
        "status": "active",
        **values,
    }


def test_insurance_agent_new(db, client, ins):
    from plugins.insurance.models import Agent

    test_insurance_policies.client_login(client, ins.manager, ins.company)
    form = _agent_form(mode="new", channel_name="吴新人", channel_type="insurance_agent")
    assert client.post("/insurance/agents/new", data=form).status_code == 302
    agent = one(db, ins.company, Agent, Agent.licence_number == "0201999")
    assert agent.licence_classes == ["life", "accident"]
    audited(db, ins.company, "create", "insurance_agent", agent.id)
    audited(db, ins.company, "create", "channel", agent.channel_id)


def test_insurance_agent_edit(db, client, ins):
    from plugins.insurance.models import Agent

    test_insurance_policies.client_login(client, ins.manager, ins.company)
    version = one(db, ins.company, Agent, Agent.id == ins.zw).version
    form = _agent_form(licence_number="LIC-ZW", team="总部", version=str(version))
    assert client.post(f"/insurance/agents/{ins.zw}/edit", data=form).status_code == 302
    assert one(db, ins.company, Agent, Agent.id == ins.zw).team == "总部"
    changes = audited(db, ins.company, "update", "insurance_agent", ins.zw).data["changes"]
    assert changes["team"] == [None, "总部"]


def test_api_insurance_agents_create(db, client, ins):
    from core.models import Channel
    from plugins.insurance.models import Agent

    (branch,) = add(db, ins.company, Channel(name="工行支行", type="bancassurance"))
    head = _bearer(db, ins.manager, ins.company)
    body = {"channel_id": branch, "licence_number": "B77", "licence_classes": ["life"],
            "licence_expires_on": "2028-01-31", "upline_id": ins.zw}  # fmt: skip
    created = client.post("/api/v1/insurance_agents", json=body, headers=head)
    assert created.status_code == 201, created.get_json()
    agent = one(db, ins.company, Agent, Agent.channel_id == branch)
    assert (agent.id, agent.upline_id) == (created.get_json()["id"], ins.zw)
    assert audited(db, ins.company, "create", "insurance_agent", agent.id).data["via"] == "api"


def test_api_insurance_agents_update(db, client, ins):
    from plugins.insurance.models import Agent

    head = _bearer(db, ins.manager, ins.company)
    url = f"/api/v1/insurance_agents/{ins.zw}"
    changed = client.patch(url, json={"team": "二组"}, headers=head)
    assert changed.status_code == 200, changed.get_json()
    assert one(db, ins.company, Agent, Agent.id == ins.zw).team == "二组"
    row = audited(db, ins.company, "update", "insurance_agent", ins.zw)
    assert row.data["via"] == "api" and row.data["changes"]["team"] == [None, "二组"]


def test_insurance_policy_new(db, client, ins):
    from plugins.insurance.models import Policy

    test_insurance_policies.client_login(client, ins.sales_rep, ins.company)
    form = test_insurance_policies.form_data(ins)
    assert client.post("/insurance/policies/new", data=form).status_code == 302
    policy = one(db, ins.company, Policy)
    assert (policy.customer_id, str(policy.premium)) == (ins.chen, "1250.50")
    audited(db, ins.company, "create", "insurance_policy", policy.id)


def test_insurance_policy_renewal(db, client, ins):
    from plugins.insurance.models import Policy

    start = utcnow().date() - timedelta(days=300)
    old = ins.policy(premium="1000", start=start, applied=start)
    ins.issue(old, activate=True)
    test_insurance_policies.client_login(client, ins.sales_rep, ins.company)
    assert client.post(f"/insurance/policies/{old}/renewal", data={}).status_code == 302
    renewal = one(db, ins.company, Policy, Policy.renewal_of_id == old)
    assert (renewal.state, renewal.policy_year) == ("application", 2)
    audited(db, ins.company, "create", "insurance_policy", renewal.id)


def test_insurance_lead_transition(db, client, ins):
    from plugins.insurance import leads
    from plugins.insurance.models import Lead

    with company_scope(ins.company.id):
        lead = leads.create_lead(leads.LeadInput(name="甲", agent_id=ins.zw, source="walk_in"))
        db.session.commit()
        lead_id, version = lead.id, lead.version
    test_insurance_policies.client_login(client, ins.manager, ins.company)
    url = f"/insurance/leads/{lead_id}/transition/contact"
    assert client.post(url, data={"version": version}).status_code == 302
    assert one(db, ins.company, Lead).state == "contacted"
    row = audited(db, ins.company, "transition", "insurance_lead", lead_id)
    assert row.data["changes"]["state"] == ["new", "contacted"]


def test_insurance_schedules(db, client, ins):
    from plugins.insurance.models import CommissionSchedule

    test_insurance_policies.client_login(client, ins.manager, ins.company)
    form = {"product_id": str(ins.life), "channel_type": "insurance_agent",
            "first_year_rate": "30", "renewal_rate": "8", "override_rates": "5，2",
            "valid_from": "2026-01-01", "valid_to": ""}  # fmt: skip
    assert client.post("/insurance/commissions/schedules", data=form).status_code == 302
    schedule = one(db, ins.company, CommissionSchedule)
    assert schedule.override_rates == ["5", "2"]
    row = audited(db, ins.company, "create", "insurance_commission_schedule", schedule.id)
    assert row.data["first_year_rate"] == "30"


# -- pharma ------------------------------------------------------------------------------------


def _doctor(db: Any, clinic: Any, name: str) -> Customer:
    return one(db, clinic, Customer, Customer.name == name)


def test_pharma_doctor_override(db, client, login_as, clinic):
    from core.testing import company_today
    from plugins.pharma.models import TierOverride

    rep = login_as("sales_rep", clinic)
    with company_scope(clinic.id):
        zhao = db.session.scalar(select(Customer).where(Customer.name == "赵医生"))
        zhao.owner_id = rep.id
        db.session.commit()
        zhao_id = zhao.id
    until = (company_today() + timedelta(days=60)).isoformat()
    form = {"tier": "A", "reason": "牵头多中心研究", "locked_until": until}
    assert client.post(f"/pharma/doctors/{zhao_id}/override", data=form).status_code == 302
    request = one(db, clinic, TierOverride)
    assert (request.customer_id, request.tier, request.state) == (zhao_id, "A", "pending")
    row = audited(db, clinic, "create", "pharma_tier_override", request.id)
    assert row.data["tier"] == "A" and row.user_id == rep.id


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_pharma_override_decide(db, client, login_as, clinic, decision):
    from core.testing import company_today
    from plugins.pharma import tiering
    from plugins.pharma.models import TierOverride

    rep = login_as("sales_rep", clinic)
    with company_scope(clinic.id):
        zhao = db.session.scalar(select(Customer).where(Customer.name == "赵医生"))
        until = company_today() + timedelta(days=60)
        request = tiering.request_override(rep, zhao, tier="A", reason="研究", locked_until=until)
        db.session.commit()
        request_id, version = request.id, request.version
    login_as("manager", clinic)
    form = {"version": str(version), "comment": "同意" if decision == "approve" else "不符合"}
    assert client.post(f"/pharma/overrides/{request_id}/{decision}", data=form).status_code == 302
    state = one(db, clinic, TierOverride).state
    assert state == {"approve": "approved", "reject": "rejected"}[decision]
    row = audited(db, clinic, "transition", "pharma_tier_override", request_id)
    assert row.data["changes"]["state"] == ["pending", state]


def test_pharma_scheme_new(db, client, login_as, clinic):
    from plugins.pharma.models import TierScheme

    login_as("manager", clinic)
    form = test_pharma_tiering._form(name="第二方案")
    assert client.post("/pharma/tiering/schemes/new", data=form).status_code == 302
    scheme = one(db, clinic, TierScheme, TierScheme.name == "第二方案")
    assert scheme.active is False
    assert audited(db, clinic, "create", "pharma_tier_scheme", scheme.id).data["name"] == "第二方案"
    audited(db, clinic, "create", "pharma_tier_scheme_version")


def test_pharma_scheme_edit(db, client, login_as, clinic):
    from plugins.pharma import tiering
    from plugins.pharma.models import TierScheme

    login_as("manager", clinic)
    scheme = one(db, clinic, TierScheme, TierScheme.active.is_(True)).id
    form = test_pharma_tiering._form(**{"criteria-0-weight": "150", "note": "处方潜力加权"})
    assert client.post(f"/pharma/tiering/schemes/{scheme}/edit", data=form).status_code == 302
    with company_scope(clinic.id):
        version = tiering.active_version()
        assert (version.number, version.note) == (2, "处方潜力加权")
    row = audited(db, clinic, "create", "pharma_tier_scheme_version", version.id)
    assert (row.data["scheme_id"], row.data["number"]) == (scheme, 2)


def test_pharma_scheme_activate(db, client, login_as, clinic):
    from plugins.pharma import tiering
    from plugins.pharma.models import TierScheme

    login_as("manager", clinic)
    with company_scope(clinic.id):
        config = tiering.validate_config(test_pharma_tiering.SCHEME)
        second = tiering.create_scheme("第二方案", config).id
        db.session.commit()
    assert client.post(f"/pharma/tiering/schemes/{second}/activate").status_code == 302
    assert one(db, clinic, TierScheme, TierScheme.active.is_(True)).id == second
    assert audited(db, clinic, "update", "pharma_tier_scheme", second).data["active"] is True


def test_pharma_visits_new(db, client, login_as, clinic):
    rep = login_as("sales_rep", clinic)
    with company_scope(clinic.id):
        li = db.session.scalar(select(Customer).where(Customer.name == "李医生"))
        li.owner_id = rep.id
        db.session.commit()
        li_id = li.id
    when = local(utcnow() - timedelta(minutes=30))
    form = {"occurred_at": when, "duration_minutes": "25", "visit_type": "academic",
            "products": "二甲双胍", "samples": "2"}  # fmt: skip
    assert client.post(f"/pharma/visits/new?customer_id={li_id}", data=form).status_code == 302
    visit = one(db, clinic, Interaction, Interaction.user_id == rep.id)
    assert (visit.customer_id, visit.kind, visit.duration_minutes) == (li_id, "visit", 25)
    audited(db, clinic, "create", "interaction", visit.id)


# -- property ----------------------------------------------------------------------------------


def _resident(db: Any, estate: Any, name: str = "王芳") -> int:
    (resident,) = add(db, estate.company, Customer(name=name, phone="13800138000"))
    return resident


def _complaint(db: Any, estate: Any) -> int:
    from plugins.property import complaints

    resident = _resident(db, estate)
    with company_scope(estate.company.id):
        ticket = complaints.file_complaint(
            customer_id=resident,
            subject="厨房漏水",
            unit_id=estate.unit,
            category_id=estate.classes[("category", "repairs")],
            type="property_repair",
        )
        db.session.commit()
        return ticket.id


def test_property_complaint_new(db, client, login_as, estate):
    from plugins.property.models import Complaint

    resident = _resident(db, estate)
    login_as("service_agent", estate.company)
    form = {"customer_id": resident, "unit_id": estate.unit, "type": "property_repair",
            "category_id": estate.classes[("category", "repairs")], "priority": "normal",
            "intake_channel": "phone", "subject": "卫生间漏水"}  # fmt: skip
    answer = client.post("/property/complaints/new", data=form)
    assert answer.status_code == 302
    ticket = one(db, estate.company, ServiceTicket)
    assert (ticket.customer_id, ticket.subject) == (resident, "卫生间漏水")
    assert one(db, estate.company, Complaint).unit_id == estate.unit
    assert audited(db, estate.company, "create", "service_ticket", ticket.id).data["property"]


def test_property_complaint_dispatch(db, client, login_as, estate):
    ticket = _complaint(db, estate)
    login_as("service_agent", estate.company)
    version = one(db, estate.company, ServiceTicket).version
    form = {"team_id": estate.team, "assignee_id": estate.agent.id, "version": version}
    assert client.post(f"/property/complaints/{ticket}/dispatch", data=form).status_code == 302
    row = one(db, estate.company, ServiceTicket)
    assert (row.state, row.team_id, row.assignee_id) == ("assigned", estate.team, estate.agent.id)
    changes = audited(db, estate.company, "transition", "service_ticket", ticket).data["changes"]
    assert changes["state"][1] == "assigned" and changes["team_id"] == [None, estate.team]


def test_property_resident_link(db, client, login_as, estate):
    from plugins.property.models import Residence

    resident = _resident(db, estate, "李先生")
    login_as("service_agent", estate.company)
    form = {"customer_id": resident, "role": "tenant"}
    assert client.post(f"/property/units/{estate.unit}/residents", data=form).status_code == 302
    residence = one(db, estate.company, Residence)
    assert (residence.unit_id, residence.customer_id, residence.role) == (
        estate.unit,
        resident,
        "tenant",
    )
    row = audited(db, estate.company, "create", "property_residence", residence.id)
    assert row.data == {"unit_id": estate.unit, "customer_id": resident, "role": "tenant"}


def test_property_residence_end(db, client, login_as, estate):
    from plugins.property.models import Residence

    resident = _resident(db, estate)
    (residence,) = add(
        db, estate.company, Residence(unit_id=estate.unit, customer_id=resident, role="owner")
    )
    login_as("service_agent", estate.company)
    assert client.post(f"/property/residences/{residence}/end").status_code == 302
    assert one(db, estate.company, Residence).until is not None
    row = audited(db, estate.company, "update", "property_residence", residence)
    assert row.data["changes"]["until"][0] is None


def test_property_public_complaint(db, client, estate):
    answer = test_property_public.post(client, estate, test_property_public.form(estate))
    assert answer.status_code == 302
    ticket = one(db, estate.company, ServiceTicket)
    customer = one(db, estate.company, Customer)
    assert (ticket.customer_id, customer.phone) == (customer.id, "13800138000")
    assert audited(db, estate.company, "create", "service_ticket", ticket.id).user_id is None
    audited(db, estate.company, "create", "customer", customer.id)


# -- marketing ---------------------------------------------------------------------------------


def test_marketing_campaign_launch(db, client, login_as, shop):
    from plugins.marketing import campaigns
    from plugins.marketing.models import Campaign, Message

    with company_scope(shop.id):
        campaign = campaigns.create_campaign("活动", body="{name}，您好", channel="sms").id
        db.session.commit()
    login_as("manager", shop)
    assert client.post(f"/marketing/campaigns/{campaign}/launch").status_code == 302
    assert one(db, shop, Campaign).state == "sent"
    assert count(db, shop, Message) == 3  # the three customers who agreed to SMS marketing
    row = audited(db, shop, "update", "marketing_campaign", campaign)
    assert row.data["changes"]["state"] == ["draft", "sent"]


def test_record_consent(db, client, login_as, shop):
    from core import consent

    login_as("manager", shop)
    customer = one(db, shop, Customer).id
    form = {"channel": "email", "purpose": "care", "granted": "1", "source": "会员申请表"}
    assert client.post(f"/customers/{customer}/consent", data=form).status_code == 302
    with company_scope(shop.id):
        assert consent.of_customer(customer)[("email", "care")].granted
    row = audited(db, shop, "consent", "customer", customer)
    assert (row.data["channel"], row.data["granted"], row.data["before"]) == ("email", True, None)


def test_marketing_redeem(db, client, login_as, shop):
    from plugins.marketing import loyalty
    from plugins.marketing.models import Reward

    manager = login_as("manager", shop)
    customer = one(db, shop, Customer).id
    (reward,) = add(db, shop, Reward(name="保温杯", points=10))
    with company_scope(shop.id):
        loyalty.enrol(customer, user=manager)
        loyalty.adjust(customer, 25, "开卡礼", user=manager)
        db.session.commit()
    form = {"reward_id": str(reward)}
    assert client.post(f"/marketing/customers/{customer}/redeem", data=form).status_code == 302
    with company_scope(shop.id):
        assert loyalty.balance(customer) == 15
    assert audited(db, shop, "redeem", "customer", customer).data == {
        "reward_id": reward,
        "points": 10,
    }


def test_marketing_segment_import(db, client, login_as, shop):
    from plugins.marketing import segments
    from plugins.marketing.models import SegmentMember

    with company_scope(shop.id):
        segment = segments.save_segment("展会名单", kind="static").id
        db.session.commit()
    login_as("manager", shop)
    form = {"lines": "13900000001\n13900000002\nnobody"}
    assert client.post(f"/marketing/segments/{segment}/import", data=form).status_code == 302
    assert count(db, shop, SegmentMember) == 2
    row = audited(db, shop, "import", "marketing_segment", segment)
    assert row.data == {"added": 2, "unmatched": 1}


def test_marketing_public_unsubscribe(app, db, client, shop):
    from core import consent
    from plugins.marketing import campaigns
    from plugins.marketing.models import Message

    with company_scope(shop.id):
        campaigns.launch(campaigns.create_campaign("活动", body="hi", channel="sms"))
        db.session.commit()
        message = one(db, shop, Message)
        with app.test_request_context("/"):
            token = campaigns.token_for(message.id)
    assert client.post(f"/p/{shop.code}/marketing/u/{token}").status_code == 200
    with company_scope(shop.id):
        assert not consent.of_customer(message.customer_id)[("sms", "marketing")].granted
    row = audited(db, shop, "consent", "customer", message.customer_id)
    assert (row.data["granted"], row.data["before"], row.user_id) == (False, True, None)


# -- surveys -----------------------------------------------------------------------------------


@pytest.mark.parametrize("step", ["launch", "finish"])
def test_surveys_campaign_step(db, client, login_as, surveyed, step):
    from plugins.surveys import campaigns
    from plugins.surveys.models import Campaign
    from tests.test_surveys import build

    with company_scope(surveyed.id):
        questionnaire, _ids = build(db)
        campaign = campaigns.create_campaign(questionnaire, "回访")
        if step == "finish":
            campaigns.launch_campaign(campaign)
        db.session.commit()
        campaign_id = campaign.id
    login_as("manager", surveyed)
    assert client.post(f"/surveys/campaigns/{campaign_id}/{step}").status_code == 302
    before, after = {"launch": ("draft", "running"), "finish": ("running", "finished")}[step]
    assert one(db, surveyed, Campaign).state == after
    row = audited(db, surveyed, "update", "surveys_campaign", campaign_id)
    assert row.data["changes"]["state"] == [before, after]


def test_surveys_dimension_add(db, client, login_as, surveyed):
    from plugins.surveys.models import Dimension, Questionnaire

    login_as("manager", surveyed)
    assert (
        client.post("/surveys/questionnaires/new", data={"name": "物业满意度"}).status_code == 302
    )
    questionnaire = one(db, surveyed, Questionnaire).id
    form = {"code": "clean", "label": "Cleaning", "label_zh": "保洁"}
    url = f"/surveys/questionnaires/{questionnaire}/dimensions"
    assert client.post(url, data=form).status_code == 302
    assert one(db, surveyed, Dimension).code == "clean"
    row = audited(db, surveyed, "update", "surveys_questionnaire", questionnaire)
    assert row.data["edit"] == "surveys.dimension_add"


def test_surveys_question_delete(db, client, login_as, surveyed):
    from plugins.surveys.models import Question
    from tests.test_surveys import build

    with company_scope(surveyed.id):
        questionnaire, ids = build(db)
        db.session.commit()
        questionnaire_id = questionnaire.id
    login_as("manager", surveyed)
    assert client.post(f"/surveys/questions/{ids['c']}/delete").status_code == 302
    assert count(db, surveyed, Question, Question.id == ids["c"]) == 0
    row = audited(db, surveyed, "delete", "surveys_question", ids["c"])
    assert row.data == {"questionnaire_id": questionnaire_id}


def test_surveys_phone_entry(db, client, login_as, surveyed):
    from plugins.surveys.models import Response

    _campaign, ids, invitations = test_surveys_web.running(db, surveyed)
    agent = login_as("service_agent", surveyed)
    url = f"/surveys/invitations/{invitations[0]}/phone"
    assert client.post(url, data=test_surveys_web.good(ids)).status_code == 302
    response = one(db, surveyed, Response)
    assert (response.mode, response.user_id) == ("phone", agent.id)
    row = audited(db, surveyed, "create", "surveys_response", response.id)
    assert row.data == {"invitation_id": invitations[0], "mode": "phone"}


def test_surveys_public_answer(db, client, surveyed):
    from plugins.surveys.models import Response

    _campaign, ids, invitations = test_surveys_web.running(db, surveyed)
    url = test_surveys_web.link(surveyed, invitations[0])
    assert client.post(url, data=test_surveys_web.good(ids)).status_code == 200
    response = one(db, surveyed, Response)
    assert (response.mode, response.user_id) == ("link", None)
    row = audited(db, surveyed, "create", "surveys_response", response.id)
    assert row.data == {"invitation_id": invitations[0], "mode": "link"}


def test_surveys_public_stop(db, client, surveyed):
    from plugins.surveys.models import Invitation

    _campaign, _ids, invitations = test_surveys_web.running(db, surveyed)
    url = test_surveys_web.link(surveyed, invitations[0])
    assert client.post(url + "/stop").status_code == 200
    invitation = one(db, surveyed, Invitation)
    row = audited(db, surveyed, "consent", "customer", invitation.customer_id)
    assert (row.data["purpose"], row.data["granted"], row.user_id) == ("survey", False, None)
