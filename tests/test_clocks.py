"""The clock engine on service tickets: SLA deadlines on the business calendar, pausing while
waiting on the customer, status in SQL and escalation notices."""

from __future__ import annotations

from datetime import datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from core import clocks, workflow
from core.calendar import BusinessCalendar
from core.models import CalendarRecord, Customer, Notification, Obligation, SlaPolicy
from core.tenancy import company_scope
from core.tickets import open_ticket

SHANGHAI = ZoneInfo("Asia/Shanghai")


def sh(*args: int) -> datetime:
    """A moment in Shanghai local time."""
    return datetime(*args, tzinfo=SHANGHAI)


# 2024-03-08 is a Friday; 2024-03-11 the Monday after.
FRIDAY_17 = sh(2024, 3, 8, 17)


@pytest.fixture
def clock(monkeypatch):
    """The engine's idea of "now", set by the test (transitions read it)."""
    now = SimpleNamespace(value=None)

    def set_to(moment: datetime) -> None:
        now.value = moment

    monkeypatch.setattr(clocks, "utcnow", lambda: now.value)
    monkeypatch.setattr(workflow, "utcnow", lambda: now.value)
    return set_to


@pytest.fixture
def desk(app, db, company, make_user):
    """``desk(code)``: a company with a service agent, a manager, an admin, a viewer and a
    customer; ``desk.open(at, ...)`` opens a ticket there (committed) and returns its id."""

    def factory(code=None):
        co = company(code)
        staff = {role: make_user(role, co) for role in ("service_agent", "manager", "admin")}
        viewer = make_user("viewer", co)
        with company_scope(co.id):
            customer = Customer(name="王女士")
            db.session.add(customer)
            db.session.commit()
            customer_id = customer.id

        def open_at(at, priority="urgent", **values):
            with company_scope(co.id):
                ticket = open_ticket(
                    at=at,
                    customer_id=customer_id,
                    subject="空调不制冷",
                    priority=priority,
                    **values,
                )
                db.session.commit()
                return ticket.id

        return SimpleNamespace(
            company=co,
            id=co.id,
            agent=staff["service_agent"],
            manager=staff["manager"],
            admin=staff["admin"],
            viewer=viewer,
            open=open_at,
        )

    return factory


def clocks_of(db, company_id, ticket_id):
    """The ticket's obligations by kind."""
    with company_scope(company_id):
        rows = db.session.scalars(
            select(Obligation).where(
                Obligation.subject_type == "service_ticket", Obligation.subject_id == ticket_id
            )
        ).all()
        return {row.kind: row for row in rows}


def move(db, shop, ticket_id, name, user=None, comment=None):
    """Take workflow transition ``name`` on the ticket and commit."""
    from core.models import ServiceTicket

    with company_scope(shop.id):
        ticket = db.session.get(ServiceTicket, ticket_id)
        inputs = {"comment": comment} if comment else None
        workflow.transition(ticket, name, user=user or shop.agent, inputs=inputs)
        db.session.commit()
        return ticket


def test_sla_deadlines_are_counted_in_working_time(app, db, desk):
    shop = desk()
    ticket_id = shop.open(FRIDAY_17)  # urgent: 30 min to respond, 4 h to resolve
    obligations = clocks_of(db, shop.id, ticket_id)
    assert set(obligations) == {"ticket.first_response", "ticket.resolution"}
    response, resolution = obligations["ticket.first_response"], obligations["ticket.resolution"]
    assert (response.target_minutes, resolution.target_minutes) == (30, 240)
    assert response.due_at == sh(2024, 3, 8, 17, 30)
    # One hour on Friday, three on Monday morning: due Monday noon, not Friday 21:00.
    assert resolution.due_at == sh(2024, 3, 11, 12)
    assert resolution.warn_at == sh(2024, 3, 11, 11)  # 75 % of the target used
    assert resolution.escalate_at == sh(2024, 3, 11, 14)  # 150 %
    assert resolution.status(sh(2024, 3, 9, 12)) == "running"  # the weekend does not count


