"""Insurance commissions (issue 8): schedules and which one applies, the hierarchy frozen at
sale, first-year / renewal / override lines, clawbacks within the window, monthly statements
with locked periods, the job, the pages, the API, the reports and the demo -- every amount
worked out by hand in the comments."""

from __future__ import annotations

import itertools
import re
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, insert, select

from core import tokens, workflow
from core.models import Channel, Customer
from core.tenancy import company_scope
from core.testing import QueryCounter, company_today
from plugins.insurance import commissions as svc
from plugins.insurance.models import (
    Agent,
    CommissionLine,
    CommissionSchedule,
    Lead,
    Policy,
    PolicyHierarchy,
    Product,
    Settlement,
)

D = Decimal
SHANGHAI = ZoneInfo("Asia/Shanghai")
NUMBERS = itertools.count(1)
TODAY = company_today()
THIS = TODAY.replace(day=1)
PREV = svc.add_months(THIS, -1)
PREV2 = svc.add_months(THIS, -2)


def at(day: date) -> datetime:
    """10 o'clock of ``day`` in Shanghai."""
    return datetime.combine(day, time(10), SHANGHAI)


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
    """A company with insurance: admin, manager, viewer and two sales reps; a three-level agent
    team 张伟 (writes) → 李娜 (his upline) → 王芳 (hers), each an agent channel, plus a broker;
    products 终身寿险 (life) and 意外险 (accident); a customer. A company without insurance.
    ``ins.policy(...)`` makes an issued policy row (no engine), ``ins.schedule(...)`` one."""
    co = company(plugins=["insurance"])
    plain = company()
    people = {r: make_user(r, co) for r in ("admin", "manager", "viewer")}
    writer_login = make_user("sales_rep", co)
    upline_login = make_user("sales_rep", co)
    with company_scope(co.id):
        agents = {}
        for key, name, kind in (
            ("top", "王芳", "insurance_agent"),
            ("mid", "李娜", "insurance_agent"),
            ("writer", "张伟", "insurance_agent"),
            ("broker", "明亚保险经纪", "broker"),
        ):
            channel = Channel(name=name, type=kind)
            db.session.add(channel)
            db.session.flush()
            agent = Agent(
                channel_id=channel.id,
                licence_number=f"LIC-{key}",
                licence_classes=["life", "accident"],
                licence_expires_on=TODAY + timedelta(days=700),
                team="一部",
            )
            db.session.add(agent)
            db.session.flush()
            agents[key] = agent
        agents["mid"].upline_id = agents["top"].id
        agents["writer"].upline_id = agents["mid"].id
        agents["writer"].user_id = writer_login.id
        agents["mid"].user_id = upline_login.id
        life = Product(code="L1", name="终身寿险", product_class="life")
        accident = Product(code="A1", name="意外险", product_class="accident")
        customer = Customer(name="陈先生", status="existing", owner_id=upline_login.id)
        db.session.add_all([life, accident, customer])
        db.session.commit()
        ids = SimpleNamespace(
            **{k: a.id for k, a in agents.items()},
            life=life.id,
            accident=accident.id,
            customer=customer.id,
        )

    def policy(
        premium,
        *,
        issued_on=None,
        agent="writer",
        product="life",
        year=1,
        state="issued",
        channel=None,
        hook=True,
    ):
        """An issued policy of ``premium`` a year; ``hook``: run the commission hook."""
        with company_scope(co.id):
            agent_id = getattr(ids, agent) if agent else None
            issued_on = issued_on or PREV2 + timedelta(days=9)
            row = Policy(
                number=f"P-{next(NUMBERS):04d}",
                product_id=getattr(ids, product),
                customer_id=ids.customer,
                agent_id=agent_id,
                channel_id=channel
                if channel is not None
                else (db.session.get(Agent, agent_id).channel_id if agent_id else None),
                premium=D(premium),
                annual_premium=D(premium),
                start_on=issued_on,
                end_on=issued_on + timedelta(days=364),
                applied_on=issued_on - timedelta(days=5),
                issued_on=issued_on,
                state=state,
                policy_year=year,
            )
            db.session.add(row)
            db.session.flush()
            if hook:
                svc.after_transition(row, "underwriting", "issued", at(issued_on), {})
            db.session.commit()
            return row.id

    def schedule(first, renewal="0", overrides="", *, product="life", kind=None, start=None,
                 end=None):  # fmt: skip
        with company_scope(co.id):
            row = svc.save_schedule(
                svc.ScheduleInput(
                    product_id=getattr(ids, product) if product else None,
                    channel_type=kind,
                    first_year_rate=D(first),
                    renewal_rate=D(renewal),
                    override_rates=svc.parse_overrides(overrides),
                    valid_from=start or date(2020, 1, 1),
                    valid_to=end,
                )
            )
            db.session.commit()
            return row.id

    return SimpleNamespace(
        company=co,
        plain=plain,
        writer_login=writer_login,
        upline_login=upline_login,
        policy=policy,
        schedule=schedule,
        **people,
        **vars(ids),
    )


