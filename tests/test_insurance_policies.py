"""Insurance products and policies (issue 8): the product page, the policy form with its parties
and computed amounts, the workflow with the licence gate (web and API), the premium's sales
order, cancellation, renewals and their notices on simulated dates, the daily job, the list and
its export, the API, the reports, the customer panel and timeline, the demo, and a company
without insurance getting 404."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from core import clocks, tokens, workflow
from core.models import (
    AuditLog,
    Contact,
    Customer,
    Notification,
    Obligation,
    WorkflowHistory,
)
from core.tenancy import company_scope
from core.testing import QueryCounter, company_today
from plugins.insurance import agents
from plugins.insurance import policies as svc
from plugins.insurance.models import Policy, PolicyParty, Product
from plugins.sales import orders
from plugins.sales.models import Order

D = Decimal
SHANGHAI = ZoneInfo("Asia/Shanghai")
TODAY = company_today()


def sh(day: date, hour: int = 10) -> datetime:
    """``hour`` o'clock of ``day`` in Shanghai."""
    return datetime.combine(day, time(hour), SHANGHAI)


def text(response) -> str:
    return response.get_data(as_text=True)


def client_login(client, user, company) -> None:
    """Log ``user`` in to ``company`` in English (messages are asserted in English)."""
    from core.db import db

    user.locale = "en"
    db.session.commit()
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)
        session["_fresh"] = True
        session["company_id"] = company.id


@pytest.fixture
def ins(app, db, company, make_user):
    """A company with insurance: admin, manager, sales rep, viewer; agents 张伟 (licence
    LIC-ZW, life and health, valid) and 赵磊 (licence LIC-ZL-OLD, life, expired 10 days ago), a
    broker channel; products 终身寿险 L1 (life, 12 months, renewable), 意外险 A1 (accident),
    定期寿险 T20 (life, 240 months, not renewable); policyholder 陈先生 with contacts 陈太太,
    陈小明, 陈小红 and another customer 李女士 with contact 李先生. A company without
    insurance. ``ins.policy(...)`` saves an application through the service,
    ``ins.issue(id)`` submits and issues it as the manager."""
    co = company(plugins=["insurance"])
    plain = company()
    people = {r: make_user(r, co) for r in ("admin", "manager", "sales_rep", "viewer")}
    with company_scope(co.id):
        zw = agents.create_agent(
            agents.AgentInput(
                channel_name="张伟",
                channel_type="insurance_agent",
                licence_number="LIC-ZW",
                licence_classes=["life", "health"],
                licence_expires_on=TODAY + timedelta(days=400),
            )
        )
        db.session.flush()  # the licence clock, before the next read of the plugins
        zl = agents.create_agent(
            agents.AgentInput(
                channel_name="赵磊",
                channel_type="insurance_agent",
                licence_number="LIC-ZL-OLD",
                licence_classes=["life"],
                licence_expires_on=TODAY - timedelta(days=10),
            )
        )
        from core.models import Channel

        broker = Channel(name="明亚经纪", type="broker")
        web = Channel(name="官网", type="internet")
        life = Product(code="L1", name="终身寿险", product_class="life", term_months=12)
        accident = Product(code="A1", name="意外险", product_class="accident", term_months=12)
        term = Product(
            code="T20", name="定期寿险", product_class="life", term_months=240, renewable=False
        )
        chen = Customer(
            name="陈先生",
            code="C-1",
            status="existing",
            region="上海市",
            owner_id=people["sales_rep"].id,
        )
        li = Customer(name="李女士", code="C-2", status="existing", channel_id=None)
        db.session.add_all([broker, web, life, accident, term, chen, li])
        db.session.flush()
        wife = Contact(customer_id=chen.id, name="陈太太")
        son = Contact(customer_id=chen.id, name="陈小明")
        daughter = Contact(customer_id=chen.id, name="陈小红")
        other = Contact(customer_id=li.id, name="李先生")
        db.session.add_all([wife, son, daughter, other])
        db.session.commit()
        ids = SimpleNamespace(
            zw=zw.id,
            zw_channel=zw.channel_id,
            zl=zl.id,
            broker=broker.id,
            web=web.id,
            life=life.id,
            accident=accident.id,
            term=term.id,
            chen=chen.id,
            li=li.id,
            wife=wife.id,
            son=son.id,
            daughter=daughter.id,
            other=other.id,
        )

    def policy(
        *,
        product="life",
        agent="zw",
        premium="1000",
        frequency="annual",
        start=None,
        applied=None,
        customer="chen",
        **kw,
    ) -> int:
        with company_scope(co.id):
            data = svc.PolicyInput(
                customer_id=getattr(ids, customer),
                product_id=getattr(ids, product),
                premium=D(premium),
                frequency=frequency,
                start_on=start or TODAY,
                applied_on=applied or min(start or TODAY, TODAY),
                agent_id=getattr(ids, agent) if agent else None,
                **kw,
            )
            assert svc.problems(data) == {}
            made = svc.create_policy(data, people["manager"])
            db.session.commit()
            return made.id

    def issue(policy_id: int, *, at=None, activate=False) -> None:
        with company_scope(co.id):
            row = db.session.get(Policy, policy_id)
            workflow.transition(row, "submit", user=people["manager"], at=at)
            workflow.transition(row, "issue", user=people["manager"], at=at)
            if activate:
                workflow.transition(row, "activate", user=people["manager"], at=at)
            db.session.commit()

    return SimpleNamespace(
        company=co, plain=plain, policy=policy, issue=issue, **people, **vars(ids)
    )


