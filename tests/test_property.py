"""The property plugin's complaint engine: the workflow that requires a root cause, SLA
clocks that escalate to the team lead and then the managers, repeat detection, follow-up
closing or reopening. Pages are tested in test_property_web.py and test_property_public.py."""

from __future__ import annotations

from datetime import datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from core import clocks, followup, workflow
from core.models import Customer, Notification, Obligation, ServiceTicket, Team
from core.tenancy import company_scope
from core.tickets import open_ticket
from plugins.property import complaints
from plugins.property.models import Building, Complaint, ComplaintClass, Estate, SlaRule, Unit

SHANGHAI = ZoneInfo("Asia/Shanghai")
MONDAY_10 = datetime(2024, 3, 11, 10, tzinfo=SHANGHAI)


@pytest.fixture
def estate(app, db, company, make_user):
    """A property company (surveys + property on) with an estate, a unit, a resident, an
    engineering team led by ``lead``, its worker ``agent``, a ``manager`` and an ``admin``."""
    co = company(plugins=["surveys", "property"])
    people = {r: make_user(r, co) for r in ("service_agent", "manager", "admin")}
    lead = make_user("service_agent", co)
    with company_scope(co.id):
        team = Team(name="工程维修部", manager_id=lead.id)
        place = Estate(code="YG", name="阳光花园")
        db.session.add_all([team, place])
        db.session.flush()
        building = Building(estate_id=place.id, name="3栋")
        db.session.add(building)
        db.session.flush()
        unit = Unit(building_id=building.id, label="2单元1502")
        other_unit = Unit(building_id=building.id, label="2单元1503")
        resident = Customer(name="王女士", kind="resident", phone="13800001111")
        db.session.add_all([unit, other_unit, resident])
        db.session.commit()
        category = {
            c.code: c.id
            for c in db.session.scalars(
                select(ComplaintClass).where(ComplaintClass.level == "category")
            )
        }
        ids = SimpleNamespace(
            team=team.id, unit=unit.id, other_unit=other_unit.id, resident=resident.id
        )
    return SimpleNamespace(
        company=co,
        lead=lead,
        agent=people["service_agent"],
        manager=people["manager"],
        admin=people["admin"],
        category=category,
        **vars(ids),
    )


def file(db, place, at=MONDAY_10, category="repairs", unit=None, **values):
    with company_scope(place.company.id):
        ticket = complaints.file_complaint(
            customer_id=place.resident,
            subject="卫生间漏水",
            unit_id=unit or place.unit,
            category_id=place.category[category],
            at=at,
            **values,
        )
        db.session.commit()
        return ticket.id


def step(db, place, ticket_id, fn, *args, **kwargs):
    with company_scope(place.company.id):
        ticket = db.session.get(ServiceTicket, ticket_id)
        fn(ticket, *args, **kwargs)
        db.session.commit()
        return ticket.state


def test_the_plugin_gives_complaints_its_workflow_only_where_it_is_enabled(app, db, company):
    on, off = company(plugins=["surveys", "property"]), company()
    for co, expected in ((on, complaints.WORKFLOW), (off, "ticket")):
        with company_scope(co.id):
            customer = Customer(name="李先生")
            db.session.add(customer)
            db.session.flush()
            ticket = open_ticket(
                customer_id=customer.id, subject="电梯坏了", type="property_complaint"
            )
            db.session.commit()
            assert ticket.workflow == expected
            assert ticket.state == "new"
            classifier = db.session.scalar(select(ComplaintClass.id).limit(1))
            assert (classifier is not None) == (co is on)  # seeded when the plugin is enabled