def lines(db, ins, policy_id=None) -> list[tuple]:
    """``(agent id, kind, level, base, rate, amount, month)`` of the lines, oldest first."""
    with company_scope(ins.company.id):
        stmt = select(CommissionLine).order_by(CommissionLine.id)
        if policy_id is not None:
            stmt = stmt.where(CommissionLine.policy_id == policy_id)
        return [
            (x.agent_id, x.kind, x.level, x.base, x.rate.normalize(), x.amount, x.month)
            for x in db.session.scalars(stmt)
        ]


def settlement(db, ins, agent_id, month) -> Settlement | None:
    with company_scope(ins.company.id):
        return db.session.scalars(
            select(Settlement).where(Settlement.agent_id == agent_id, Settlement.month == month)
        ).first()


def confirm(db, ins, agent_id, month, *, pay=False) -> None:
    with company_scope(ins.company.id):
        row = settlement(db, ins, agent_id, month)
        workflow.transition(row, "confirm", user=ins.manager)
        if pay:
            workflow.transition(row, "pay", user=ins.manager)
        db.session.commit()


def issued_month() -> date:
    return PREV2


# -- first year, renewal, overrides ---------------------------------------------------------------


def test_first_year_commission_and_two_upline_overrides_hand_computed(app, db, ins):
    ins.schedule("30", "8", "5, 2")
    policy_id = ins.policy("10000.10")
    # 张伟 writes: 10,000.10 × 30 % = 3,000.03
    # 李娜, one level up: 10,000.10 × 5 % = 500.005 → 500.01 (half up, not the banker's 500.00)
    # 王芳, two levels up: 10,000.10 × 2 % = 200.002 → 200.00
    assert lines(db, ins, policy_id) == [
        (ins.writer, "first_year", 0, D("10000.10"), D("30"), D("3000.03"), PREV2),
        (ins.mid, "override", 1, D("10000.10"), D("5"), D("500.01"), PREV2),
        (ins.top, "override", 2, D("10000.10"), D("2"), D("200.00"), PREV2),
    ]
    with company_scope(ins.company.id):
        frozen = db.session.execute(
            select(PolicyHierarchy.level, PolicyHierarchy.agent_id)
            .where(PolicyHierarchy.policy_id == policy_id)
            .order_by(PolicyHierarchy.level)
        ).all()
    assert frozen == [(0, ins.writer), (1, ins.mid), (2, ins.top)]
    # one open statement per agent and month, its total the sum of its lines
    totals = {a: settlement(db, ins, a, PREV2) for a in (ins.writer, ins.mid, ins.top)}
    assert {a: (s.state, s.total) for a, s in totals.items()} == {
        ins.writer: ("open", D("3000.03")),
        ins.mid: ("open", D("500.01")),
        ins.top: ("open", D("200.00")),
    }


def test_renewal_rate_from_policy_year_two(app, db, ins):
    ins.schedule("30", "8.5", "5, 2")
    first = ins.policy("6000")
    second = ins.policy("6000", year=2, issued_on=PREV + timedelta(days=2))
    # year 1: 6,000 × 30 % = 1,800.00; year 2: 6,000 × 8.5 % = 510.00; overrides both years
    # 6,000 × 5 % = 300.00 and 6,000 × 2 % = 120.00
    assert [x[1:6] for x in lines(db, ins, first)] == [
        ("first_year", 0, D("6000.00"), D("30"), D("1800.00")),
        ("override", 1, D("6000.00"), D("5"), D("300.00")),
        ("override", 2, D("6000.00"), D("2"), D("120.00")),
    ]
    assert [x[1:6] for x in lines(db, ins, second)] == [
        ("renewal", 0, D("6000.00"), D("8.5"), D("510.00")),
        ("override", 1, D("6000.00"), D("5"), D("300.00")),
        ("override", 2, D("6000.00"), D("2"), D("120.00")),
    ]
    assert {x[6] for x in lines(db, ins, second)} == {PREV}
    # the writer's two months: 1,800.00 and 510.00
    assert settlement(db, ins, ins.writer, PREV2).total == D("1800.00")
    assert settlement(db, ins, ins.writer, PREV).total == D("510.00")


def test_overrides_stop_where_the_schedule_or_the_chain_stops(app, db, ins):
    ins.schedule("20", overrides="4")  # one level only
    one_level = ins.policy("1000")
    # 1,000 × 20 % = 200.00 to 张伟, 1,000 × 4 % = 40.00 to 李娜, nothing to 王芳
    assert [(x[0], x[5]) for x in lines(db, ins, one_level)] == [
        (ins.writer, D("200.00")),
        (ins.mid, D("40.00")),
    ]
    ins.schedule("25", overrides="5, 2, 1", product="accident")
    top_writes = ins.policy("2000", agent="mid", product="accident")
    # 李娜 writes: 2,000 × 25 % = 500.00; only 王芳 above her: 2,000 × 5 % = 100.00
    assert [(x[0], x[1], x[2], x[5]) for x in lines(db, ins, top_writes)] == [
        (ins.mid, "first_year", 0, D("500.00")),
        (ins.top, "override", 1, D("100.00")),
    ]


