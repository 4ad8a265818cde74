"""Sales targets (issue 6): periods, attainment per rep and team, the attack/defend scorecard,
the dashboard box, who may set targets, and the pages' absence where sales is off."""

from __future__ import annotations

import itertools
from datetime import UTC, date
from decimal import Decimal

import pytest
from sqlalchemy import select

from core.models import Customer, Interaction, Membership, Team
from core.tenancy import company_scope, unscoped
from plugins.sales import targets
from plugins.sales.models import Order, Target
from plugins.sales.targets import Period

NUMBERS = itertools.count(1)


def test_periods_parse_shift_and_refuse():
    nov = Period.parse("2026-11")
    assert (nov.start, nov.end) == (date(2026, 11, 1), date(2026, 12, 1))
    q4 = Period.parse("2026-Q4")
    assert (q4.start, q4.end) == (date(2026, 10, 1), date(2027, 1, 1))
    assert Period.parse("2026-12").end == date(2027, 1, 1)
    assert nov.shifted(2).key == "2027-01"
    assert q4.shifted(-1).key == "2026-Q3"
    assert q4.year_before().key == "2025-Q4"
    assert nov.year_before().key == "2025-11"
    assert Period.quarter_of(date(2026, 2, 3)).key == "2026-Q1"
    for bad in ("2026-13", "2026-Q5", "26-11", "", "2026-1"):
        with pytest.raises(ValueError):
            Period.parse(bad)


def _order(customer, owner, day, amount, cost=0, state="open"):
    return Order(
        number=f"T-{next(NUMBERS)}", customer_id=customer.id, owner_id=owner.id, ordered_on=day,
        amount=Decimal(amount), cost=Decimal(cost), state=state,
    )  # fmt: skip


@pytest.fixture
def sales(db, company, make_user):
    """A company with sales: rep A (team East) sells 2 orders to a new customer and 1 to an old
    one in 2026-11, rep B sells 1 cancelled order; last year's November made 100,000."""
    co = company(plugins=["sales"])
    rep_a, rep_b = make_user("sales_rep", co), make_user("sales_rep", co)
    manager = make_user("manager", co)
    with company_scope(co.id):
        east = Team(name="华东团队")
        db.session.add(east)
        db.session.flush()
        with unscoped():
            db.session.execute(
                Membership.__table__.update()
                .where(Membership.user_id.in_([rep_a.id, manager.id]))
                .values(team_id=east.id)
            )
        old = Customer(name="老客户", status="existing")
        new = Customer(name="新客户", status="existing")
        db.session.add_all([old, new])
        db.session.flush()
        db.session.add_all([
            _order(old, rep_a, date(2025, 11, 10), 100000, 60000),
            _order(old, rep_a, date(2026, 10, 5), 20000, 10000),
            _order(new, rep_a, date(2026, 11, 3), 30000, 18000),
            _order(new, rep_a, date(2026, 11, 20), 50000, 30000),
            _order(old, rep_a, date(2026, 11, 21), 40000, 30000),
            _order(new, rep_b, date(2026, 11, 22), 99999, 0, state="cancelled"),
        ])  # fmt: skip
        db.session.add(Target(user_id=rep_a.id, period="2026-11", amount=Decimal(240000),
                              new_customers=2))  # fmt: skip
        db.session.add(Target(team_id=east.id, period="2026-11", amount=Decimal(100000)))
        db.session.add(
            Interaction(customer_id=old.id, kind="follow_up", customer_score=4,
                        occurred_at=targets_moment(2026, 11, 25))
        )  # fmt: skip
        db.session.add(
            Interaction(customer_id=new.id, kind="follow_up", customer_score=5,
                        occurred_at=targets_moment(2026, 11, 26))
        )  # fmt: skip
        db.session.commit()
    return co, rep_a, rep_b, manager, east


def targets_moment(year, month, day):
    from datetime import datetime

    return datetime(year, month, day, 4, tzinfo=UTC)


def test_attainment_counts_orders_of_the_period_by_owner_and_team(db, sales):
    co, rep_a, rep_b, manager, east = sales
    with company_scope(co.id):
        reps, teams = targets.attainment(Period.parse("2026-11"))
    a = next(line for line in reps if line.id == rep_a.id)
    assert a.revenue == Decimal(120000)  # 30,000 + 50,000 + 40,000; not October, not cancelled
    assert a.new_customers == 1  # 新客户's first order is in November; 老客户 bought before
    assert a.attainment == pytest.approx(0.5)
    assert a.new_attainment == pytest.approx(0.5)
    b = next(line for line in reps if line.id == rep_b.id)
    assert (b.revenue, b.target_amount, b.attainment) == (0, None, None)
    assert [t.name for t in teams] == ["华东团队"]
    assert teams[0].revenue == Decimal(120000) and teams[0].attainment == pytest.approx(1.2)