def test_company_sla_policy_replaces_the_defaults_for_that_company_only(app, db, desk):
    strict, other = desk(), desk()
    with company_scope(strict.id):
        db.session.add(
            SlaPolicy(priority="high", first_response_minutes=15, resolution_minutes=120)
        )
        db.session.commit()
    mine = clocks_of(db, strict.id, strict.open(FRIDAY_17, priority="high"))
    assert mine["ticket.first_response"].due_at == sh(2024, 3, 8, 17, 15)
    assert mine["ticket.resolution"].due_at == sh(2024, 3, 11, 10)
    # The other company keeps the defaults for high priority: 1 h and 8 h.
    theirs = clocks_of(db, other.id, other.open(FRIDAY_17, priority="high"))
    assert theirs["ticket.first_response"].due_at == sh(2024, 3, 8, 18)
    assert theirs["ticket.resolution"].due_at == sh(2024, 3, 11, 16)


def test_company_calendar_and_time_zone_set_the_deadline(app, db, desk):
    holiday_shop, berlin_shop = desk(), desk()
    with company_scope(holiday_shop.id):
        calendar = BusinessCalendar.from_config(holidays=["2024-03-11"])  # Monday off
        db.session.add(CalendarRecord(name="default", config=calendar.to_config()))
        db.session.commit()
    due = clocks_of(db, holiday_shop.id, holiday_shop.open(FRIDAY_17))["ticket.resolution"].due_at
    assert due == sh(2024, 3, 12, 12)  # Tuesday noon

    berlin = ZoneInfo("Europe/Berlin")
    berlin_shop.company.timezone = "Europe/Berlin"
    db.session.commit()
    opened = datetime(2024, 3, 8, 17, tzinfo=berlin)
    due = clocks_of(db, berlin_shop.id, berlin_shop.open(opened))["ticket.resolution"].due_at
    assert due == datetime(2024, 3, 11, 12, tzinfo=berlin)


def test_waiting_on_the_customer_pauses_the_resolution_clock(app, db, desk, clock):
    shop = desk()
    cal = BusinessCalendar()
    ticket_id = shop.open(FRIDAY_17)  # resolution due Monday 12:00
    clock(sh(2024, 3, 8, 17, 10))
    move(db, shop, ticket_id, "start")
    assert clocks_of(db, shop.id, ticket_id)["ticket.first_response"].status() == "met"

    clock(sh(2024, 3, 11, 10))  # two of the four hours used
    move(db, shop, ticket_id, "wait", comment="等客户提供购买凭证")
    resolution = clocks_of(db, shop.id, ticket_id)["ticket.resolution"]
    original_due = resolution.due_at
    assert resolution.status() == "paused"
    assert resolution.remaining_minutes == 120

    # Long past the original deadline, a paused clock is neither breached nor escalated.
    tuesday_14 = sh(2024, 3, 12, 14)
    assert resolution.status(tuesday_14) == "paused"
    with company_scope(shop.id):
        assert clocks.status_counts("ticket.resolution", now=tuesday_14) == {"paused": 1}
    assert clocks.scan(tuesday_14) == 0

    clock(sh(2024, 3, 12, 15))
    move(db, shop, ticket_id, "resume")
    resolution = clocks_of(db, shop.id, ticket_id)["ticket.resolution"]
    assert resolution.paused_at is None
    # The two hours left count from the resumption: due Tuesday 17:00, i.e. the deadline moved
    # by exactly the working time spent waiting (Monday 10:00 to Tuesday 15:00 = 14 h).
    assert resolution.due_at == sh(2024, 3, 12, 17)
    waited = cal.working_time_between(sh(2024, 3, 11, 10), sh(2024, 3, 12, 15))
    assert waited == timedelta(hours=14)
    assert cal.working_time_between(original_due, resolution.due_at) == waited
    assert resolution.status(sh(2024, 3, 12, 15, 30)) == "running"
    assert resolution.status(sh(2024, 3, 12, 16, 30)) == "at_risk"

    clock(sh(2024, 3, 12, 16, 30))
    ticket = move(db, shop, ticket_id, "resolve", comment="已更换压缩机")
    assert ticket.resolved_at == sh(2024, 3, 12, 16, 30)
    resolution = clocks_of(db, shop.id, ticket_id)["ticket.resolution"]
    assert resolution.met_at == sh(2024, 3, 12, 16, 30)
    assert resolution.status(sh(2024, 3, 20)) == "met"  # met stays met


