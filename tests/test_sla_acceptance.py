"""Acceptance (issue 3): "a ticket created Friday 17:00 with a 4-working-hour target is due
Monday 12:00 on a 9–18 calendar, pauses while waiting on the customer, warns at the threshold
and is breached after" -- through the real engine: the company's calendar and SLA policy rows,
``open_ticket`` and workflow transitions at explicit moments, the ``clocks.scan`` job, and the
ticket list page."""

from __future__ import annotations

import re
from datetime import datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from core import clocks, workflow
from core.models import CalendarRecord, Customer, Notification, Obligation, ServiceTicket, SlaPolicy
from core.tenancy import company_scope
from core.tickets import open_ticket
from core.web import ticket_queries
from core.web import tickets as ticket_pages

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment in March 2024, Shanghai time (the 8th is a Friday, the 11th a Monday)."""
    return datetime(2024, 3, day, hour, minute, tzinfo=SHANGHAI)


@pytest.fixture
def page_now(monkeypatch):
    """``page_now(moment)``: the ticket pages take ``moment`` as "now" (for their badges)."""
    now = SimpleNamespace(value=None)
    for module in (ticket_pages, ticket_queries):
        monkeypatch.setattr(module, "utcnow", lambda: now.value)

    def set_to(moment: datetime) -> None:
        now.value = moment

    return set_to


def resolution_clock(db, company_id: int, ticket_id: int) -> Obligation:
    db.session.expire_all()
    with company_scope(company_id):
        return db.session.scalar(
            select(Obligation).where(
                Obligation.kind == "ticket.resolution", Obligation.subject_id == ticket_id
            )
        )


def test_friday_17_with_4_working_hours_is_due_monday_noon_pauses_warns_then_breaches(
    app, db, client, company, make_user, page_now
):
    shop = company()
    agent, manager = make_user("service_agent", shop), make_user("manager", shop)
    with company_scope(shop.id):
        # A 9–18 calendar, Monday to Friday, and a 4-working-hour resolution target.
        nine_to_six = {str(day): [["09:00", "18:00"]] for day in range(5)}
        db.session.add(
            CalendarRecord(
                name="default", config={"timezone": "Asia/Shanghai", "hours": nine_to_six}
            )
        )
        db.session.add(
            SlaPolicy(priority="normal", first_response_minutes=30, resolution_minutes=240)
        )
        customer = Customer(name="王女士")
        db.session.add(customer)
        db.session.flush()

        # A ticket created Friday 17:00 ...
        ticket = open_ticket(
            at=local(8, 17),
            customer_id=customer.id,
            subject="空调不制冷",
            priority="normal",
            assignee_id=agent.id,
        )
        db.session.commit()
        ticket_id = ticket.id

    # ... is due Monday 12:00 (one working hour on Friday, three on Monday morning).
    clock = resolution_clock(db, shop.id, ticket_id)
    assert clock.target_minutes == 240
    assert clock.due_at == local(11, 12)
    assert clock.status(local(9, 12)) == "running"  # the weekend does not count

    def move(name: str, moment: datetime, comment: str | None = None) -> None:
        with company_scope(shop.id):
            ticket = db.session.get(ServiceTicket, ticket_id)
            inputs = {"comment": comment} if comment else None
            workflow.transition(ticket, name, user=agent, inputs=inputs, at=moment)
            db.session.commit()

    move("start", local(8, 17, 10))

    # It pauses while waiting on the customer: Monday 9:30, 1.5 of the 4 hours used.
    move("wait", local(11, 9, 30), comment="等客户提供购买凭证")
    clock = resolution_clock(db, shop.id, ticket_id)
    assert clock.status(local(11, 13)) == "paused"  # past the original deadline: not breached
    assert clock.remaining_minutes == 150
    assert clocks.scan(local(11, 13)) == 0  # nobody is warned about a paused clock

    # Resumed Monday 14:00 with 2.5 hours left: due 16:30, warning at 75 % used (15:30).
    move("resume", local(11, 14), comment="客户已提供凭证")
    clock = resolution_clock(db, shop.id, ticket_id)
    assert (clock.warn_at, clock.due_at) == (local(11, 15, 30), local(11, 16, 30))

    # It warns at the threshold ...
    assert clocks.scan(local(11, 15, 29)) == 0
    assert clock.status(local(11, 15, 29)) == "running"
    assert clocks.scan(local(11, 15, 30)) == 1
    assert resolution_clock(db, shop.id, ticket_id).status(local(11, 15, 30)) == "at_risk"
    with company_scope(shop.id):
        kinds = db.session.scalars(select(Notification.kind).order_by(Notification.id)).all()
    assert kinds == ["clock.level1"]  # the assignee hears first

    # ... and is breached after.
    assert resolution_clock(db, shop.id, ticket_id).status(local(11, 16, 31)) == "breached"
    assert clocks.scan(local(11, 16, 31)) == 1
    with company_scope(shop.id):
        rows = db.session.execute(
            select(Notification.user_id, Notification.kind).order_by(Notification.id)
        ).all()
    assert rows == [
        (agent.id, "clock.level1"),
        (agent.id, "clock.level2"),
        (manager.id, "clock.level2"),
    ]

    # The ticket list shows it as breached, due 16:30 local time.
    page_now(local(11, 16, 31))
    with client.session_transaction() as session:
        session.update({"_user_id": str(manager.id), "_fresh": True, "company_id": shop.id})
    html = client.get("/tickets/?sla=breached").get_data(as_text=True)
    row = re.search(rf'data-ticket="{ticket_id}">(.*?)</tr>', html, re.S)
    assert row and 'data-sla="breached"' in row.group(1)
    assert "2024-03-11 16:30" in row.group(1)
