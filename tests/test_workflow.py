"""The workflow engine: legal moves only, roles, inputs, guards, history, and no lost updates."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from core import workflow
from core.db import db as handle
from core.models import Customer, ServiceTicket, WorkflowHistory
from core.tenancy import company_scope
from core.tickets import open_ticket
from core.workflow import IllegalTransition, InputRequired, NotAllowed, StaleRecord


@pytest.fixture
def desk(app, db, company, make_user):
    """A company with a service agent, a viewer and one resolved ticket."""
    acme = company()
    agent, agent2, viewer = (make_user(r, acme) for r in ("service_agent", "manager", "viewer"))
    with company_scope(acme.id):
        customer = Customer(name="王女士")
        db.session.add(customer)
        db.session.flush()
        ticket = open_ticket(customer_id=customer.id, subject="空调不制冷", priority="high")
        workflow.transition(ticket, "start", user=agent)
        workflow.transition(ticket, "resolve", user=agent, inputs={"comment": "已更换压缩机"})
        db.session.commit()
    return acme, ticket.id, agent, agent2, viewer


def test_transition_writes_state_history_and_stamps(app, db, desk):
    acme, ticket_id, agent, *_ = desk
    with company_scope(acme.id):
        ticket = db.session.get(ServiceTicket, ticket_id)
        assert ticket.state == "resolved" and ticket.resolved_at is not None
        history = db.session.scalars(
            select(WorkflowHistory).where(WorkflowHistory.subject_id == ticket_id)
        ).all()
        assert [(h.from_state, h.to_state) for h in history] == [
            ("new", "in_progress"),
            ("in_progress", "resolved"),
        ]
        assert history[1].comment == "已更换压缩机" and history[1].user_id == agent.id


def test_illegal_transition_is_refused(app, db, desk):
    acme, ticket_id, agent, *_ = desk
    with company_scope(acme.id):
        ticket = db.session.get(ServiceTicket, ticket_id)
        with pytest.raises(IllegalTransition, match="cannot 'start' from state 'resolved'"):
            workflow.transition(ticket, "start", user=agent)
        with pytest.raises(IllegalTransition, match="no transition 'fly'"):
            workflow.transition(ticket, "fly", user=agent)


def test_role_and_required_input_are_enforced(app, db, desk):
    acme, ticket_id, agent, _manager, viewer = desk
    with company_scope(acme.id):
        ticket = db.session.get(ServiceTicket, ticket_id)
        with pytest.raises(NotAllowed, match="needs role"):
            workflow.transition(ticket, "close", user=viewer)
        with pytest.raises(InputRequired) as refused:
            workflow.transition(ticket, "reopen", user=agent, inputs={"comment": "  "})
        assert refused.value.field == "comment"
        assert [t.name for t in workflow.available(ticket, agent)] == ["close", "reopen"]
        assert workflow.available(ticket, viewer) == []


def test_guard_refusal_explains_why(app, db, company, make_user):
    from core.workflow import GuardRefused, State, Transition, Workflow

    acme = company()
    user = make_user("admin", acme)
    guarded = Workflow(
        "guarded",
        ServiceTicket,
        (State("new", "New"), State("closed", "Closed", category="done")),
        (
            Transition(
                "close",
                ("new",),
                "closed",
                "Close",
                guard=lambda t, inputs: None if t.description else "describe the problem first",
            ),
        ),
        initial="new",
    )
    app.extensions["guanxi.plugins"].registry.workflows["guarded"] = guarded
    try:
        with company_scope(acme.id):
            customer = Customer(name="x")
            db.session.add(customer)
            db.session.flush()
            ticket = open_ticket(customer_id=customer.id, subject="s", workflow="guarded")
            with pytest.raises(GuardRefused, match="describe the problem first"):
                workflow.transition(ticket, "close", user=user)
            ticket.description = "漏水"
            workflow.transition(ticket, "close", user=user)
            assert ticket.state == "closed"
    finally:
        del app.extensions["guanxi.plugins"].registry.workflows["guarded"]


def test_a_stale_version_from_the_form_is_refused(app, db, desk):
    acme, ticket_id, agent, manager, _ = desk
    with company_scope(acme.id):
        ticket = db.session.get(ServiceTicket, ticket_id)
        seen = ticket.version
        workflow.transition(ticket, "close", user=manager)
        db.session.commit()
        with pytest.raises(StaleRecord, match="changed by someone else"):
            workflow.transition(
                ticket, "reopen", user=agent, inputs={"comment": "x"}, expected_version=seen
            )


def test_two_users_close_one_ticket_at_once_and_exactly_one_succeeds(app, db, desk):
    """Both load the resolved ticket; both press "close"; the second gets a conflict."""
    acme, ticket_id, agent, manager, _ = desk
    loaded = threading.Barrier(2)
    first_done = threading.Event()
    outcome: dict[str, str] = {}

    def close(who, user_id, go_second):
        with app.app_context(), company_scope(acme.id):  # own app context: own session
            from core.models import User

            user = handle.session.get(User, user_id)
            ticket = handle.session.get(ServiceTicket, ticket_id)
            assert ticket.state == "resolved"
            loaded.wait(timeout=10)
            if go_second:
                first_done.wait(timeout=10)
            try:
                workflow.transition(ticket, "close", user=user)
                handle.session.commit()
                outcome[who] = "closed"
            except StaleRecord as exc:
                handle.session.rollback()
                outcome[who] = f"conflict: {exc}"
            finally:
                first_done.set()
                handle.session.remove()

    threads = [
        threading.Thread(target=close, args=("agent", agent.id, False)),
        threading.Thread(target=close, args=("manager", manager.id, True)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert outcome["agent"] == "closed"
    assert outcome["manager"].startswith("conflict: ServiceTicket was changed by someone else")
    db.session.expire_all()
    with company_scope(acme.id):
        closes = db.session.scalars(
            select(WorkflowHistory).where(
                WorkflowHistory.subject_id == ticket_id, WorkflowHistory.transition == "close"
            )
        ).all()
        assert len(closes) == 1 and closes[0].user_id == agent.id
        assert db.session.get(ServiceTicket, ticket_id).state == "closed"