def get(db, ins, model, row_id):
    with company_scope(ins.company.id):
        return db.session.get(model, row_id)


def api_headers(user, company) -> dict[str, str]:
    _row, secret = tokens.issue(user, company.id, "test")
    return {"Authorization": f"Bearer {secret}"}


# -- products -------------------------------------------------------------------------------------


def test_managers_add_and_edit_products_with_errors_at_their_fields(app, db, client, ins):
    client_login(client, ins.manager, ins.company)
    page = client.get("/insurance/products")
    assert page.status_code == 200 and "终身寿险" in text(page)
    bad = client.post(
        "/insurance/products/new",
        data={"code": "L1", "name": "新寿险", "product_class": "life", "term_months": "12"},
    )
    assert bad.status_code == 422
    assert "Another product already has the code L1." in text(bad)
    bad = client.post(
        "/insurance/products/new",
        data={"code": "H1", "name": "医疗险", "product_class": "spaceflight", "term_months": "0"},
    )
    assert bad.status_code == 422
    assert 'data-field="product_class"' in text(bad) and 'data-field="term_months"' in text(bad)
    made = client.post(
        "/insurance/products/new",
        data={
            "code": "H1",
            "name": "百万医疗",
            "product_class": "health",
            "term_months": "12",
            "renewable": "y",
            "active": "y",
        },
    )
    assert made.status_code == 302
    with company_scope(ins.company.id):
        h1 = db.session.scalars(select(Product).where(Product.code == "H1")).one()
        assert (h1.product_class, h1.term_months, h1.renewable, h1.active) == (
            "health",
            12,
            True,
            True,
        )
    edited = client.post(
        f"/insurance/products/{h1.id}/edit",
        data={
            "code": "H1",
            "name": "百万医疗（停售）",
            "product_class": "health",
            "term_months": "12",
            "renewable": "y",
        },
    )
    assert edited.status_code == 302
    assert get(db, ins, Product, h1.id).active is False
    # a product no longer sold is not offered for new policies
    with company_scope(ins.company.id):
        data = svc.PolicyInput(
            customer_id=ins.chen, product_id=h1.id, premium=D(100), start_on=TODAY
        )
        assert svc.problems(data)["product_id"] == "The product H1 is no longer sold."


def test_products_page_is_for_managers(app, db, client, ins):
    client_login(client, ins.sales_rep, ins.company)
    assert client.get("/insurance/products").status_code == 403
    assert client.post("/insurance/products/new", data={}).status_code == 403


# -- the policy form ------------------------------------------------------------------------------


def form_data(ins, **over) -> dict[str, str]:
    data = {
        "customer": f"#{ins.chen} 陈先生",
        "product_id": str(ins.life),
        "agent_id": str(ins.zw),
        "channel_id": "",
        "owner_id": "",
        "premium": "1250.50",
        "frequency": "quarterly",
        "sum_insured": "500000",
        "applied_on": TODAY.isoformat(),
        "start_on": date(TODAY.year, 3, 1).isoformat()
        if date(TODAY.year, 3, 1) >= TODAY
        else (TODAY + timedelta(days=1)).isoformat(),
        "insured": [str(ins.son)],
        "beneficiaries-0-contact_id": str(ins.wife),
        "beneficiaries-0-share": "60",
        "beneficiaries-1-contact_id": str(ins.daughter),
        "beneficiaries-1-share": "40",
        "beneficiaries-2-contact_id": "",
        "beneficiaries-2-share": "",
    }
    data.update(over)
    return data


def test_new_policy_computes_annual_premium_end_date_number_and_channel(app, db, client, ins):
    client_login(client, ins.sales_rep, ins.company)
    page = client.get(f"/insurance/policies/new?customer_id={ins.chen}")
    assert page.status_code == 200
    assert "陈小明" in text(page) and "李先生" not in text(page)  # the customer's contacts only
    start = date.fromisoformat(form_data(ins)["start_on"])
    response = client.post("/insurance/policies/new", data=form_data(ins))
    assert response.status_code == 302, text(response)
    with company_scope(ins.company.id):
        policy = db.session.scalars(select(Policy)).one()
        # 1,250.50 a quarter: 4 × 1,250.50 = 5,002.00 a year
        assert (policy.premium, policy.annual_premium) == (D("1250.50"), D("5002.00"))
        assert policy.number == f"P-{TODAY.year}-000001"
        assert policy.end_on == svc.add_months(start, 12) - timedelta(days=1)
        assert policy.channel_id == ins.zw_channel  # the agent's channel
        assert policy.owner_id == ins.sales_rep.id  # no agent login: the customer's owner
        assert policy.state == "application" and policy.order_id is None
        parties = {(p.contact_id, p.role, p.share) for p in policy.parties}
        assert parties == {
            (ins.son, "insured", None),
            (ins.wife, "beneficiary", D("60.00")),
            (ins.daughter, "beneficiary", D("40.00")),
        }
    detail = client.get(f"/insurance/policies/{policy.id}")
    assert detail.status_code == 200
    assert "5,002.00" in text(detail) and "60%" in text(detail)
    second = client.post("/insurance/policies/new", data=form_data(ins))
    assert second.status_code == 302
    with company_scope(ins.company.id):
        numbers = sorted(db.session.scalars(select(Policy.number)))
    assert numbers == [f"P-{TODAY.year}-000001", f"P-{TODAY.year}-000002"]