def test_scorecard_attack_and_defend(db, sales):
    co = sales[0]
    with company_scope(co.id):
        kpis = {k.name: k for k in targets.scorecard(Period.parse("2026-11"))}
    assert kpis["growth"].side == "attack"
    assert kpis["growth"].value == pytest.approx(0.2)  # 120,000 against 100,000
    assert kpis["new_customers"].value == 1
    # October's only buyer (老客户) bought again in November.
    assert kpis["retention"].value == pytest.approx(1.0)
    assert kpis["retention"].detail == "1 / 1"
    assert kpis["satisfaction"].value == pytest.approx(4.5)
    assert kpis["share"].value is None  # nobody has a share of wallet recorded
    assert kpis["margin"].value == pytest.approx((120000 - 78000) / 120000)
    with company_scope(co.id):
        quiet = {k.name: k for k in targets.scorecard(Period.parse("2024-03"))}
    assert quiet["growth"].value is None and quiet["retention"].value is None


def test_manager_sets_targets_and_bad_values_are_refused(db, client, sales, login_as):
    co, rep_a, rep_b, manager, east = sales
    with client.session_transaction() as session:
        session["_user_id"] = str(manager.id)
        session["_fresh"] = True
        session["company_id"] = co.id
    page = client.get("/sales/targets?period=2026-11")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f'name="user-{rep_a.id}-amount"' in html and 'value="240000"' in html
    bad = client.post(
        "/sales/targets?period=2026-11",
        data={f"user-{rep_b.id}-amount": "-5", f"user-{rep_b.id}-new": "x"},
    )
    assert bad.status_code == 422
    text = bad.get_data(as_text=True)
    assert f'data-field="user-{rep_b.id}-amount"' in text
    assert f'data-field="user-{rep_b.id}-new"' in text
    with company_scope(co.id):
        assert db.session.scalar(select(Target).where(Target.user_id == rep_b.id)) is None
    ok = client.post(
        "/sales/targets?period=2026-11",
        data={
            f"user-{rep_b.id}-amount": "80,000",
            f"user-{rep_b.id}-new": "3",
            f"user-{rep_a.id}-amount": "",  # emptied: rep A's target goes
            f"team-{east.id}-amount": "100000",
        },
    )
    assert ok.status_code == 302
    with company_scope(co.id):
        rows = {(t.user_id, t.team_id): t for t in db.session.scalars(select(Target))}
    assert rows[(rep_b.id, None)].amount == Decimal(80000)
    assert rows[(rep_b.id, None)].new_customers == 3
    assert (rep_a.id, None) not in rows
    assert rows[(None, east.id)].amount == Decimal(100000)
    assert client.get("/sales/targets?period=2026-13").status_code == 400


def _login(client, user, co):
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)
        session["_fresh"] = True
        session["company_id"] = co.id


def test_a_rep_sees_only_their_line_and_cannot_set_targets(db, client, sales):
    co, rep_a, rep_b, manager, east = sales
    _login(client, rep_b, co)
    html = client.get("/sales/targets?period=2026-11").get_data(as_text=True)
    assert f'data-line="user-{rep_b.id}"' in html
    assert f'data-line="user-{rep_a.id}"' not in html
    assert 'name="user-' not in html  # no inputs
    assert client.post("/sales/targets?period=2026-11", data={}).status_code == 403


def test_scorecard_page_and_dashboard_box(db, client, sales):
    co, rep_a, rep_b, manager, east = sales
    _login(client, manager, co)
    html = client.get("/sales/scorecard?period=2026-11").get_data(as_text=True)
    assert 'data-side="attack"' in html and 'data-kpi="retention"' in html
    assert "20%" in html  # growth
    dashboard = client.get("/dashboard/").get_data(as_text=True)
    assert "本月销售目标" in dashboard or "Sales targets this month" in dashboard


def test_without_sales_there_are_no_target_pages(db, client, company, login_as):
    login_as("manager", company())
    assert client.get("/sales/targets").status_code == 404
    assert client.get("/sales/scorecard").status_code == 404
    html = client.get("/dashboard/").get_data(as_text=True)
    assert "本月销售目标" not in html and "Sales targets this month" not in html


def test_demo_targets_are_near_last_years_sales(db, sales):
    co = sales[0]
    with company_scope(co.id):
        targets.demo(co, None)
        this_month = targets.Period.month_of(targets.today())
        rows = db.session.scalars(select(Target).where(Target.period == this_month.key)).all()
    assert rows and all(t.amount >= 50000 for t in rows)