def test_the_most_specific_schedule_valid_on_the_issue_day_wins(app, db, ins):
    ins.schedule("10", product=None)  # everything
    ins.schedule("12", product=None, kind="insurance_agent")  # agents, any product
    ins.schedule("20", product="life")  # life, any channel
    ins.schedule("25", product="life", kind="insurance_agent", end=PREV2)  # ended before issue
    ins.schedule("28", product="life", kind="insurance_agent", start=PREV2 + timedelta(days=1))
    day = PREV2 + timedelta(days=9)

    def rate(agent, product):
        policy_id = ins.policy("100", agent=agent, product=product, issued_on=day)
        return lines(db, ins, policy_id)[0][4]

    assert rate("writer", "life") == D("28")  # product + type
    assert rate("broker", "life") == D("20")  # product
    assert rate("writer", "accident") == D("12")  # type
    assert rate("broker", "accident") == D("10")  # neither
    with company_scope(ins.company.id):
        assert svc.schedule_for(ins.life, "insurance_agent", PREV2).first_year_rate == D("25")


def test_the_hierarchy_is_the_one_at_the_time_of_sale(app, db, ins):
    ins.schedule("30", "8", "5, 2")
    policy_id = ins.policy("1000")
    with company_scope(ins.company.id):
        # 张伟 moves to report to the broker, after the sale
        db.session.get(Agent, ins.writer).upline_id = ins.broker
        db.session.commit()
        policy = db.session.get(Policy, policy_id)
        assert svc.on_issued(policy, at(TODAY)) == []  # the hook again writes nothing
        db.session.commit()
        assert [r.agent_id for r in svc.hierarchy_of(policy_id)] == [ins.writer, ins.mid, ins.top]
    assert [x[0] for x in lines(db, ins, policy_id)] == [ins.writer, ins.mid, ins.top]
    later = ins.policy("1000", issued_on=PREV)
    assert [x[0] for x in lines(db, ins, later)] == [ins.writer, ins.broker]  # new chain


def test_no_schedule_or_no_agent_writes_no_line(app, db, client, ins):
    no_schedule = ins.policy("5000")
    ins.schedule("30")
    no_agent = ins.policy("5000", agent=None)
    assert lines(db, ins) == []
    with company_scope(ins.company.id):
        assert svc.hierarchy_of(no_agent) == []
        assert len(svc.hierarchy_of(no_schedule)) == 3  # frozen all the same
    with company_scope(ins.company.id):
        assert len(svc.panels("insurance_policy", db.session.get(Policy, no_schedule))) == 1
        assert svc.panels("customer", None) == []
    client_login(client, ins.manager, ins.company)
    page = text(client.get(f"/insurance/policies/{no_schedule}"))
    assert "No commission schedule applied" in page
    assert "张伟" in page and "upline level 2" in page
    page = text(client.get(f"/insurance/policies/{no_agent}"))
    assert "No agent sold this policy" in page


def test_the_policy_page_lists_its_lines_and_an_agent_sees_their_own(app, db, client, ins):
    ins.schedule("30", overrides="5, 2")
    policy_id = ins.policy("1000")
    client_login(client, ins.manager, ins.company)
    page = text(client.get(f"/insurance/policies/{policy_id}"))
    assert len(re.findall(r'data-line="\d+"', page)) == 3 and "370.00" in page  # 300+50+20
    client_login(client, ins.upline_login, ins.company)
    page = text(client.get(f"/insurance/policies/{policy_id}"))
    lines_shown = re.findall(r'data-line="\d+" data-kind="(\w+)"', page)
    assert lines_shown == ["override"]  # 李娜's 50.00 only


def test_rounding_is_half_up_to_the_fen():
    assert svc.commission(D("0.10"), D("5")) == D("0.01")  # 0.005 → 0.01
    assert svc.commission(D("333.33"), D("7.125")) == D("23.75")  # 23.74976… → 23.75
    assert svc.commission(D("999999.99"), D("33.333")) == D("333330.00")  # 333,329.99666…


# -- clawback -------------------------------------------------------------------------------------