def test_resolving_needs_a_root_cause_and_closing_is_refused_without_one(app, db, estate):
    ticket_id = file(db, estate)
    step(
        db,
        estate,
        ticket_id,
        complaints.dispatch,
        estate.manager,
        team_id=estate.team,
        assignee_id=estate.agent.id,
    )
    step(db, estate, ticket_id, workflow.transition, "start", user=estate.agent)
    with company_scope(estate.company.id):
        ticket = db.session.get(ServiceTicket, ticket_id)
        with pytest.raises(workflow.WorkflowError) as refused:
            complaints.resolve(ticket, estate.agent, root_cause="", action="更换水管")
        assert refused.value.field == "root_cause"
        db.session.rollback()
        with pytest.raises(workflow.WorkflowError) as refused:
            complaints.resolve(ticket, estate.agent, root_cause="bad_luck", action="更换水管")
        assert refused.value.field == "root_cause"
        db.session.rollback()
        complaints.resolve(ticket, estate.agent, root_cause="equipment_ageing", action="更换水管")
        db.session.commit()
        assert db.session.get(Complaint, ticket_id).root_cause == "equipment_ageing"
        # Someone clears the root cause: the complaint cannot be closed until it is given.
        db.session.get(Complaint, ticket_id).root_cause = None
        db.session.commit()
        with pytest.raises(workflow.GuardRefused) as refused:
            workflow.transition(ticket, "close", user=estate.manager)
        assert refused.value.field == "root_cause"
        db.session.rollback()
        assert db.session.get(ServiceTicket, ticket_id).state == "resolved"


def test_the_core_ticket_page_leaves_the_root_cause_steps_to_the_plugin(app, db, client, estate):
    ticket_id = file(db, estate)
    step(db, estate, ticket_id, workflow.transition, "start", user=estate.agent)
    with client.session_transaction() as session:
        session["_user_id"], session["company_id"] = str(estate.agent.id), estate.company.id
    page = client.get(f"/tickets/{ticket_id}")
    assert page.status_code == 200
    assert f"/tickets/{ticket_id}/transition/resolve" not in page.text
    assert "处理中" in page.text or "In progress" in page.text
    app.config["WTF_CSRF_ENABLED"] = False
    answer = client.post(
        f"/tickets/{ticket_id}/transition/resolve", data={"comment": "修好了", "version": 3}
    )
    assert answer.status_code in (409, 422)
    with company_scope(estate.company.id):
        assert db.session.get(ServiceTicket, ticket_id).state == "in_progress"


@pytest.fixture
def clock(monkeypatch):
    now = SimpleNamespace(value=None)
    monkeypatch.setattr(clocks, "utcnow", lambda: now.value)
    monkeypatch.setattr(workflow, "utcnow", lambda: now.value)
    return lambda moment: setattr(now, "value", moment)


def notices(db, company_id):
    with company_scope(company_id):
        rows = db.session.scalars(select(Notification).order_by(Notification.id)).all()
    out: dict[int, list[str]] = {}
    for row in rows:
        out.setdefault(row.user_id, []).append(row.kind)
    return out


def test_an_emergency_escalates_to_the_team_lead_then_the_managers_at_the_set_times(
    app, db, estate, clock
):
    with company_scope(estate.company.id):
        db.session.add(
            SlaRule(
                category_id=estate.category["repairs"],
                priority="urgent",
                response_minutes=30,
                resolution_minutes=240,
            )
        )
        db.session.commit()
    ticket_id = file(db, estate, emergency=True)
    step(
        db,
        estate,
        ticket_id,
        complaints.dispatch,
        estate.manager,
        team_id=estate.team,
        assignee_id=estate.agent.id,
        at=MONDAY_10 + timedelta(minutes=2),
    )
    with company_scope(estate.company.id):
        response = db.session.scalar(
            select(Obligation).where(
                Obligation.subject_id == ticket_id, Obligation.kind == "property.response"
            )
        )
        assert response.target_minutes == 30
        assert response.due_at == MONDAY_10 + timedelta(minutes=30)
    base = notices(db, estate.company.id)  # the dispatch told the worker

    def raised_since(moment):
        clocks.scan(moment)
        now = notices(db, estate.company.id)
        return {u: k[len(base.get(u, [])) :] for u, k in now.items() if k[len(base.get(u, [])) :]}

    assert raised_since(MONDAY_10 + timedelta(minutes=20)) == {}
    # 75 % of the 30 minutes: the worker is warned.
    assert raised_since(MONDAY_10 + timedelta(minutes=23)) == {estate.agent.id: ["clock.level1"]}
    # Past the deadline: the team lead hears of it, not yet the managers.
    assert raised_since(MONDAY_10 + timedelta(minutes=31)) == {
        estate.agent.id: ["clock.level1", "clock.level2"],
        estate.lead.id: ["clock.level2"],
    }
    # At 150 %: the company's managers and administrators.
    assert raised_since(MONDAY_10 + timedelta(minutes=46)) == {
        estate.agent.id: ["clock.level1", "clock.level2", "clock.level3"],
        estate.lead.id: ["clock.level2", "clock.level3"],
        estate.manager.id: ["clock.level3"],
        estate.admin.id: ["clock.level3"],
    }