def test_end_of_term_and_annual_premium_rules():
    assert svc.end_of_term(date(2026, 3, 1), 12) == date(2027, 2, 28)
    assert svc.end_of_term(date(2026, 1, 31), 1) == date(2026, 2, 27)
    assert svc.end_of_term(date(2024, 2, 29), 12) == date(2025, 2, 27)
    assert svc.annual_premium(D("99.99"), "monthly") == D("1199.88")
    assert svc.annual_premium(D("300"), "semiannual") == D("600.00")
    assert svc.annual_premium(D("8000"), "single") == D("8000.00")


@pytest.mark.parametrize(
    ("over", "field", "message"),
    [
        (
            {"beneficiaries-1-share": "30"},
            "beneficiaries",
            "The beneficiaries' shares add up to 90%, not 100%.",
        ),
        (
            {"beneficiaries-1-share": ""},
            "beneficiaries",
            "Give every beneficiary a share, or none of them.",
        ),
        (
            {"insured": ["OTHER"]},
            "insured",
            "Choose the insured among the policyholder's contacts.",
        ),
        ({"premium": "0"}, "premium", "Enter a number from"),
        ({"start_on": "1999-01-01"}, "start_on", "The start date cannot be before"),
        ({"product_id": ""}, "product_id", "Choose a product of this company."),
    ],
)
def test_policy_form_errors_at_their_fields(app, db, client, ins, over, field, message):
    client_login(client, ins.sales_rep, ins.company)
    if over.get("insured") == ["OTHER"]:
        over = {"insured": [str(ins.other)]}
    response = client.post("/insurance/policies/new", data=form_data(ins, **over))
    assert response.status_code == 422
    html = text(response)
    assert f'data-field="{field}"' in html
    assert message.replace("'", "&#39;") in html
    with company_scope(ins.company.id):
        assert db.session.scalar(select(func.count(Policy.id))) == 0


def test_beneficiaries_without_shares_are_fine(app, db, client, ins):
    client_login(client, ins.sales_rep, ins.company)
    data = form_data(ins, **{"beneficiaries-0-share": "", "beneficiaries-1-share": ""})
    assert client.post("/insurance/policies/new", data=data).status_code == 302


def test_policy_can_be_edited_only_while_an_application_or_in_underwriting(app, db, client, ins):
    policy_id = ins.policy(premium="800", start=TODAY + timedelta(days=5))
    client_login(client, ins.manager, ins.company)
    page = client.get(f"/insurance/policies/{policy_id}/edit")
    assert page.status_code == 200
    version = get(db, ins, Policy, policy_id).version
    data = form_data(ins, premium="900", frequency="annual", version=str(version))
    data.pop("customer")
    data["start_on"] = (TODAY + timedelta(days=5)).isoformat()
    assert client.post(f"/insurance/policies/{policy_id}/edit", data=data).status_code == 302
    assert get(db, ins, Policy, policy_id).annual_premium == D("900.00")
    # stale version: nothing changes
    stale = client.post(f"/insurance/policies/{policy_id}/edit", data={**data, "premium": "1"})
    assert stale.status_code == 303
    assert get(db, ins, Policy, policy_id).premium == D("900.00")
    ins.issue(policy_id)
    refused = client.get(f"/insurance/policies/{policy_id}/edit")
    assert refused.status_code == 302


# -- the workflow, the licence gate and the order -------------------------------------------------


def test_issuing_creates_the_premium_order_and_starts_the_renewal_clock(app, db, client, ins):
    start = TODAY + timedelta(days=10)
    policy_id = ins.policy(premium="1250.50", frequency="quarterly", start=start, applied=TODAY)
    client_login(client, ins.manager, ins.company)
    version = get(db, ins, Policy, policy_id).version
    for step in ("submit", "issue"):
        response = client.post(
            f"/insurance/policies/{policy_id}/transition/{step}", data={"version": str(version)}
        )
        assert response.status_code == 302, text(response)
        version += 1
    with company_scope(ins.company.id):
        policy = db.session.get(Policy, policy_id)
        assert (policy.state, policy.issued_on) == ("issued", TODAY)
        order = db.session.get(Order, policy.order_id)
        assert order.customer_id == ins.chen and order.ordered_on == TODAY
        assert (order.amount, order.cost, order.due_on) == (D("5002.00"), D("0.00"), start)
        assert order.channel_id == ins.zw_channel and order.owner_id == policy.owner_id
        assert [x.product for x in order.lines] == [f"终身寿险 保费 {policy.number}"]
        # customer value counts it: revenue of the last 12 months
        assert db.session.get(Customer, ins.chen).revenue == D("5002.00")
        clock_row = db.session.scalars(select(Obligation).where(Obligation.kind == svc.CLOCK)).one()
        end = policy.end_on + timedelta(days=1)
        assert clock_row.due_at == datetime.combine(end, time(), SHANGHAI)
        assert clock_row.warn_at == clock_row.due_at - timedelta(days=90)
    detail = text(client.get(f"/insurance/policies/{policy_id}"))
    assert order.number in detail