def test_status_counts_are_computed_in_sql(app, db, desk, clock):
    shop, other = desk(), desk()
    now = sh(2024, 3, 11, 11, 30)  # Monday
    friday_9 = sh(2024, 3, 8, 9)
    shop.open(sh(2024, 3, 11, 11))  # resolution due Monday 15:00: running
    shop.open(FRIDAY_17)  # warned Monday 11:00, due 12:00: at risk
    shop.open(friday_9)  # due Friday 13:00: breached
    paused, met, late = shop.open(friday_9), shop.open(friday_9), shop.open(friday_9)
    clock(sh(2024, 3, 8, 9, 5))
    for ticket_id in (paused, met, late):
        move(db, shop, ticket_id, "start")
    clock(sh(2024, 3, 8, 10))
    move(db, shop, paused, "wait", comment="等客户回电")
    move(db, shop, met, "resolve", comment="已解决")
    clock(sh(2024, 3, 11, 10))
    move(db, shop, late, "resolve", comment="已解决")
    other.open(friday_9)  # another company's breach is not counted

    with company_scope(shop.id):
        resolution = clocks.status_counts("ticket.resolution", now=now)
        assert resolution == {
            "running": 1,
            "at_risk": 1,
            "breached": 1,
            "paused": 1,
            "met": 1,
            "met_late": 1,
        }
        # First responses: the three tickets never touched are late, the others were answered.
        assert clocks.status_counts("ticket.first_response", now=now) == {"breached": 3, "met": 3}
        everything = clocks.status_counts(now=now)
        assert everything == {**resolution, "breached": 4, "met": 4}
        # The SQL expression and the per-row rule agree.
        rows = db.session.execute(select(Obligation, Obligation.status_expr(now))).all()
        assert len(rows) == 12
        assert all(row.status(now) == status for row, status in rows)


def notices(db, company_id):
    """``{user_id: [kind, ...]}`` of the company's notifications, oldest first."""
    with company_scope(company_id):
        rows = db.session.scalars(select(Notification).order_by(Notification.id)).all()
    out: dict[int, list[str]] = {}
    for row in rows:
        out.setdefault(row.user_id, []).append(row.kind)
    return out