def test_clawback_after_cancellation_lands_in_the_next_open_month(app, db, ins):
    ins.schedule("30", "8", "5, 2")
    policy_id = ins.policy("10000.10")  # lines of PREV2: 3,000.03 / 500.01 / 200.00
    for agent_id in (ins.writer, ins.mid, ins.top):
        confirm(db, ins, agent_id, PREV2, pay=True)
    # 张伟 also confirmed PREV, so his clawback goes further, to this month
    ins.policy("100", issued_on=PREV)  # 30.00 to 张伟 in PREV
    confirm(db, ins, ins.writer, PREV)
    cancelled = PREV + timedelta(days=14)  # 35-65 days after issue: within 365
    with company_scope(ins.company.id):
        policy = db.session.get(Policy, policy_id)
        policy.state, policy.cancelled_on = "cancelled", cancelled
        svc.after_transition(policy, "issued", "cancelled", at(cancelled), {"comment": "退保"})
        svc.after_transition(policy, "issued", "cancelled", at(cancelled), {})  # again: no-op
        db.session.commit()
    back = [x for x in lines(db, ins, policy_id) if x[1] == "clawback"]
    assert back == [
        (ins.writer, "clawback", 0, D("10000.10"), D("30"), D("-3000.03"), THIS),
        (ins.mid, "clawback", 1, D("10000.10"), D("5"), D("-500.01"), PREV),
        (ins.top, "clawback", 2, D("10000.10"), D("2"), D("-200.00"), PREV),
    ]
    with company_scope(ins.company.id):
        reversed_ids = set(
            db.session.scalars(select(CommissionLine.reverses_id).where(
                CommissionLine.kind == "clawback"))
        )  # fmt: skip
        originals = set(
            db.session.scalars(select(CommissionLine.id).where(
                CommissionLine.policy_id == policy_id, CommissionLine.kind != "clawback"))
        )  # fmt: skip
    assert reversed_ids == originals
    # the paid months keep their totals; the open ones carry the negative lines
    assert settlement(db, ins, ins.writer, PREV2).total == D("3000.03")
    assert settlement(db, ins, ins.writer, PREV).total == D("30.00")
    assert settlement(db, ins, ins.writer, THIS).total == D("-3000.03")
    # 李娜's PREV: 5.00 override on the 100 policy, less 500.01
    assert settlement(db, ins, ins.mid, PREV).total == D("-495.01")


def test_a_renewal_line_is_not_taken_back(app, db, ins):
    ins.schedule("30", "8", "5")
    renewal = ins.policy("2000", year=2)  # 2,000 × 8 % = 160.00; override 2,000 × 5 % = 100.00
    with company_scope(ins.company.id):
        policy = db.session.get(Policy, renewal)
        policy.cancelled_on = PREV2 + timedelta(days=20)
        svc.on_cancelled(policy)
        db.session.commit()
    assert [(x[1], x[5]) for x in lines(db, ins, renewal)] == [
        ("renewal", D("160.00")),
        ("override", D("100.00")),
        ("clawback", D("-100.00")),  # the override only
    ]


def test_cancelled_after_the_window_nothing_is_taken_back(app, db, ins):
    ins.schedule("30", overrides="5")
    issued = PREV2 + timedelta(days=1)
    inside, outside = ins.policy("1000", issued_on=issued), ins.policy("1000", issued_on=issued)
    with company_scope(ins.company.id):
        svc.set_clawback_days(30)
        db.session.commit()
        assert svc.clawback_days() == 30
        for policy_id, days in ((inside, 30), (outside, 31)):
            policy = db.session.get(Policy, policy_id)
            policy.cancelled_on = issued + timedelta(days=days)
            svc.on_cancelled(policy)
        db.session.commit()
    # day 30 is within the window: 300.00 and 50.00 taken back; day 31 is not
    taken = [x[5] for x in lines(db, ins, inside) if x[1] == "clawback"]
    assert taken == [D("-300.00"), D("-50.00")]
    assert [x for x in lines(db, ins, outside) if x[1] == "clawback"] == []


# -- locked periods -------------------------------------------------------------------------------


def test_a_locked_period_refuses_changes_and_late_lines_go_to_the_next_month(app, db, ins):
    ins.schedule("30")
    ins.policy("1000")  # 300.00 to 张伟 in PREV2
    confirm(db, ins, ins.writer, PREV2)
    with company_scope(ins.company.id):
        locked = settlement(db, ins, ins.writer, PREV2)
        line = db.session.scalars(select(CommissionLine)).one()
        policy_id = line.policy_id
        with pytest.raises(svc.PeriodLocked) as refused:
            svc.add_line(agent_id=ins.writer, policy_id=policy_id, month=PREV2,
                         kind="first_year", base=D(10), rate=D(10))  # fmt: skip
        assert PREV2.strftime("%Y-%m") in str(refused.value)
        assert "no longer be added" in str(refused.value) or "不能再新增" in str(refused.value)
        with pytest.raises(svc.PeriodLocked):
            svc.change_line(line, amount=D("1.00"))
        with pytest.raises(svc.PeriodLocked):
            svc.remove_line(line)
        db.session.rollback()
        # the ORM refuses too, whoever writes: a new line of the month, a changed one
        db.session.add(
            CommissionLine(
                agent_id=ins.writer,
                policy_id=policy_id,
                month=PREV2,
                kind="renewal",
                base=D(1),
                rate=D(1),
                amount=D("0.01"),
            )  # fmt: skip
        )
        with pytest.raises(svc.PeriodLocked):
            db.session.flush()
        db.session.rollback()
        line = db.session.scalars(select(CommissionLine)).one()
        line.amount = D("999.00")
        with pytest.raises(svc.PeriodLocked):
            db.session.flush()
        db.session.rollback()
        line = db.session.scalars(select(CommissionLine)).one()
        db.session.delete(line)
        with pytest.raises(svc.PeriodLocked):
            db.session.flush()
        db.session.rollback()
        assert settlement(db, ins, ins.writer, PREV2).total == D("300.00")
        assert locked.state == "confirmed"
    # a policy issued in the locked month but entered late earns in the next open month
    late = ins.policy("500", issued_on=PREV2 + timedelta(days=20))
    assert lines(db, ins, late)[0][5:] == (D("150.00"), PREV)
    # an open month takes changes, and its total follows
    with company_scope(ins.company.id):
        line = db.session.scalars(select(CommissionLine).where(
            CommissionLine.policy_id == late)).one()  # fmt: skip
        svc.change_line(line, rate=D("20"))  # 500 × 20 % = 100.00
        db.session.commit()
        assert settlement(db, ins, ins.writer, PREV).total == D("100.00")
        svc.remove_line(line)
        db.session.commit()
        assert settlement(db, ins, ins.writer, PREV).total == D("0.00")