def test_expired_licence_refuses_issue_in_the_web_naming_the_licence(app, db, client, ins):
    policy_id = ins.policy(agent="zl")
    with company_scope(ins.company.id):
        workflow.transition(get(db, ins, Policy, policy_id), "submit", user=ins.manager)
        db.session.commit()
    client_login(client, ins.manager, ins.company)
    version = get(db, ins, Policy, policy_id).version
    response = client.post(
        f"/insurance/policies/{policy_id}/transition/issue", data={"version": str(version)}
    )
    assert response.status_code == 422
    html = text(response)
    expired = (TODAY - timedelta(days=10)).isoformat()
    assert re.search(rf'class="flash">[^<]*Licence LIC-ZL-OLD of 赵磊 expired on {expired}', html)
    with company_scope(ins.company.id):
        policy = db.session.get(Policy, policy_id)
        assert (policy.state, policy.order_id, policy.issued_on) == ("underwriting", None, None)
        assert db.session.scalar(select(func.count(Order.id))) == 0


def test_expired_licence_refuses_issue_in_the_api_at_agent_id(app, db, client, ins):
    policy_id = ins.policy(agent="zl")
    headers = api_headers(ins.manager, ins.company)
    base = f"/api/v1/insurance_policies/{policy_id}/transitions"
    assert client.post(f"{base}/submit", json={}, headers=headers).status_code == 200
    response = client.post(f"{base}/issue", json={}, headers=headers)
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"]["code"] == "guard_refused"
    assert "LIC-ZL-OLD" in body["error"]["fields"]["agent_id"][0]
    assert get(db, ins, Policy, policy_id).state == "underwriting"
    # a licence that does not cover the class: 张伟 sells life and health, not accident
    other = ins.policy(product="accident")
    client.post(f"/api/v1/insurance_policies/{other}/transitions/submit", json={}, headers=headers)
    refused = client.post(
        f"/api/v1/insurance_policies/{other}/transitions/issue", json={}, headers=headers
    )
    assert refused.status_code == 422
    assert "LIC-ZW" in refused.get_json()["error"]["fields"]["agent_id"][0]


def test_issuing_and_declining_are_for_underwriters(app, db, client, ins):
    policy_id = ins.policy()
    client_login(client, ins.sales_rep, ins.company)
    version = get(db, ins, Policy, policy_id).version
    assert (
        client.post(
            f"/insurance/policies/{policy_id}/transition/submit", data={"version": str(version)}
        ).status_code
        == 302
    )
    page = text(client.get(f"/insurance/policies/{policy_id}"))
    assert 'data-transition="issue"' not in page
    refused = client.post(
        f"/insurance/policies/{policy_id}/transition/issue", data={"version": str(version + 1)}
    )
    assert refused.status_code == 403
    assert get(db, ins, Policy, policy_id).state == "underwriting"
    client_login(client, ins.manager, ins.company)
    no_reason = client.post(
        f"/insurance/policies/{policy_id}/transition/decline", data={"version": str(version + 1)}
    )
    assert no_reason.status_code == 422 and "Give a reason." in text(no_reason)
    declined = client.post(
        f"/insurance/policies/{policy_id}/transition/decline",
        data={"version": str(version + 1), "comment": "健康告知异常"},
    )
    assert declined.status_code == 302
    assert get(db, ins, Policy, policy_id).state == "declined"


def test_cancelling_cancels_an_unpaid_order_and_keeps_a_paid_one(app, db, client, ins):
    unpaid = ins.policy(premium="3000", start=TODAY)
    paid = ins.policy(premium="2000", start=TODAY)
    ins.issue(unpaid, activate=True)
    ins.issue(paid, activate=True)
    with company_scope(ins.company.id):
        order = db.session.get(Order, get(db, ins, Policy, paid).order_id)
        orders.record_payment(order, D("500"), TODAY, ins.manager)
        db.session.commit()
    client_login(client, ins.manager, ins.company)
    for policy_id in (unpaid, paid):
        version = get(db, ins, Policy, policy_id).version
        response = client.post(
            f"/insurance/policies/{policy_id}/transition/cancel",
            data={"version": str(version), "comment": "客户退保"},
        )
        assert response.status_code == 302, text(response)
    with company_scope(ins.company.id):
        first, second = db.session.get(Policy, unpaid), db.session.get(Policy, paid)
        assert (first.state, first.cancelled_on) == ("cancelled", TODAY)
        assert db.session.get(Order, first.order_id).state == "cancelled"
        kept = db.session.get(Order, second.order_id)
        assert (kept.state, kept.paid) == ("open", D("500.00"))
        note = db.session.scalars(
            select(WorkflowHistory.comment).where(
                WorkflowHistory.subject_id == paid, WorkflowHistory.to_state == "cancelled"
            )
        ).one()
        assert "客户退保" in note and f"Order {kept.number} keeps the ¥500.00" in note
        # no renewal notices for cancelled policies
        assert (
            db.session.scalar(select(func.count(Obligation.id)).where(Obligation.kind == svc.CLOCK))
            == 0
        )
        # customer revenue: only the paid order's 2,000 is left
        assert db.session.get(Customer, ins.chen).revenue == D("2000.00")