def test_scan_escalates_step_by_step_notifying_more_people(app, db, desk, clock):
    shop, other = desk(), desk()
    ids = {}
    for place in (shop, other):
        ids[place.id] = place.open(FRIDAY_17, assignee_id=place.agent.id)
        clock(sh(2024, 3, 8, 17, 5))
        move(db, place, ids[place.id], "assign", user=place.manager)  # first response met

    assert clocks.scan(sh(2024, 3, 11, 10)) == 0  # Monday 10:00: on track
    assert notices(db, shop.id) == {}

    # Monday 11:30: 75 % used. One UPDATE raises both companies' tickets.
    assert clocks.scan(sh(2024, 3, 11, 11, 30)) == 2
    assert notices(db, shop.id) == {shop.agent.id: ["clock.level1"]}
    assert notices(db, other.id) == {other.agent.id: ["clock.level1"]}
    assert clocks.scan(sh(2024, 3, 11, 11, 30)) == 0  # idempotent: nothing new to say
    assert notices(db, shop.id) == {shop.agent.id: ["clock.level1"]}

    # Monday 12:30: breached; the managers hear of it.
    assert clocks.scan(sh(2024, 3, 11, 12, 30)) == 2
    assert notices(db, shop.id) == {
        shop.agent.id: ["clock.level1", "clock.level2"],
        shop.manager.id: ["clock.level2"],
    }

    # Monday 14:30: 150 % used; the admins too. Repeating the scan adds nothing.
    assert clocks.scan(sh(2024, 3, 11, 14, 30)) == 2
    assert clocks.scan(sh(2024, 3, 11, 14, 30)) == 0
    assert clocks.scan(sh(2024, 3, 12, 9, 30)) == 0  # the top level is not raised again
    expected = {
        shop.agent.id: ["clock.level1", "clock.level2", "clock.level3"],
        shop.manager.id: ["clock.level2", "clock.level3"],
        shop.admin.id: ["clock.level3"],
    }
    assert notices(db, shop.id) == expected
    assert notices(db, other.id) == {
        other.agent.id: ["clock.level1", "clock.level2", "clock.level3"],
        other.manager.id: ["clock.level2", "clock.level3"],
        other.admin.id: ["clock.level3"],
    }
    with company_scope(shop.id):
        last = db.session.scalars(select(Notification).order_by(Notification.id.desc())).first()
        assert f"#{ids[shop.id]}" in last.message
        assert last.link == f"/tickets/{ids[shop.id]}"
        level = clocks_of(db, shop.id, ids[shop.id])["ticket.resolution"].escalation_level
        assert level == 3


def test_scan_long_after_the_deadline_notifies_each_person_once(app, db, desk, clock):
    shop = desk()
    ticket_id = shop.open(FRIDAY_17, assignee_id=shop.agent.id)
    clock(sh(2024, 3, 8, 17, 5))
    move(db, shop, ticket_id, "assign", user=shop.manager)
    assert clocks.scan(sh(2024, 3, 13, 9)) == 1  # straight to level 3
    assert notices(db, shop.id) == {
        shop.agent.id: ["clock.level3"],
        shop.manager.id: ["clock.level3"],
        shop.admin.id: ["clock.level3"],
    }


def test_met_and_paused_clocks_are_not_escalated(app, db, desk, clock):
    shop = desk()
    resolved = shop.open(FRIDAY_17, assignee_id=shop.agent.id)
    waiting = shop.open(FRIDAY_17, assignee_id=shop.agent.id)
    clock(sh(2024, 3, 8, 17, 10))
    for ticket_id in (resolved, waiting):
        move(db, shop, ticket_id, "start")
    move(db, shop, resolved, "resolve", comment="已解决")
    move(db, shop, waiting, "wait", comment="等客户")
    assert clocks.scan(sh(2024, 3, 13, 9)) == 0
    assert notices(db, shop.id) == {}


def test_a_reopened_ticket_gets_a_fresh_resolution_clock(app, db, desk, clock):
    shop = desk()
    ticket_id = shop.open(FRIDAY_17)  # urgent: 4 working hours to resolve
    clock(sh(2024, 3, 8, 17, 30))
    move(db, shop, ticket_id, "start")
    move(db, shop, ticket_id, "resolve", comment="已处理")
    assert clocks_of(db, shop.id, ticket_id)["ticket.resolution"].status() == "met"

    clock(sh(2024, 3, 12, 9))  # Tuesday: the customer calls back, it is not fixed
    move(db, shop, ticket_id, "reopen", comment="客户反馈问题仍在")
    resolution = clocks_of(db, shop.id, ticket_id)["ticket.resolution"]
    assert resolution.met_at is None and resolution.escalation_level == 0
    assert resolution.due_at == sh(2024, 3, 12, 13)  # the full four hours again
    assert resolution.status(sh(2024, 3, 12, 14)) == "breached"
    assert clocks_of(db, shop.id, ticket_id)["ticket.first_response"].status() == "met"