def test_a_second_complaint_on_the_same_unit_and_category_is_linked_as_a_repeat(app, db, estate):
    first = file(db, estate)
    second = file(db, estate, at=MONDAY_10 + timedelta(days=12))
    other_category = file(db, estate, at=MONDAY_10 + timedelta(days=13), category="noise")
    other_unit = file(db, estate, at=MONDAY_10 + timedelta(days=13), unit=estate.other_unit)
    much_later = file(db, estate, at=MONDAY_10 + timedelta(days=60))
    with company_scope(estate.company.id):
        repeat_of = {c.ticket_id: c.repeat_of_id for c in db.session.scalars(select(Complaint))}
    assert repeat_of[first] is None
    assert repeat_of[second] == first
    assert repeat_of[other_category] is None
    assert repeat_of[other_unit] is None
    assert repeat_of[much_later] is None  # outside the 30-day window


def test_a_good_follow_up_closes_and_a_bad_one_reopens(app, db, estate):
    good, bad = file(db, estate), file(db, estate, category="cleaning")
    for ticket_id in (good, bad):
        step(db, estate, ticket_id, workflow.transition, "start", user=estate.agent)
        step(
            db,
            estate,
            ticket_id,
            complaints.resolve,
            estate.agent,
            root_cause="maintenance_missed",
            action="已处理",
        )
    with company_scope(estate.company.id):
        ticket = db.session.get(ServiceTicket, good)
        followup.record_followup(ticket, estate.agent, 5, 90, "很满意")
        db.session.commit()
        assert ticket.state == "closed"
        window = db.session.scalar(
            select(Obligation).where(
                Obligation.subject_id == good, Obligation.kind == "property.followup"
            )
        )
        assert window.target_minutes == 48 * 60 and window.met_at is not None

        ticket = db.session.get(ServiceTicket, bad)
        followup.record_followup(ticket, estate.agent, 1, 40, "还是很脏")
        db.session.commit()
        assert ticket.state == "in_progress"
        assert db.session.get(Complaint, bad).reopen_count == 1


def test_erasing_a_resident_blanks_the_reporter_on_their_complaints(app, db, estate):
    from core import privacy

    ticket_id = file(db, estate, reporter_name="王女士", reporter_phone="13800001111")
    with company_scope(estate.company.id):
        resident = db.session.get(Customer, estate.resident)
        copy = dict(privacy.export_person(resident))
        assert copy["property_complaints"][0]["reporter_phone"] == "13800001111"
        privacy.erase_person(resident, estate.admin)
        db.session.commit()
        complaint = db.session.get(Complaint, ticket_id)
        assert (complaint.reporter_name, complaint.reporter_phone) == (None, None)


def test_an_emergency_on_a_saturday_night_is_due_half_an_hour_later(app, db, estate):
    """Property clocks count every minute: the company's office hours do not apply."""
    saturday_night = datetime(2024, 3, 16, 22, tzinfo=SHANGHAI)
    ticket_id = file(db, estate, at=saturday_night, emergency=True)
    with company_scope(estate.company.id):
        due = {
            o.kind: o.due_at
            for o in db.session.scalars(
                select(Obligation).where(Obligation.subject_id == ticket_id)
            )
        }
    assert due["property.response"] == saturday_night + timedelta(minutes=30)
    assert due["property.resolution"] == saturday_night + timedelta(hours=4)


def test_the_complaints_list_shows_times_in_the_company_time_zone(app, db, client, estate):
    file(db, estate, at=datetime(2024, 3, 11, 1, 5, tzinfo=ZoneInfo("UTC")))
    with client.session_transaction() as session:
        session["_user_id"], session["company_id"] = str(estate.agent.id), estate.company.id
    page = client.get("/property/complaints")
    assert page.status_code == 200
    assert "2024-03-11 09:05" in page.text  # 01:05 UTC is 09:05 in Shanghai