# -- renewals -------------------------------------------------------------------------------------


def test_prepare_renewal_then_issuing_it_renews_the_old_policy(app, db, client, ins):
    start = TODAY - timedelta(days=300)
    old_id = ins.policy(premium="1000", start=start, applied=start, insured=[], beneficiaries=[])
    ins.issue(old_id, at=sh(start, 9), activate=True)
    with company_scope(ins.company.id):
        old = db.session.get(Policy, old_id)
        old.parties = [PolicyParty(contact_id=ins.son, role="insured")]
        db.session.commit()
    client_login(client, ins.sales_rep, ins.company)
    page = text(client.get(f"/insurance/policies/{old_id}"))
    assert 'data-action="renewal"' in page
    response = client.post(f"/insurance/policies/{old_id}/renewal", data={})
    assert response.status_code == 302
    with company_scope(ins.company.id):
        old = db.session.get(Policy, old_id)
        new = db.session.scalars(select(Policy).where(Policy.renewal_of_id == old_id)).one()
        assert (new.state, new.policy_year, new.start_on) == (
            "application",
            2,
            old.end_on + timedelta(days=1),
        )
        assert new.end_on == svc.end_of_term(new.start_on, 12)
        assert (new.product_id, new.agent_id, new.annual_premium) == (
            old.product_id,
            old.agent_id,
            D("1000.00"),
        )
        assert [(p.contact_id, p.role) for p in new.parties] == [(ins.son, "insured")]
    again = client.post(f"/insurance/policies/{old_id}/renewal", data={})
    assert again.status_code == 409 and new.number in text(again)
    ins.issue(new.id)
    with company_scope(ins.company.id):
        assert db.session.get(Policy, old_id).state == "renewed"
        rows = {
            o.subject_id: o
            for o in db.session.scalars(select(Obligation).where(Obligation.kind == svc.CLOCK))
        }
        assert rows[old_id].met_at is not None and rows[new.id].met_at is None
        chain = svc.renewal_chain(db.session.get(Policy, new.id))
        assert [(n, y, s) for _i, n, y, s, _a, _b in chain] == [
            (old.number, 1, "renewed"),
            (new.number, 2, "issued"),
        ]


def test_renewal_refused_for_a_product_that_is_not_renewable(app, db, ins):
    policy_id = ins.policy(product="term")
    ins.issue(policy_id, activate=True)
    with company_scope(ins.company.id):
        policy = db.session.get(Policy, policy_id)
        with pytest.raises(svc.RenewalRefused, match="not renewable|不可续保"):
            svc.prepare_renewal(policy, ins.manager)
        assert (
            db.session.scalar(select(func.count(Obligation.id)).where(Obligation.kind == svc.CLOCK))
            == 0
        )


def test_renewal_notices_are_sent_once_each_at_their_thresholds(app, db, ins):
    """Day by day from 100 days before the end to 3 days after it, twice a day: one notice
    each when 90, 60 and 30 days of cover are left, one when the end passes unrenewed, to the
    policy's owner only."""
    end_day = TODAY + timedelta(days=120)
    start = svc.add_months(end_day + timedelta(days=1), -12)
    policy_id = ins.policy(start=start, applied=start, owner_id=ins.sales_rep.id)
    ins.issue(policy_id, at=sh(start), activate=True)
    with company_scope(ins.company.id):
        assert get(db, ins, Policy, policy_id).end_on == end_day
    link = f"/insurance/policies/{policy_id}"

    def notices() -> list[Notification]:
        with company_scope(ins.company.id):
            return db.session.scalars(select(Notification).where(Notification.link == link)).all()

    sent: dict[date, int] = {}
    for back in range(100, -4, -1):
        day = end_day - timedelta(days=back)
        before = len(notices())
        clocks.scan(now=sh(day, 9))
        clocks.scan(now=sh(day, 15))  # a second run the same day sends nothing more
        after = len(notices())
        if after != before:
            sent[day] = after - before
    # the deadline is the end of the end date (midnight after it): 90 days before it is the
    # start of the day when 90 days of cover are left, the end date included
    deadline = end_day + timedelta(days=1)
    expected = [deadline - timedelta(days=n) for n in (90, 60, 30)] + [deadline]
    assert sorted(sent) == expected
    assert set(sent.values()) == {1}
    assert {n.user_id for n in notices()} == {ins.sales_rep.id}
    with company_scope(ins.company.id):
        row = db.session.scalars(select(Obligation).where(Obligation.kind == svc.CLOCK)).one()
        assert row.escalation_level == 4