def test_a_clock_warned_before_a_pause_warns_again_for_its_new_deadline(app, db, desk, clock):
    shop = desk()
    ticket_id = shop.open(sh(2024, 3, 11, 9), assignee_id=None)  # Monday; due 13:00
    clock(sh(2024, 3, 11, 9, 10))
    move(db, shop, ticket_id, "start")
    assert clocks.scan(sh(2024, 3, 11, 12, 15)) == 1  # at risk
    clock(sh(2024, 3, 11, 12, 20))
    move(db, shop, ticket_id, "wait", comment="等客户回电")
    clock(sh(2024, 3, 12, 9))
    move(db, shop, ticket_id, "resume")
    resolution = clocks_of(db, shop.id, ticket_id)["ticket.resolution"]
    assert resolution.escalation_level == 0
    assert clocks.scan(sh(2024, 3, 12, 9, 30)) == 1  # past the new warning moment: warned again


def test_restart_counts_the_same_clock_afresh_in_place(app, db, desk, clock):
    from core.models import ServiceTicket

    shop = desk()
    ticket_id = shop.open(FRIDAY_17)  # urgent: 4 working hours to resolve
    clock(sh(2024, 3, 8, 17, 30))
    move(db, shop, ticket_id, "start")
    move(db, shop, ticket_id, "resolve", comment="已处理")
    before = clocks_of(db, shop.id, ticket_id)["ticket.resolution"]
    with company_scope(shop.id):
        ticket = db.session.get(ServiceTicket, ticket_id)
        kind = next(k for k in clocks.kinds_for(ticket) if k.name == "ticket.resolution")
        row = clocks.restart(kind, ticket, at=sh(2024, 3, 12, 9))
        db.session.commit()
    after = clocks_of(db, shop.id, ticket_id)["ticket.resolution"]
    assert row is not None and after.id == before.id  # the same row, counted again
    assert after.met_at is None and after.escalation_level == 0
    assert after.due_at == sh(2024, 3, 12, 13)
    assert len(clocks_of(db, shop.id, ticket_id)) == 2  # nothing added beside it


# -- date-bound kinds: notices before a date -------------------------------------------------


@pytest.fixture
def expiry(app, monkeypatch):
    """A date-bound kind on tickets (``dates[ticket_id]`` is its date), notices at 60/30/7."""
    from datetime import date

    dates: dict[int, date | None] = {}
    from core.models import ServiceTicket

    kind = clocks.ObligationKind(
        "test.expiry",
        ServiceTicket,
        None,
        "Contract expiry",
        "合同到期",
        deadline=lambda ticket: dates.get(ticket.id),
        notices=(7, 60, 30),
        met_states=("resolved", "closed"),
        link="/tickets/{id}",
        plugin="core",
    )
    registry = app.extensions["guanxi.plugins"].registry.obligation_kinds
    monkeypatch.setitem(registry, kind.name, kind)
    return SimpleNamespace(kind=kind, dates=dates)


def _ticket(db, shop, ticket_id):
    from core.models import ServiceTicket

    return db.session.get(ServiceTicket, ticket_id)


def messages(db, company_id):
    with company_scope(company_id):
        rows = db.session.scalars(
            select(Notification)
            .where(Notification.message.startswith("合同到期"))  # not the tickets' SLA clocks
            .order_by(Notification.id)
        ).all()
        return [(row.user_id, row.message) for row in rows]


