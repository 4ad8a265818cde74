"""Follow-up (回访) after a service: two scores kept apart; a bad customer score reopens."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import select

from core import workflow
from core.followup import FollowUpError, record_followup, threshold
from core.models import (
    CompanySetting,
    Contact,
    Customer,
    Interaction,
    Notification,
    ServiceTicket,
    Team,
    WorkflowHistory,
)
from core.tenancy import company_scope
from core.tickets import open_ticket


@pytest.fixture
def shop(app, db, company, make_user):
    """A company with an agent (assignee), a team manager, another manager, a QC inspector
    (admin), a viewer, and a resolved ticket of 王女士 assigned to the agent in the team."""
    co = company()
    people = SimpleNamespace(
        agent=make_user("service_agent", co),
        team_manager=make_user("manager", co),
        other_manager=make_user("manager", co),
        inspector=make_user("admin", co),
        viewer=make_user("viewer", co),
    )
    with company_scope(co.id):
        team = Team(name="维修组", manager_id=people.team_manager.id)
        wang, li = Customer(name="王女士"), Customer(name="李先生")
        db.session.add_all([team, wang, li])
        db.session.flush()
        contact, stranger = (
            Contact(customer_id=wang.id, name="王小姐"),
            Contact(customer_id=li.id, name="李太太"),
        )
        db.session.add_all([contact, stranger])
        db.session.flush()
        ticket = open_ticket(
            customer_id=wang.id,
            subject="热水器不出热水",
            assignee_id=people.agent.id,
            team_id=team.id,
        )
        workflow.transition(ticket, "start", user=people.agent)
        workflow.transition(ticket, "resolve", user=people.agent, inputs={"comment": "已换阀门"})
        db.session.commit()
        ids = SimpleNamespace(ticket=ticket.id, contact=contact.id, stranger=stranger.id)
    return SimpleNamespace(id=co.id, company=co, ids=ids, **vars(people))


def ticket_of(db, shop) -> ServiceTicket:
    return db.session.get(ServiceTicket, shop.ids.ticket)


def notified(db) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for row in db.session.scalars(select(Notification).order_by(Notification.id)):
        out.setdefault(row.user_id, []).append(row.kind)
    return out


def test_a_good_score_keeps_the_ticket_resolved_and_the_scores_apart(app, db, shop):
    with company_scope(shop.id):
        visit = record_followup(
            ticket_of(db, shop), shop.inspector, 5, 70, "客户满意，但维修记录不完整"
        )
        db.session.commit()
        visit = db.session.get(Interaction, visit.id)
        assert (visit.kind, visit.ticket_id, visit.customer_id) == (
            "follow_up",
            shop.ids.ticket,
            ticket_of(db, shop).customer_id,
        )
        # The customer was delighted; the inspector found the paperwork lacking: both kept.
        assert (visit.customer_score, visit.quality_score) == (5, 70)
        assert visit.result == "客户满意，但维修记录不完整"
        assert visit.user_id == shop.inspector.id
        assert ticket_of(db, shop).state == "resolved"
        assert notified(db) == {}


def test_a_bad_score_reopens_the_ticket_and_notifies_assignee_and_team_manager(app, db, shop):
    with company_scope(shop.id):
        record_followup(
            ticket_of(db, shop),
            shop.inspector,
            2,
            90,
            "水温还是不稳定",
            contact_id=shop.ids.contact,
        )
        db.session.commit()
        ticket = ticket_of(db, shop)
        assert ticket.state == "in_progress" and ticket.resolved_at is None
        last = db.session.scalars(
            select(WorkflowHistory)
            .where(WorkflowHistory.subject_id == ticket.id)
            .order_by(WorkflowHistory.id.desc())
        ).first()
        assert (last.transition, last.user_id) == ("reopen", shop.inspector.id)
        assert "2" in last.comment and "水温还是不稳定" in last.comment
        assert notified(db) == {
            shop.agent.id: ["ticket.reopened"],
            shop.team_manager.id: ["ticket.reopened"],
        }
        message = db.session.scalars(select(Notification)).first()
        assert f"#{ticket.id}" in message.message and message.link == f"/tickets/{ticket.id}"


def test_a_closed_ticket_reopens_too(app, db, shop):
    with company_scope(shop.id):
        workflow.transition(ticket_of(db, shop), "close", user=shop.team_manager)
        db.session.commit()
        record_followup(ticket_of(db, shop), shop.inspector, 1, None, "没人来修")
        db.session.commit()
        assert ticket_of(db, shop).state == "in_progress"


def test_without_assignee_or_team_the_managers_hear_of_it(app, db, shop):
    with company_scope(shop.id):
        ticket = ticket_of(db, shop)
        ticket.assignee_id = ticket.team_id = None
        db.session.commit()
        record_followup(ticket_of(db, shop), shop.agent, 1, None, None)
        db.session.commit()
        assert notified(db) == {
            shop.team_manager.id: ["ticket.reopened"],
            shop.other_manager.id: ["ticket.reopened"],
        }


def test_the_company_sets_the_threshold(app, db, shop):
    with company_scope(shop.id):
        assert threshold() == 2
        db.session.add(CompanySetting(key="followup", value={"bad_score_threshold": 3}))
        db.session.commit()
        assert threshold() == 3
        record_followup(ticket_of(db, shop), shop.inspector, 3, None, "一般")
        db.session.commit()
        assert ticket_of(db, shop).state == "in_progress"


@pytest.mark.parametrize(
    "customer_score, quality_score, contact, field",
    [
        (0, None, None, "customer_score"),
        (6, None, None, "customer_score"),
        (None, None, None, "customer_score"),
        ("很好", None, None, "customer_score"),
        (4, 101, None, "quality_score"),
        (4, -1, None, "quality_score"),
        (4, None, "stranger", "contact_id"),
    ],
)
def test_bad_input_is_refused_with_the_field_and_nothing_written(
    app, db, shop, customer_score, quality_score, contact, field
):
    with company_scope(shop.id):
        contact_id = shop.ids.stranger if contact == "stranger" else None
        with pytest.raises(FollowUpError) as refused:
            record_followup(
                ticket_of(db, shop), shop.inspector, customer_score, quality_score, "", contact_id
            )
        assert refused.value.field == field
        db.session.rollback()
        assert db.session.scalars(select(Interaction)).all() == []
        assert ticket_of(db, shop).state == "resolved"


def test_only_resolved_tickets_and_writing_roles(app, db, shop):
    with company_scope(shop.id):
        with pytest.raises(FollowUpError):
            record_followup(ticket_of(db, shop), shop.viewer, 5, None, None)
        workflow.transition(
            ticket_of(db, shop), "reopen", user=shop.agent, inputs={"comment": "客户来电"}
        )
        db.session.commit()
        with pytest.raises(FollowUpError) as refused:
            record_followup(ticket_of(db, shop), shop.inspector, 5, None, None)
        assert "解决" in refused.value.message
