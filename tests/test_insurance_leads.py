"""Insurance leads and referrals (DOMAIN §6): the new-lead page that makes the prospect and its
lead together, the lead workflow (lost needs a reason), conversion by hand and when a policy of
the customer is issued, "my leads" for an agent's login, the customer's box, the funnel and
referral reports with hand-counted numbers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from core import workflow
from core.models import Customer, WorkflowHistory
from core.tenancy import company_scope
from core.testing import QueryCounter, company_today
from plugins.insurance import agents, leads
from plugins.insurance.models import Agent, Lead, Referral
from tests.insurance_team import lead_team


@pytest.fixture
def insurer(company):
    return company(plugins=["insurance"])


@pytest.fixture
def people(db, insurer, make_user):
    """The shared team (tests/insurance_team.py)."""
    return lead_team(db, insurer, make_user)


def new_lead(db, name, agent_id=None, user=None, **kw):
    lead = leads.create_lead(leads.LeadInput(name=name, agent_id=agent_id, **kw), user)
    db.session.flush()
    return lead


def login(client, user, company):
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)
        session["_fresh"] = True
        session["company_id"] = company.id


# -- creating leads -------------------------------------------------------------------------------


def test_new_lead_page_makes_the_prospect_and_the_lead(client, db, insurer, people):
    login(client, people["rep"], insurer)
    with company_scope(insurer.id):
        fan = Customer(name="老客户王", status="existing", owner_id=people["rep"].id)
        db.session.add(fan)
        db.session.commit()
        fan_id = fan.id
    html = client.get("/insurance/leads/new").get_data(as_text=True)
    assert f'<option value="{people["boss"]}" selected>' in html  # the agent: herself
    response = client.post(
        "/insurance/leads/new",
        data={
            "name": "李女士",
            "phone": "13900001111",
            "region": "上海市",
            "agent_id": str(people["boss"]),
            "source": "referral",
            "referrer_customer": f"#{fan_id} 老客户王",
            "notes": "关注重疾",
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    with company_scope(insurer.id):
        lead = db.session.scalar(select(Lead))
        customer = db.session.get(Customer, lead.customer_id)
        assert (customer.name, customer.status, customer.kind) == (
            "李女士",
            "potential",
            "consumer",
        )
        assert customer.channel_id == people["boss_channel"] == lead.channel_id
        assert customer.owner_id == people["rep"].id  # the agent's login
        assert (lead.state, lead.source, lead.agent_id) == ("new", "referral", people["boss"])
        assert lead.created_on == company_today()
        referral = db.session.scalar(select(Referral))
        assert (referral.customer_id, referral.referrer_customer_id) == (customer.id, fan_id)
    assert response.headers["Location"].endswith(f"/insurance/leads/{lead.id}")


def test_owner_is_the_member_entering_a_lead_of_an_agent_without_login(db, insurer, people):
    with company_scope(insurer.id):
        lead = leads.create_lead(
            leads.LeadInput(name="周先生", agent_id=people["other"], source="walk_in"),
            people["manager"],
        )
        assert db.session.get(Customer, lead.customer_id).owner_id == people["manager"].id


def test_form_errors_and_nothing_written(client, db, insurer, people):
    login(client, people["manager"], insurer)
    with company_scope(insurer.id):
        db.session.add(Customer(name="已有客户", phone="13800000000", status="existing"))
        db.session.commit()
    cases = [
        ({"name": "", "source": "walk_in"}, "name"),
        ({"name": "甲", "source": "referral"}, "referrer_customer_id"),
        ({"name": "甲", "source": "walk_in", "phone": "13800000000"}, "phone"),
        ({"name": "甲", "source": "telepathy"}, "source"),
        ({"name": "甲", "source": "walk_in", "agent_id": "999999"}, "agent_id"),
        ({"name": "甲", "source": "walk_in", "referrer_customer": "无此人"},
         "referrer_customer_id"),
    ]  # fmt: skip
    for data, field in cases:
        response = client.post("/insurance/leads/new", data=data)
        assert response.status_code == 422, data
        assert f'data-field="{field}"' in response.get_data(as_text=True), data
    with company_scope(insurer.id):
        assert db.session.scalar(select(func.count()).select_from(Lead)) == 0
        assert db.session.scalar(select(func.count()).select_from(Customer)) == 1


def test_an_agent_gives_leads_only_to_herself_and_her_downline(client, db, insurer, people):
    login(client, people["rep"], insurer)
    data = {"name": "甲", "source": "walk_in"}
    response = client.post("/insurance/leads/new", data={**data, "agent_id": people["other"]})
    assert response.status_code == 422
    response = client.post("/insurance/leads/new", data={**data, "agent_id": people["below"]})
    assert response.status_code == 302


def test_a_lead_on_an_existing_customer(client, db, insurer, people):
    login(client, people["manager"], insurer)
    with company_scope(insurer.id):
        old = Customer(name="老客户", status="existing")
        db.session.add(old)
        db.session.commit()
        old_id = old.id
    html = client.get(f"/insurance/leads/new?customer_id={old_id}").get_data(as_text=True)
    assert 'name="customer_id"' in html and "老客户" in html
    data = {"customer_id": str(old_id), "source": "event", "agent_id": str(people["other"])}
    assert client.post("/insurance/leads/new", data=data).status_code == 302
    again = client.post("/insurance/leads/new", data=data)  # it has an open lead now
    assert again.status_code == 422 and 'data-field="customer_id"' in again.get_data(as_text=True)
    with company_scope(insurer.id):
        assert db.session.scalar(select(func.count()).select_from(Customer)) == 1


# -- the workflow ---------------------------------------------------------------------------------


def test_steps_conversion_by_hand_and_loss_with_a_reason(client, db, insurer, people):
    login(client, people["rep"], insurer)
    with company_scope(insurer.id):
        won = new_lead(db, "甲", people["boss"], source="walk_in")
        lost = new_lead(db, "乙", people["boss"], source="event")
        db.session.commit()
        won_id, lost_id, won_customer = won.id, lost.id, won.customer_id

    def step(lead_id, name, **data):
        with company_scope(insurer.id):
            version = db.session.get(Lead, lead_id).version
        return client.post(
            f"/insurance/leads/{lead_id}/transition/{name}", data={"version": version, **data}
        )

    assert step(won_id, "contact").status_code == 302
    assert step(won_id, "propose").status_code == 302
    assert step(won_id, "convert").status_code == 302
    with company_scope(insurer.id):
        db.session.expire_all()
        row = db.session.get(Lead, won_id)
        assert (row.state, row.converted_on) == ("converted", company_today())
        assert db.session.get(Customer, won_customer).status == "existing"
    response = step(lost_id, "lose")
    assert response.status_code == 422
    assert 'data-field="lost_reason"' in response.get_data(as_text=True)
    assert step(lost_id, "lose", lost_reason="已在他司投保").status_code == 302
    with company_scope(insurer.id):
        db.session.expire_all()
        assert db.session.get(Lead, lost_id).lost_reason == "已在他司投保"
    assert step(lost_id, "convert").status_code == 409  # not from lost
    assert step(lost_id, "reopen").status_code == 302
    with company_scope(insurer.id):
        db.session.expire_all()
        row = db.session.get(Lead, lost_id)
        assert (row.state, row.lost_reason) == ("contacted", None)
    stale = client.post(f"/insurance/leads/{lost_id}/transition/propose", data={"version": "1"})
    assert stale.status_code == 409


@dataclass
class IssuedPolicy:
    """Stands for a policy of the policies part entering the state ``issued``."""

    customer_id: int
    number: str = "P-2026-0001"
    __tablename__ = "insurance_policy"


def test_a_policy_issued_converts_the_customers_open_leads(db, insurer, people):
    with company_scope(insurer.id):
        lead = new_lead(db, "甲", people["boss"], source="walk_in")
        other = new_lead(db, "乙", people["boss"], source="walk_in")
        workflow.transition(lead, "contact", user=people["manager"])
        db.session.commit()
        at = datetime.now(UTC) - timedelta(minutes=5)
        leads.after_transition(IssuedPolicy(lead.customer_id), "underwriting", "issued", at, {})
        db.session.commit()
        db.session.expire_all()
        lead = db.session.get(Lead, lead.id)
        assert (lead.state, lead.converted_on) == ("converted", company_today())
        assert db.session.get(Customer, lead.customer_id).status == "existing"
        assert db.session.get(Lead, other.id).state == "new"  # another customer's
        history = db.session.scalars(
            select(WorkflowHistory).where(WorkflowHistory.subject_id == lead.id)
        ).all()
        assert [(h.from_state, h.to_state, h.user_id) for h in history] == [
            ("new", "contacted", people["manager"].id),
            ("contacted", "converted", None),
        ]
        assert "P-2026-0001" in history[-1].comment
        # other transitions of policies, and a converted lead, are left alone
        leads.after_transition(IssuedPolicy(other.customer_id), "application", "underwriting",
                               at, {})  # fmt: skip
        assert db.session.get(Lead, other.id).state == "new"


# -- lists ----------------------------------------------------------------------------------------


def _shown(client, **args):
    response = client.get("/insurance/leads", query_string=args)
    return response.status_code, set(re.findall(r'data-lead="(\d+)"', response.get_data(True)))


def test_my_leads_my_team_and_all(client, db, insurer, people):
    with company_scope(insurer.id):
        mine = new_lead(db, "甲", people["boss"], source="walk_in")
        # entered by the team lead for her agent (no login): she owns the prospect, so the
        # customer record rule of her role lets her see it
        below = new_lead(db, "乙", people["below"], people["rep"], source="walk_in")
        other = new_lead(db, "丙", people["other"], source="online")
        db.session.commit()
        ids = {k: str(v.id) for k, v in (("mine", mine), ("below", below), ("other", other))}
    login(client, people["rep"], insurer)
    assert _shown(client) == (200, {ids["mine"]})
    assert "My leads" in client.get("/insurance/leads").get_data(True) or "我的线索" in (
        client.get("/insurance/leads").get_data(True)
    )
    assert _shown(client, scope="team") == (200, {ids["mine"], ids["below"]})
    assert _shown(client, scope="all")[0] == 400
    login(client, people["manager"], insurer)
    assert _shown(client) == (200, set(ids.values()))
    assert _shown(client, agent=people["other"]) == (200, {ids["other"]})
    assert _shown(client, source="online") == (200, {ids["other"]})
    assert _shown(client, channel=people["boss_channel"]) == (200, {ids["mine"]})
    assert _shown(client, state="new") == (200, set(ids.values()))
    assert _shown(client, state="lost") == (200, set())
    assert _shown(client, q="丙") == (200, {ids["other"]})
    assert _shown(client, state="bogus")[0] == 400


def test_lead_list_pages_with_constant_queries(app, client, db, insurer, people):
    with company_scope(insurer.id):
        for n in range(14):
            new_lead(db, f"客户{n:02d}", people["other"], source="walk_in",
                     created_on=company_today() - timedelta(days=n))  # fmt: skip
        db.session.commit()
    login(client, people["manager"], insurer)
    app.config["LIST_PAGE_SIZE"] = 5
    client.get("/insurance/leads")
    with QueryCounter(db.engine) as small:
        html = client.get("/insurance/leads").get_data(True)
    assert html.count("data-lead=") == 5
    seen = set(re.findall(r'data-lead="(\d+)"', html))
    while "after=" in html:
        after = re.search(r"after=([A-Za-z0-9_-]+)", html).group(1)
        html = client.get(f"/insurance/leads?after={after}").get_data(True)
        seen |= set(re.findall(r'data-lead="(\d+)"', html))
    assert len(seen) == 14
    app.config["LIST_PAGE_SIZE"] = 50
    with QueryCounter(db.engine) as large:
        assert client.get("/insurance/leads").get_data(True).count("data-lead=") == 14
    assert large.count == small.count


def test_the_customer_box_shows_leads_and_referrals(client, db, insurer, people):
    with company_scope(insurer.id):
        fan = Customer(name="老客户王", status="existing")
        db.session.add(fan)
        db.session.flush()
        lead = new_lead(db, "李女士", people["boss"], source="referral",
                        referrer_customer_id=fan.id, referrer_agent_id=people["below"])  # fmt: skip
        db.session.commit()
        fan_id, friend_id = fan.id, lead.customer_id
    login(client, people["manager"], insurer)
    html = client.get(f"/customers/{fan_id}").get_data(True)
    assert f'data-referred="{friend_id}"' in html
    assert f"/insurance/leads/new?referrer_customer={fan_id}" in html
    html = client.get(f"/customers/{friend_id}").get_data(True)
    assert f'data-lead="{lead.id}"' in html
    assert "老客户王" in html and "钱代理" in html  # referred by both


# -- reports --------------------------------------------------------------------------------------


def test_funnel_and_referral_reports_with_hand_counted_numbers(client, db, insurer, people):
    """Boss: 4 leads (new, contacted, proposal, converted); other: 2 (converted, lost).
    By stage: 6 leads, 4 reached contacted (contacted, proposal, 2 converted), 3 proposal,
    2 converted. Boss converts 1 of 4 (25 %), other 1 of 2 (50 %)."""
    m = people["manager"]
    with company_scope(insurer.id):
        fan = Customer(name="老客户王", status="existing")
        db.session.add(fan)
        db.session.flush()
        plan = [
            (people["boss"], []),
            (people["boss"], ["contact"]),
            (people["boss"], ["contact", "propose"]),
            (people["boss"], ["contact", "propose", "convert"]),
            (people["other"], ["convert"]),
            (people["other"], ["lose"]),
        ]
        made = []
        for n, (agent_id, steps) in enumerate(plan):
            referred = n in (0, 3, 4)  # two of fan's three referrals convert
            lead = new_lead(db, f"客户{n}", agent_id, source="referral" if referred else "event",
                            referrer_customer_id=fan.id if referred else None)  # fmt: skip
            for s in steps:
                workflow.transition(lead, s, user=m, inputs={"lost_reason": "贵"})
            made.append(lead)
        db.session.commit()
    from core import reports

    def run(name, **args):
        with company_scope(insurer.id):
            report = reports.get(name)
            params, errors = reports.parse(report, args)
            assert not errors, errors
            return reports.run(report, params).rows

    stage = {r["step"]: (r["leads"], r["rate"]) for r in run("insurance_lead_funnel")}
    assert stage == {
        "leads": (6, 1.0),
        "contacted": (4, 4 / 6),
        "proposal": (3, 0.5),
        "converted": (2, 2 / 6),
    }
    by_agent = {r["label"]: r for r in run("insurance_lead_funnel", by="agent")}
    boss, other = by_agent["赵经理"], by_agent["孙代理"]
    assert (boss["new"], boss["contacted"], boss["proposal"], boss["converted"]) == (1, 1, 1, 1)
    assert (boss["total"], boss["rate"]) == (4, 0.25)
    assert (other["converted"], other["lost"], other["total"], other["rate"]) == (1, 1, 2, 0.5)
    by_source = {r["value"]: r["total"] for r in run("insurance_lead_funnel", by="source")}
    assert by_source == {"referral": 3, "event": 3}
    referrals = run("insurance_referrals")
    assert [(r["label"], r["referrals"], r["converted"]) for r in referrals] == [("老客户王", 3, 2)]
    login(client, m, insurer)
    html = client.get("/reports/insurance_lead_funnel?by=agent").get_data(True)
    assert "/insurance/leads?" in html and f"agent={people['boss']}" in html
    html = client.get("/reports/insurance_referrals").get_data(True)
    assert "referrer_customer=" in html
    code, shown = _shown(client, referrer_customer=referrals[0]["value"], state="converted")
    assert code == 200 and shown == {str(made[3].id), str(made[4].id)}


def test_nothing_for_a_company_without_insurance(client, db, company, login_as):
    plain = company(plugins=["sales"])
    login_as("admin", plain)
    with company_scope(plain.id):
        customer = Customer(name="某客户", status="existing")
        db.session.add(customer)
        db.session.commit()
    for url in ("/insurance/leads", "/insurance/leads/new", "/insurance/leads/1",
                "/reports/insurance_lead_funnel", "/reports/insurance_referrals"):  # fmt: skip
        assert client.get(url).status_code == 404, url
    assert client.post("/insurance/leads/new", data={"name": "x"}).status_code == 404
    assert "lead-panel" not in client.get(f"/customers/{customer.id}").get_data(True)


def test_the_demo_team_and_leads(app, db, company):
    """The demo: a three-level team, licences expiring and expired, a broker, a bank with two
    branch profiles, internet and mobile without profiles, an agent login, 30 leads."""
    from faker import Faker

    from core.demo import _populate
    from core.models import User

    co = company(code="demo-insurance", plugins=["insurance"])
    fake = Faker("zh_CN")
    fake.seed_instance(1)
    import random

    boss = User(email="boss-test@guanxi.demo", name="王总")
    boss.set_password("x")
    db.session.add(boss)
    db.session.flush()
    with company_scope(co.id):
        _populate(co, "insurance", boss, fake, random.Random(1))
        agents.demo(co, fake)
        leads.demo(co, fake)
        db.session.commit()
        from core.models import Channel

        profiles = db.session.execute(
            select(Channel.type, func.count()).join(Agent, Agent.channel_id == Channel.id)
            .group_by(Channel.type)
        ).all()  # fmt: skip
        assert dict(profiles) == {"insurance_agent": 8, "broker": 1, "bancassurance": 2}
        day = company_today()
        expiries = db.session.scalars(select(Agent.licence_expires_on)).all()
        assert any(day <= e <= day + timedelta(days=30) for e in expiries)
        assert any(e < day for e in expiries)
        bank = db.session.scalar(select(Channel).where(Channel.name == "中国工商银行"))
        assert db.session.scalar(select(func.count()).where(Channel.parent_id == bank.id)) == 2
        for kind in ("internet", "mobile"):
            assert db.session.scalar(select(Channel.id).where(Channel.type == kind))
        rep = db.session.scalar(select(User).where(User.email == "agent@insurance.demo"))
        mine = agents.agent_for_user(rep.id)
        assert mine is not None and len(agents.upline_chain(mine)) == 2
        states = dict(
            db.session.execute(select(Lead.state, func.count()).group_by(Lead.state)).all()
        )
        assert sum(states.values()) == 30 and set(states) == set(leads.STATE_KEYS)
        assert db.session.scalar(select(func.count()).select_from(Referral)) >= 3
        assert (
            db.session.scalar(
                select(func.count()).select_from(Lead).where(Lead.agent_id == mine.id)
            )
            >= 5
        )