def test_confirm_and_pay_are_for_managers_on_the_statement_page(app, db, client, ins):
    ins.schedule("30")
    ins.policy("1000")
    row = settlement(db, ins, ins.writer, PREV2)
    client_login(client, ins.writer_login, ins.company)
    page = client.get(f"/insurance/commissions/statements/{row.id}")
    assert page.status_code == 200 and "step-confirm" not in text(page)
    answer = client.post(f"/insurance/commissions/statements/{row.id}/confirm",
                         data={"version": str(row.version)})  # fmt: skip
    assert answer.status_code == 403
    client_login(client, ins.manager, ins.company)
    page = text(client.get(f"/insurance/commissions/statements/{row.id}"))
    assert "step-confirm" in page
    stale = client.post(f"/insurance/commissions/statements/{row.id}/confirm",
                        data={"version": "999"})  # fmt: skip
    assert stale.status_code == 303
    done = client.post(f"/insurance/commissions/statements/{row.id}/confirm",
                       data={"version": str(row.version)})  # fmt: skip
    assert done.status_code == 302
    row = settlement(db, ins, ins.writer, PREV2)
    assert row.state == "confirmed" and row.confirmed_at is not None
    again = client.post(f"/insurance/commissions/statements/{row.id}/confirm",
                        data={"version": str(row.version)})  # fmt: skip
    assert again.status_code == 409
    client.post(f"/insurance/commissions/statements/{row.id}/pay",
                data={"version": str(row.version)})  # fmt: skip
    row = settlement(db, ins, ins.writer, PREV2)
    assert row.state == "paid" and row.paid_at is not None
    assert "This statement is locked" in text(
        client.get(f"/insurance/commissions/statements/{row.id}")
    )


# -- the job --------------------------------------------------------------------------------------


def test_the_job_files_bulk_lines_and_corrects_totals(app, db, client, ins):
    ins.schedule("30")
    policy_id = ins.policy("1000")  # 300.00, filed in 张伟's PREV2 statement
    with company_scope(ins.company.id):
        rows = [
            {"company_id": ins.company.id, "agent_id": agent, "policy_id": policy_id,
             "month": month, "kind": "override", "level": 1, "policy_year": 1,
             "base": D("1000"), "rate": D("1"), "amount": D(amount),
             "created_at": datetime.now(SHANGHAI)}
            for agent, month, amount in ((ins.writer, PREV2, "10.00"), (ins.writer, PREV, "20.00"),
                                         (ins.mid, PREV, "30.00"), (ins.mid, PREV, "0.05"))
        ]  # fmt: skip
        db.session.execute(insert(CommissionLine.__table__), rows)
        settlement(db, ins, ins.writer, PREV2).total = D("1.00")  # wrong
        db.session.commit()
        counts = svc.run_settlements()
        db.session.commit()
    # new statements: 张伟 PREV, 李娜 PREV; four lines filed; 张伟 PREV2 corrected
    # (300.00 + 10.00), and the two new ones set (20.00; 30.00 + 0.05)
    assert counts == {"created": 2, "attached": 4, "corrected": 3}
    assert settlement(db, ins, ins.writer, PREV2).total == D("310.00")
    assert settlement(db, ins, ins.writer, PREV).total == D("20.00")
    assert settlement(db, ins, ins.mid, PREV).total == D("30.05")
    with company_scope(ins.company.id):
        assert svc.run_settlements() == {"created": 0, "attached": 0, "corrected": 0}
        assert {j.name for j in svc.jobs()} == {"insurance.settlements"}
    client_login(client, ins.manager, ins.company)
    answer = client.post("/insurance/commissions/statements/run")
    assert answer.status_code == 302
    client_login(client, ins.writer_login, ins.company)
    assert client.post("/insurance/commissions/statements/run").status_code == 403


# -- pages ----------------------------------------------------------------------------------------