def test_a_renewal_issued_before_the_notices_stops_them(app, db, ins):
    end_day = TODAY + timedelta(days=100)
    start = svc.add_months(end_day + timedelta(days=1), -12)
    policy_id = ins.policy(start=start, applied=start)
    ins.issue(policy_id, at=sh(start), activate=True)
    clocks.scan(now=sh(end_day - timedelta(days=90)))
    with company_scope(ins.company.id):
        renewal = svc.prepare_renewal(get(db, ins, Policy, policy_id), ins.manager)
        db.session.commit()
    ins.issue(renewal.id)

    def count() -> int:
        with company_scope(ins.company.id):
            return db.session.scalar(
                select(func.count(Notification.id)).where(Notification.link.like("/insurance/%"))
            )

    before = count()
    assert before == 1  # the 90-day notice of the old policy
    for back in (60, 30, -1):
        clocks.scan(now=sh(end_day - timedelta(days=back)))
    # the old clock is met; the renewal's own clock (its end a year later) is not due yet
    assert count() == before


# -- the daily job --------------------------------------------------------------------------------


def test_daily_job_puts_policies_in_force_and_lapses_unrenewed_ones(app, db, ins):
    starts_today = ins.policy(start=TODAY)
    starts_later = ins.policy(start=TODAY + timedelta(days=3))
    ins.issue(starts_today)
    ins.issue(starts_later)
    # ended 31 days ago: grace over; ended 30 days ago: still in grace
    over, grace = (
        svc.add_months(TODAY - timedelta(days=n) + timedelta(days=1), -12) for n in (31, 30)
    )
    lapsing = ins.policy(start=over, applied=over)
    waiting = ins.policy(start=grace, applied=grace)
    renewed_late = ins.policy(start=over, applied=over)
    for policy_id, begin in ((lapsing, over), (waiting, grace), (renewed_late, over)):
        ins.issue(policy_id, at=sh(begin), activate=True)
    with company_scope(ins.company.id):
        assert get(db, ins, Policy, lapsing).end_on == TODAY - timedelta(days=31)
        # a renewal prepared but not issued does not save it from lapsing
        svc.prepare_renewal(get(db, ins, Policy, renewed_late), ins.manager)
        db.session.commit()
        message = svc.run_daily(ins.company)
        assert message == "1 put in force, 2 lapsed"
        states = {
            i: db.session.get(Policy, i).state
            for i in (starts_today, starts_later, lapsing, waiting, renewed_late)
        }
    assert states == {
        starts_today: "in_force",
        starts_later: "issued",
        lapsing: "lapsed",
        waiting: "in_force",
        renewed_late: "lapsed",
    }
    with company_scope(ins.company.id):
        who = db.session.scalars(
            select(WorkflowHistory.user_id).where(WorkflowHistory.to_state == "lapsed")
        ).all()
    assert set(who) == {ins.admin.id}  # the first administrator acts for the job


# -- the list and the export ----------------------------------------------------------------------


def test_policy_list_filters_pages_and_exports(app, db, client, ins):
    ids = [ins.policy(premium=str(100 * (n + 1)), start=TODAY) for n in range(5)]
    web = ins.policy(agent=None, channel_id=ins.web, premium="999", customer="li")
    ins.issue(ids[0])
    client_login(client, ins.manager, ins.company)
    page = client.get("/insurance/policies?state=issued")
    assert page.status_code == 200
    assert re.findall(r'data-policy="(\d+)"', text(page)) == [str(ids[0])]
    by_type = text(client.get("/insurance/policies?channel_type=internet"))
    assert re.findall(r'data-policy="(\d+)"', by_type) == [str(web)]
    assert "¥999.00" in by_type  # the annual premium of what matches
    assert client.get("/insurance/policies?state=bogus").status_code == 400
    app.config["LIST_PAGE_SIZE"] = 2
    seen, url = [], "/insurance/policies"
    while url:
        html = text(client.get(url))
        seen += re.findall(r'data-policy="(\d+)"', html)
        found = re.search(r'class="button next" href="([^"]+)"', html)
        url = found.group(1).replace("&amp;", "&") if found else None
    assert sorted(map(int, seen)) == sorted([*ids, web])
    export = client.get("/insurance/policies/export.csv?customer=" + str(ins.chen))
    assert export.status_code == 200
    rows = list(csv.DictReader(io.StringIO(export.get_data(as_text=True).lstrip("\ufeff"))))
    assert len(rows) == 5 and {r["customer"] for r in rows} == {"陈先生"}
    with company_scope(ins.company.id):
        assert (
            db.session.scalar(select(func.count(AuditLog.id)).where(AuditLog.action == "export"))
            == 1
        )


def test_policy_list_query_count_does_not_grow_with_page_size(app, db, client, ins):
    for _n in range(12):
        ins.policy()
    client_login(client, ins.manager, ins.company)
    counts = []
    for size in (3, 12):
        app.config["LIST_PAGE_SIZE"] = size
        with QueryCounter(db.engine) as counter:
            assert client.get("/insurance/policies?product=" + str(ins.life)).status_code == 200
        counts.append(counter.count)
    assert counts[0] == counts[1]


# -- the API --------------------------------------------------------------------------------------