def test_date_bound_notices_are_sent_once_each_at_their_thresholds(app, db, desk, expiry):
    from datetime import date

    shop = desk()
    ticket_id = shop.open(sh(2024, 4, 1, 10), assignee_id=shop.agent.id)
    expiry.dates[ticket_id] = date(2024, 6, 30)  # valid through 30 June
    with company_scope(shop.id):
        row = clocks.start(expiry.kind, _ticket(db, shop, ticket_id))
        db.session.commit()
        # the end of 30 June in Shanghai; the first notice 60 days before
        assert row.due_at == sh(2024, 7, 1) and row.warn_at == sh(2024, 5, 2)
        assert expiry.kind.notices == (60, 30, 7)
    sent_on = []
    day = date(2024, 4, 20)
    while day <= date(2024, 7, 10):  # the daily job at 09:00, every day for three months
        before = len(messages(db, shop.id))
        clocks.scan(sh(day.year, day.month, day.day, 9))
        if len(messages(db, shop.id)) > before:
            sent_on.append(day)
        day += timedelta(days=1)
    assert sent_on == [date(2024, 5, 2), date(2024, 6, 1), date(2024, 6, 24), date(2024, 7, 1)]
    assert messages(db, shop.id) == [
        (shop.agent.id, f"合同到期 #{ticket_id} 还有 60 天到期"),
        (shop.agent.id, f"合同到期 #{ticket_id} 还有 30 天到期"),
        (shop.agent.id, f"合同到期 #{ticket_id} 还有 7 天到期"),
        (shop.agent.id, f"合同到期 #{ticket_id} 已到期"),
    ]
    with company_scope(shop.id):
        assert clocks_of(db, shop.id, ticket_id)["test.expiry"].escalation_level == 4


def test_a_late_scan_sends_only_the_nearest_notice_and_met_or_moved_dates_start_over(
    app, db, desk, expiry, clock
):
    from datetime import date

    shop = desk()
    late = shop.open(sh(2024, 4, 1, 10))  # no assignee: the managers are told
    met = shop.open(sh(2024, 4, 1, 10), assignee_id=shop.agent.id)
    for ticket_id in (late, met):
        expiry.dates[ticket_id] = date(2024, 6, 30)
    with company_scope(shop.id):
        for ticket_id in (late, met):
            clocks.start(expiry.kind, _ticket(db, shop, ticket_id))
        db.session.commit()
    clock(sh(2024, 4, 2, 10))
    move(db, shop, met, "start")
    move(db, shop, met, "resolve", comment="续签完成")  # met: no notices
    clocks.scan(sh(2024, 6, 25, 9))  # the job was off since April: one notice, the 7-day one
    assert messages(db, shop.id) == [(shop.manager.id, f"合同到期 #{late} 还有 6 天到期")]
    clocks.scan(sh(2024, 6, 27, 9))
    assert len(messages(db, shop.id)) == 1
    # the date moves a year on: the clock counts afresh, notices start over
    expiry.dates[late] = date(2025, 6, 30)
    with company_scope(shop.id):
        row = clocks.restart(expiry.kind, _ticket(db, shop, late))
        db.session.commit()
        assert (row.escalation_level, row.due_at) == (0, sh(2025, 7, 1))
    clocks.scan(sh(2024, 6, 28, 9))
    assert len(messages(db, shop.id)) == 1
    clocks.scan(sh(2025, 5, 3, 9))
    assert messages(db, shop.id)[-1] == (shop.manager.id, f"合同到期 #{late} 还有 59 天到期")
    # no date any more: no clock
    expiry.dates[late] = None
    with company_scope(shop.id):
        assert clocks.restart(expiry.kind, _ticket(db, shop, late)) is None
        db.session.commit()
    assert "test.expiry" not in clocks_of(db, shop.id, late)


def test_a_kind_needs_either_a_target_or_a_deadline():
    from core.models import ServiceTicket

    with pytest.raises(ValueError, match="either target or deadline"):
        clocks.ObligationKind("x", ServiceTicket, None, "X")
    with pytest.raises(ValueError, match="notices need a deadline"):
        clocks.ObligationKind("x", ServiceTicket, lambda t: 60, "X", notices=(3,))