def test_an_agent_sees_their_own_statements_managers_see_all(app, db, client, ins):
    ins.schedule("30", overrides="5, 2")
    ins.policy("1000")
    ins.policy("2000", issued_on=PREV)
    client_login(client, ins.manager, ins.company)
    page = text(client.get("/insurance/commissions/statements"))
    assert len(re.findall(r'data-settlement="\d+"', page)) == 6  # 3 agents × 2 months
    # 300 + 50 + 20 + 600 + 100 + 40
    assert "Total ¥1,110.00" in page
    only = text(client.get(f"/insurance/commissions/statements?agent={ins.mid}&month="
                           f"{PREV.strftime('%Y-%m')}"))  # fmt: skip
    assert len(re.findall(r'data-settlement="\d+"', only)) == 1 and "100.00" in only
    client_login(client, ins.writer_login, ins.company)
    mine = text(client.get("/insurance/commissions/statements"))
    assert len(re.findall(r'data-settlement="\d+"', mine)) == 2 and "Total ¥900.00" in mine
    theirs = settlement(db, ins, ins.mid, PREV)
    assert client.get(f"/insurance/commissions/statements/{theirs.id}").status_code == 403
    # the agent's own page lists their statements; a colleague's page does not
    own_page = text(client.get(f"/insurance/agents/{ins.writer}"))
    assert "All statements of this agent" in own_page
    assert len(re.findall(r'agent-statements.*?data-settlement="\d+"', own_page, re.S)) >= 1
    other = text(client.get(f"/insurance/agents/{ins.mid}"))
    assert "All statements of this agent" not in other
    client_login(client, ins.viewer, ins.company)
    none = text(client.get("/insurance/commissions/statements"))
    assert "data-settlement=" not in none and "your login is no agent" in none
    assert client.get("/insurance/commissions/statements?month=2026-13").status_code == 400
    assert client.get("/insurance/commissions/statements?state=bogus").status_code == 400


def test_statement_list_pages_by_keyset_and_counts_no_more_queries(app, db, client, ins):
    ins.schedule("30")
    for n in range(8):
        ins.policy("100", issued_on=svc.add_months(THIS, -n - 1) + timedelta(days=3))
    client_login(client, ins.manager, ins.company)
    counts = []
    for size in (2, 8):
        app.config["LIST_PAGE_SIZE"] = size
        with QueryCounter(db.engine) as counter:
            assert client.get("/insurance/commissions/statements").status_code == 200
        counts.append(counter.count)
    assert counts[0] == counts[1]
    app.config["LIST_PAGE_SIZE"] = 3
    seen, url = [], "/insurance/commissions/statements"
    while url:
        page = text(client.get(url))
        seen += re.findall(r'data-settlement="(\d+)"', page)
        found = re.search(r'href="([^"]*after=[^"]+)"', page)
        url = found.group(1).replace("&amp;", "&") if found else None
    assert len(seen) == len(set(seen)) == 8
    assert client.get("/insurance/commissions/statements?after=bogus").status_code == 400


def test_the_printable_statement_lists_policy_customer_product_and_amounts(app, db, client, ins):
    ins.schedule("30", overrides="5")
    policy_id = ins.policy("1234.56")
    with company_scope(ins.company.id):
        number = db.session.get(Policy, policy_id).number
    row = settlement(db, ins, ins.writer, PREV2)
    client_login(client, ins.writer_login, ins.company)
    page = text(client.get(f"/insurance/commissions/statements/{row.id}"))
    # 1,234.56 × 30 % = 370.368 → 370.37
    for piece in (number, "陈先生", "终身寿险", "First year", "1,234.56", "30%", "370.37",
                  '<article class="statement"', "张伟"):  # fmt: skip
        assert piece in page, piece
    assert re.search(r"<script(?![^>]*\bsrc=)", page) is None  # no script of its own
    # Its print rules are in the site's stylesheet (the CSP allows no <style> in the page).
    css = client.get("/static/guanxi.css").get_data(as_text=True)
    assert "@media print" in css and "body:has(article.statement) header.top" in css