def test_api_creates_patches_and_refuses_changes_once_issued(app, db, client, ins):
    headers = api_headers(ins.sales_rep, ins.company)
    body = {
        "customer_id": ins.chen,
        "product_id": ins.life,
        "agent_id": ins.zw,
        "premium": "99.99",
        "frequency": "monthly",
        "start_on": TODAY.isoformat(),
        "parties": [
            {"contact_id": ins.son, "role": "insured"},
            {"contact_id": ins.wife, "role": "beneficiary", "share": "100"},
        ],
    }
    made = client.post("/api/v1/insurance_policies", json=body, headers=headers)
    assert made.status_code == 201, made.get_json()
    data = made.get_json()
    assert data["annual_premium"] == "1199.88" and data["state"] == "application"
    assert data["channel_id"] == ins.zw_channel
    assert {p["role"] for p in data["parties"]} == {"insured", "beneficiary"}
    bad = client.post(
        "/api/v1/insurance_policies",
        json={**body, "parties": [{"contact_id": ins.wife, "role": "beneficiary", "share": "50"}]},
        headers=headers,
    )
    assert bad.status_code == 422
    assert "50%" in bad.get_json()["error"]["fields"]["parties"][0]
    patched = client.patch(
        f"/api/v1/insurance_policies/{data['id']}", json={"premium": "200"}, headers=headers
    )
    assert patched.status_code == 200 and patched.get_json()["annual_premium"] == "2400.00"
    ins.issue(data["id"])
    refused = client.patch(
        f"/api/v1/insurance_policies/{data['id']}", json={"premium": "300"}, headers=headers
    )
    assert refused.status_code == 422
    assert "state" in refused.get_json()["error"]["fields"]
    listed = client.get("/api/v1/insurance_policies?state=issued", headers=headers).get_json()
    assert [p["id"] for p in listed["data"]] == [data["id"]]
    assert listed["data"][0]["order_id"] is not None


def test_products_api_is_written_by_managers(app, db, client, ins):
    rep = api_headers(ins.sales_rep, ins.company)
    boss = api_headers(ins.manager, ins.company)
    body = {"code": "N1", "name": "年金", "product_class": "annuity", "term_months": 12}
    assert client.get("/api/v1/insurance_products", headers=rep).status_code == 200
    assert client.post("/api/v1/insurance_products", json=body, headers=rep).status_code == 403
    made = client.post("/api/v1/insurance_products", json=body, headers=boss)
    assert made.status_code == 201
    dup = client.post("/api/v1/insurance_products", json=body, headers=boss)
    assert dup.status_code == 422 and "code" in dup.get_json()["error"]["fields"]
    wrong = client.post(
        "/api/v1/insurance_products",
        json={**body, "code": "N2", "product_class": "x"},
        headers=boss,
    )
    assert wrong.status_code == 422 and "product_class" in wrong.get_json()["error"]["fields"]


# -- reports --------------------------------------------------------------------------------------


def report_rows(html: str) -> dict[str, list[str]]:
    table = html[html.index('class="list report-table"') :]
    table = table[table.index("<tbody>") : table.index("</table>")]
    out = {}
    for row in re.findall(r"<tr>(.*?)</tr>", table, re.S):
        cells = [
            re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        out[cells[0]] = cells[1:]
    return out


def test_renewal_reports_count_by_hand(app, db, client, ins):
    """Three policies ended last month: one renewed, one lapsed, one still pending; one more
    ends next month. Renewal rate of 终身寿险 last month: 1 of 3."""
    this = TODAY.replace(day=1)
    last_month_end = this - timedelta(days=1)
    made = {}
    for key, end in (
        ("renewed", last_month_end - timedelta(days=2)),
        ("lapsed", last_month_end - timedelta(days=1)),
        ("pending", last_month_end),
        ("next", svc.add_months(this, 1) + timedelta(days=3)),
    ):
        start = svc.add_months(end + timedelta(days=1), -12)
        made[key] = ins.policy(start=start, applied=start, premium="1000")
        ins.issue(made[key], at=sh(start), activate=True)
    with company_scope(ins.company.id):
        renewal = svc.prepare_renewal(get(db, ins, Policy, made["renewed"]), ins.manager)
        db.session.commit()
    ins.issue(renewal.id)
    with company_scope(ins.company.id):
        workflow.transition(get(db, ins, Policy, made["lapsed"]), "lapse", user=ins.manager)
        db.session.commit()
    client_login(client, ins.manager, ins.company)
    month = last_month_end.strftime("%Y-%m")
    start, end = last_month_end.replace(day=1).isoformat(), last_month_end.isoformat()
    rate = client.get(f"/reports/insurance_renewal_rate?start={start}&end={end}")
    assert rate.status_code == 200
    # ended 3, renewed 1, pending 1, lapsed 1, rate 33.3 %
    assert report_rows(text(rate))["L1 终身寿险"] == ["3", "1", "1", "1", "33.3%"]
    due = client.get(f"/reports/insurance_renewals_due?start={start}&end={end}")
    row = report_rows(text(due))[month]
    # issued, in force, renewed, lapsed, total, premium
    assert row == ["0", "1", "1", "1", "3", "3,000.00"]
    assert "end_from=" + start in text(due)
    by_channel = client.get(
        f"/reports/insurance_renewal_rate?dimension=channel&start={start}&end={end}"
    )
    assert report_rows(text(by_channel))["张伟"] == ["3", "1", "1", "1", "33.3%"]


def test_channel_mix_by_type_and_channel(app, db, client, ins):
    a = ins.policy(premium="1000")
    b = ins.policy(premium="500", frequency="semiannual")
    c = ins.policy(agent=None, channel_id=ins.web, premium="300", customer="li")
    d = ins.policy(agent=None, channel_id=ins.web, premium="700", customer="li")
    for policy_id in (a, b, c, d):
        ins.issue(policy_id)
    with company_scope(ins.company.id):
        workflow.transition(
            get(db, ins, Policy, d), "cancel", user=ins.manager, inputs={"comment": "撤回"}
        )
        db.session.commit()
    client_login(client, ins.manager, ins.company)
    month = TODAY.strftime("%Y-%m")
    html = text(client.get("/reports/insurance_channel_mix"))
    row = report_rows(html)[month]
    header = re.findall(r"<th[^>]*>(.*?)</th>", html[html.index('class="list report-table"') :])
    values = dict(zip(header[1:], row, strict=False))
    # agents: 1,000 + 2 × 500; internet: 300 (the cancelled 700 left out)
    assert values["Insurance agent"] == "2,000.00" and values["Internet"] == "300.00"
    assert values["Total"] == "2,300.00"
    counts = text(client.get("/reports/insurance_channel_mix?dimension=channel&measure=policies"))
    row = report_rows(counts)[month]
    header = re.findall(r"<th[^>]*>(.*?)</th>", counts[counts.index('class="list report-table"') :])
    values = dict(zip(header[1:], row, strict=False))
    assert values["张伟"] == "2" and values["官网"] == "1" and values["Total"] == "3"


# -- panels, timeline ----------------------------------------------------------------------------


def test_customer_page_shows_policies_and_timeline(app, db, client, ins):
    issued = ins.policy(premium="1200")
    ins.policy(premium="50")
    ins.issue(issued)
    client_login(client, ins.sales_rep, ins.company)
    html = text(client.get(f"/customers/{ins.chen}"))
    assert 'class="facts policy-panel"' in html
    number = get(db, ins, Policy, issued).number
    assert number in html and "1,200.00" in html
    assert f"Policy {number} issued: 终身寿险" in html


def test_policy_page_renders_panels_of_other_parts(app, db, client, ins, monkeypatch):
    from core.extend import Panel
    from plugins.insurance import web_policies

    policy_id = ins.policy()
    asked = []

    def panels(subject_type, subject):
        asked.append((subject_type, subject.id))
        return [Panel("Commission", lambda: "<p>佣金面板</p>")]

    monkeypatch.setattr(web_policies, "record_panels", panels)
    client_login(client, ins.manager, ins.company)
    html = text(client.get(f"/insurance/policies/{policy_id}"))
    assert asked == [("insurance_policy", policy_id)]
    assert "佣金面板" in html


# -- demo and a company without insurance ---------------------------------------------------------


def test_demo_makes_products_and_policies_through_the_workflow(app, db, monkeypatch):
    from core import demo

    calls: list[str] = []
    original = svc.demo

    def counted(company, fake):
        calls.append(company.code)
        original(company, fake)

    monkeypatch.setattr(svc, "demo", counted)
    demo.create()
    assert calls == ["demo-insurance"]  # once, for the insurance company only
    from core.models import Company
    from core.tenancy import unscoped

    with unscoped():
        co = db.session.scalars(select(Company).where(Company.code == "demo-insurance")).one()
    with company_scope(co.id):
        products = db.session.scalar(select(func.count(Product.id)))
        states = dict(
            db.session.execute(select(Policy.state, func.count()).group_by(Policy.state)).all()
        )
        total = sum(states.values())
        assert 6 <= products <= 8
        assert 40 <= total <= 80, states
        assert states["in_force"] > total / 3
        assert states.get("application", 0) + states.get("underwriting", 0) >= 3
        assert states.get("declined", 0) >= 1 and 2 <= states.get("cancelled", 0) <= 4
        assert states.get("renewed", 0) >= 1
        assert db.session.scalar(select(func.count()).where(Policy.policy_year == 2)) >= 1
        day = company_today()
        due = db.session.scalar(
            select(func.count()).where(
                Policy.state == "in_force", Policy.end_on.between(day, day + timedelta(days=90))
            )
        )
        assert due >= 5
        issued = db.session.scalar(select(func.count()).where(Policy.issued_on.is_not(None)))
        linked = db.session.scalar(select(func.count()).where(Policy.order_id.is_not(None)))
        assert issued == linked
        channels = db.session.scalars(
            select(func.distinct(Policy.channel_id)).where(Policy.issued_on.is_not(None))
        ).all()
        assert len(channels) >= 5


def test_company_without_insurance_gets_404(app, db, client, ins):
    client_login(client, ins.admin, ins.plain)
    from core.models import Membership
    from core.tenancy import unscoped

    with unscoped():
        db.session.add(Membership(user_id=ins.admin.id, company_id=ins.plain.id, role="admin"))
        db.session.commit()
    for url in ("/insurance/policies", "/insurance/products", "/insurance/policies/new"):
        assert client.get(url).status_code == 404
    headers = api_headers(ins.admin, ins.plain)
    assert client.get("/api/v1/insurance_policies", headers=headers).status_code == 404
    assert client.get("/api/v1/insurance_products", headers=headers).status_code == 404
    assert client.get("/reports/insurance_renewal_rate").status_code == 404