def test_schedule_form_errors_are_shown_at_the_fields(app, db, client, ins):
    client_login(client, ins.writer_login, ins.company)
    assert client.get("/insurance/commissions/schedules").status_code == 403
    client_login(client, ins.manager, ins.company)
    assert client.get("/insurance/commissions/schedules").status_code == 200
    good = {"product_id": str(ins.life), "channel_type": "insurance_agent",
            "first_year_rate": "30", "renewal_rate": "8", "override_rates": "5，2",
            "valid_from": "2026-01-01", "valid_to": ""}  # fmt: skip
    for change, field, message in (
        ({"first_year_rate": "101"}, "first_year_rate", "from 0 to 100"),
        ({"renewal_rate": "1.2345"}, "renewal_rate", "At most 3 decimal places"),
        ({"renewal_rate": "abc"}, "renewal_rate", "Enter a rate"),
        ({"override_rates": "5, x"}, "override_rates", "Level 2"),
        ({"override_rates": "5, -1"}, "override_rates", "Level 2"),
        ({"valid_to": "2025-12-31"}, "valid_to", "cannot be before"),
        ({"channel_type": "bogus"}, "channel_type", "channel types"),
        ({"product_id": "999999"}, "product_id", "product of this company"),
    ):
        answer = client.post("/insurance/commissions/schedules", data={**good, **change})
        assert answer.status_code == 422, change
        assert re.search(rf'data-field="{field}">[^<]*{re.escape(message)}', text(answer)), change
    assert client.post("/insurance/commissions/schedules", data=good).status_code == 302
    with company_scope(ins.company.id):
        row = db.session.scalars(select(CommissionSchedule)).one()
        assert (row.first_year_rate, row.override_rates) == (D("30"), ["5", "2"])
    overlapping = {**good, "valid_from": "2026-06-01", "valid_to": "2026-12-31"}
    clash = client.post("/insurance/commissions/schedules", data=overlapping)
    assert clash.status_code == 422 and "may not overlap" in text(clash)
    other_type = client.post("/insurance/commissions/schedules",
                             data={**good, "channel_type": "broker"})  # fmt: skip
    assert other_type.status_code == 302  # another channel type: no clash
    edit = client.post(f"/insurance/commissions/schedules/{row.id}/edit",
                       data={**good, "first_year_rate": "32.5"})  # fmt: skip
    assert edit.status_code == 302
    with company_scope(ins.company.id):
        assert db.session.get(CommissionSchedule, row.id).first_year_rate == D("32.5")
    bad_window = client.post("/insurance/commissions/clawback", data={"days": "-1"})
    assert bad_window.status_code == 422
    assert client.post("/insurance/commissions/clawback", data={"days": "90"}).status_code == 302
    with company_scope(ins.company.id):
        assert svc.clawback_days() == 90
    gone = client.post(f"/insurance/commissions/schedules/{row.id}/delete")
    assert gone.status_code == 302
    with company_scope(ins.company.id):
        assert db.session.get(CommissionSchedule, row.id) is None


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


def test_agent_league_and_commission_by_month_hand_computed(app, db, client, ins):
    ins.schedule("30", overrides="5, 2")
    ins.policy("10000")  # 张伟 3,000; 李娜 500; 王芳 200 (PREV2)
    ins.policy("4000", agent="mid", issued_on=PREV)  # 李娜 1,200; 王芳 200 (PREV)
    end = TODAY
    old_day = date(end.year - 2, end.month, 1) + timedelta(days=40)  # 13–24 months before end
    kept = ins.policy("100", issued_on=old_day, state="in_force", hook=False)
    lost = ins.policy("100", issued_on=old_day, state="lapsed", hook=False)
    ins.policy("100", issued_on=old_day, state="cancelled", hook=False)
    assert kept and lost
    with company_scope(ins.company.id):
        for n, state in enumerate(("converted", "converted", "lost", "new")):
            db.session.add(Lead(customer_id=ins.customer, agent_id=ins.writer, state=state,
                                created_on=TODAY - timedelta(days=n)))  # fmt: skip
        db.session.commit()
    client_login(client, ins.manager, ins.company)
    league = report_rows(text(client.get("/reports/insurance_agent_league")))
    # team, premium, policies, conversion, persistency, commission
    assert league["张伟"] == ["一部", "10,000.00", "1", "50.0%", "33.3%", "3,000.00"]
    assert league["李娜"] == ["一部", "4,000.00", "1", "–", "–", "1,700.00"]
    assert league["王芳"] == ["一部", "0.00", "0", "–", "–", "400.00"]
    assert "明亚保险经纪" not in league  # nothing to show
    by_commission = text(client.get("/reports/insurance_agent_league?sort=commission"))
    order = list(report_rows(by_commission))
    assert order.index("张伟") < order.index("李娜") < order.index("王芳")
    by_month = report_rows(text(client.get("/reports/insurance_commission_by_month")))
    # first year, renewal, override, clawback, total
    assert by_month[PREV2.strftime("%Y-%m")] == ["3,000.00", "0.00", "700.00", "0.00", "3,700.00"]
    assert by_month[PREV.strftime("%Y-%m")] == ["1,200.00", "0.00", "200.00", "0.00", "1,400.00"]
    client_login(client, ins.writer_login, ins.company)
    assert client.get("/reports/insurance_agent_league").status_code in (403, 404)


# -- API ------------------------------------------------------------------------------------------


def test_api_reads_statements_and_lines_and_confirms_by_transition(app, db, client, ins):
    ins.schedule("30", overrides="5, 2")
    ins.policy("1000")
    _row, manager = tokens.issue(ins.manager, ins.company.id, "erp")
    _row, agent = tokens.issue(ins.writer_login, ins.company.id, "app")
    db.session.commit()
    as_manager = {"Authorization": f"Bearer {manager}"}
    as_agent = {"Authorization": f"Bearer {agent}"}
    every = client.get("/api/v1/insurance_settlements", headers=as_manager).get_json()
    assert every["count"] == 3
    mine = client.get("/api/v1/insurance_settlements", headers=as_agent).get_json()
    assert [(s["agent_id"], s["total"], s["state"]) for s in mine["data"]] == [
        (ins.writer, "300.00", "open")
    ]
    own_lines = client.get("/api/v1/insurance_commission_lines", headers=as_agent).get_json()
    assert [(x["kind"], x["amount"]) for x in own_lines["data"]] == [("first_year", "300.00")]
    overrides = client.get("/api/v1/insurance_commission_lines?kind=override",
                           headers=as_manager).get_json()  # fmt: skip
    assert sorted(x["amount"] for x in overrides["data"]) == ["20.00", "50.00"]
    sid = mine["data"][0]["id"]
    assert client.patch(f"/api/v1/insurance_settlements/{sid}", json={"total": "1"},
                        headers=as_manager).status_code == 405  # fmt: skip
    refused = client.post(f"/api/v1/insurance_settlements/{sid}/transitions/confirm",
                          json={}, headers=as_agent)  # fmt: skip
    assert refused.status_code == 403
    done = client.post(f"/api/v1/insurance_settlements/{sid}/transitions/confirm",
                       json={}, headers=as_manager)  # fmt: skip
    assert done.status_code == 200, done.get_json()
    assert settlement(db, ins, ins.writer, PREV2).state == "confirmed"


def test_a_company_without_insurance_gets_404(app, db, client, ins, make_user):
    ins.schedule("30")
    ins.policy("1000")
    row = settlement(db, ins, ins.writer, PREV2)
    outsider = make_user("admin", ins.plain)
    client_login(client, outsider, ins.plain)
    for url in ("/insurance/commissions", "/insurance/commissions/schedules",
                "/insurance/commissions/statements", f"/insurance/commissions/statements/{row.id}",
                "/reports/insurance_agent_league", "/reports/insurance_commission_by_month",
                "/api/v1/insurance_settlements",
                "/api/v1/insurance_commission_lines"):  # fmt: skip
        assert client.get(url).status_code == 404, url
    assert "/insurance/commissions" not in text(client.get("/dashboard/"))
    client_login(client, ins.admin, ins.company)
    assert "/insurance/commissions" in text(client.get("/dashboard/"))


# -- demo -----------------------------------------------------------------------------------------


def test_demo_writes_lines_for_issued_policies_and_settles_the_previous_month(app, db, ins):
    first = ins.policy("8000", issued_on=PREV + timedelta(days=3), hook=False)
    now = ins.policy("5000", issued_on=TODAY, hook=False)
    with company_scope(ins.company.id):
        svc.demo(ins.company, None)
        db.session.commit()
        rates = {s.product_id: s for s in db.session.scalars(select(CommissionSchedule))}
        assert set(rates) == {ins.life, ins.accident}
        for s in rates.values():
            assert D(25) <= s.first_year_rate <= D(35) and D(5) <= s.renewal_rate <= D(10)
            assert s.override_rates == ["5", "2"]
        svc.demo_finish(ins.company, None)
        db.session.commit()
        states = dict(
            db.session.execute(
                select(Settlement.month, func.min(Settlement.state)).group_by(Settlement.month)
            ).all()
        )
    assert states == {PREV: "paid", THIS: "open"}
    life = rates[ins.life].first_year_rate
    assert lines(db, ins, first)[0][5] == (D("8000") * life / 100).quantize(D("0.01"))
    assert len(lines(db, ins, now)) == 3


def test_issue_and_cancel_on_the_policy_workflow_write_and_take_back(app, db, ins):
    ins.schedule("30", overrides="5, 2")
    with company_scope(ins.company.id):
        policy = Policy(
            number="P-FLOW",
            product_id=ins.life,
            customer_id=ins.customer,
            agent_id=ins.writer,
            premium=D("1000"),
            annual_premium=D("12000"),
            frequency="monthly",
            start_on=TODAY,
            end_on=TODAY + timedelta(days=364),
            applied_on=TODAY,
            state="underwriting",
        )
        db.session.add(policy)
        db.session.commit()
        workflow.transition(policy, "issue", user=ins.manager)
        db.session.commit()
        policy_id = policy.id
    # 12,000 × 30 % = 3,600.00; × 5 % = 600.00; × 2 % = 240.00, this month
    assert [(x[0], x[5], x[6]) for x in lines(db, ins, policy_id)] == [
        (ins.writer, D("3600.00"), THIS),
        (ins.mid, D("600.00"), THIS),
        (ins.top, D("240.00"), THIS),
    ]
    with company_scope(ins.company.id):
        policy = db.session.get(Policy, policy_id)
        workflow.transition(policy, "cancel", user=ins.manager, inputs={"comment": "犹豫期退保"})
        db.session.commit()
    # cancelled the day it was issued: everything taken back in the same (open) month
    assert [x[5] for x in lines(db, ins, policy_id) if x[1] == "clawback"] == [
        D("-3600.00"), D("-600.00"), D("-240.00")
    ]  # fmt: skip
    assert settlement(db, ins, ins.writer, THIS).total == D("0.00")
