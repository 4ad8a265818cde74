"""The opportunity funnel (issue 6): stages seeded per company, opportunities moving through
them on the workflow engine (board and detail page), lost reasons, reopening, probability by
stage or by hand, call outcomes, the buying climate, stage settings, the weighted forecast and
the funnel report with conversion and time in stage, the API, and absence where sales is off."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from core import fields as ext
from core import reports, tokens, workflow
from core.db import utcnow
from core.models import Channel, Contact, Customer, Interaction, Membership, WorkflowHistory
from core.tenancy import company_scope, unscoped
from core.testing import QueryCounter
from plugins.sales import funnel
from plugins.sales.models import Opportunity, Stage


@pytest.fixture
def sales(app, db, company, make_user):
    """A company with sales (a manager, a rep, an admin; a customer with two contacts and a
    channel) and a company without it."""
    co = company(plugins=["sales"])
    other = company()
    manager, rep, admin = (
        make_user("manager", co),
        make_user("sales_rep", co),
        make_user("admin", co),
    )
    with company_scope(co.id):
        channel = Channel(name="华东代理", type="agent")
        db.session.add(channel)
        db.session.flush()
        customer = Customer(name="华夏商贸有限公司", owner_id=rep.id, channel_id=channel.id)
        stranger = Customer(name="远方公司", owner_id=manager.id)
        db.session.add_all([customer, stranger])
        db.session.flush()
        buyer = Contact(customer_id=customer.id, name="张采购", decision_role="buyer")
        boss = Contact(customer_id=customer.id, name="李总", decision_role="decider")
        far = Contact(customer_id=stranger.id, name="王远")
        db.session.add_all([buyer, boss, far])
        db.session.commit()
        ids = SimpleNamespace(
            customer=customer.id,
            stranger=stranger.id,
            channel=channel.id,
            buyer=buyer.id,
            boss=boss.id,
            far=far.id,
        )
    return SimpleNamespace(co=co, other=other, manager=manager, rep=rep, admin=admin, **vars(ids))


def login(client, user, company):
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)
        session["_fresh"] = True
        session["company_id"] = company.id


def make_opp(db, s, user=None, at=None, **values):
    """An opportunity of the sales company (default: for the customer, amount 100,000)."""
    values = {"name": "年度采购", "customer_id": s.customer, "amount": Decimal(100000), **values}
    with company_scope(s.co.id):
        opp = funnel.open_opportunity(user or s.rep, at=at, **values)
        db.session.commit()
        return opp.id


def take(db, s, opp_id, *steps, user=None, at=None, step_gap=None, **inputs):
    """Take workflow steps on an opportunity (at ``at``, then ``step_gap`` apart)."""
    with company_scope(s.co.id):
        opp = db.session.get(Opportunity, opp_id)
        moment = at
        for step in steps:
            workflow.transition(opp, step, user=user or s.rep, inputs=inputs, at=moment)
            if moment is not None and step_gap is not None:
                moment += step_gap
        db.session.commit()


def get(db, s, opp_id):
    with company_scope(s.co.id):
        db.session.expire_all()
        return db.session.get(Opportunity, opp_id)


def move(client, opp_id, transition, version, **extra):
    data = {"transition": transition, "version": str(version), **extra}
    return client.post(f"/sales/opportunities/{opp_id}/move", data=data)


# -- stages -------------------------------------------------------------------------------------


def test_enabling_sales_seeds_the_funnel_stages_once(app, db, sales):
    with company_scope(sales.co.id):
        keys = [s.key for s in funnel.stages()]
        assert keys == [k for k, *_rest in funnel.DEFAULT_STAGES]
        needs = db.session.scalar(select(Stage).where(Stage.key == "needs"))
        needs.label_zh = "需求挖掘"
        db.session.commit()
    app.extensions["guanxi.plugins"].enable(sales.co, "sales")  # again: idempotent
    db.session.commit()
    with company_scope(sales.co.id):
        assert db.session.scalar(select(func.count(Stage.id))) == len(funnel.DEFAULT_STAGES)
        assert funnel.stage_map()["needs"].label_zh == "需求挖掘"  # the company's edit is kept
        wf = funnel.company_workflow(sales.co.id)
        assert wf.initial == "target"
        assert {"to_needs", "win", "lose", "reopen"} <= {t.name for t in wf.transitions}
        steps = [t.name for t in funnel.moves(wf, "needs", "sales_rep")]
        assert steps == ["to_value", "to_commitment", "to_payment", "win", "lose",
                         "to_target", "to_analysis", "to_trust"]  # fmt: skip
        assert funnel.moves(wf, "needs", "viewer") == []
        assert [t.name for t in funnel.moves(wf, "lost", "manager")] == ["reopen"]
    with company_scope(sales.other.id):
        assert db.session.scalar(select(func.count(Stage.id))) == 0


def test_pages_menu_and_reports_are_absent_without_sales(app, db, client, sales):
    login(client, sales.admin, sales.co)
    assert "销售机会" in client.get("/customers/").get_data(as_text=True)
    for path in (
        "/sales/opportunities",
        "/sales/opportunities/board",
        "/sales/stages",
        "/sales/opportunities/new",
        "/reports/sales_funnel",
        "/reports/sales_forecast",
    ):
        assert client.get(path).status_code == 200, path
    opp_id = make_opp(db, sales)
    with unscoped():
        db.session.add(Membership(user_id=sales.admin.id, company_id=sales.other.id, role="admin"))
        db.session.commit()
    login(client, sales.admin, sales.other)
    assert "销售机会" not in client.get("/customers/").get_data(as_text=True)
    for path in (
        "/sales/opportunities",
        "/sales/opportunities/board",
        "/sales/stages",
        f"/sales/opportunities/{opp_id}",
        "/reports/sales_funnel",
        "/reports/sales_forecast",
    ):
        assert client.get(path).status_code == 404, path
    assert client.post(f"/sales/opportunities/{opp_id}/move", data={}).status_code == 404


# -- moving through the funnel -------------------------------------------------------------------


def test_create_then_move_through_the_stages_to_won(app, db, client, sales):
    login(client, sales.rep, sales.co)
    response = client.post(
        "/sales/opportunities/new",
        data={
            "customer_id": str(sales.customer),
            "name": "设备升级项目",
            "amount": "250000",
            "expected_close": "2026-12-15",
            "owner_id": str(sales.rep.id),
            "channel_id": str(sales.channel),
            "guide_contact_id": str(sales.buyer),
        },
    )
    assert response.status_code == 302
    opp_id = int(response.headers["Location"].rsplit("/", 1)[1])
    opp = get(db, sales, opp_id)
    assert (opp.state, opp.amount, opp.guide_contact_id) == ("target", 250000, sales.buyer)
    page = client.get(f"/sales/opportunities/{opp_id}").get_data(as_text=True)
    assert 'data-stage="target"' in page and "张采购" in page
    assert 'data-transition="to_analysis"' in page and 'data-transition="lose"' in page

    before = opp.stage_entered_at
    response = move(client, opp_id, "to_needs", opp.version, next="/sales/opportunities/board")
    assert response.status_code == 302 and response.headers["Location"].endswith("/board")
    opp = get(db, sales, opp_id)
    assert opp.state == "needs" and opp.stage_entered_at >= before and opp.closed_at is None
    board = client.get("/sales/opportunities/board").get_data(as_text=True)
    column = board[board.index('data-state="needs"') : board.index('data-state="value"')]
    assert f'data-opportunity="{opp_id}"' in column

    assert move(client, opp_id, "win", opp.version).status_code == 302
    opp = get(db, sales, opp_id)
    assert opp.state == "won" and opp.closed_at is not None
    with company_scope(sales.co.id):
        steps = db.session.scalars(
            select(WorkflowHistory.transition)
            .where(WorkflowHistory.subject_type == "sales_opportunity")
            .order_by(WorkflowHistory.id)
        ).all()
    assert steps == ["to_needs", "win"]
    page = client.get(f"/sales/opportunities/{opp_id}").get_data(as_text=True)
    assert 'class="step" data-transition="reopen"' in page
    assert 'class="step" data-transition="win"' not in page


def test_losing_needs_a_reason_then_reopening_clears_it(app, db, client, sales):
    login(client, sales.rep, sales.co)
    opp_id = make_opp(db, sales)
    version = get(db, sales, opp_id).version
    response = move(client, opp_id, "lose", version)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert re.search(r'class="error" data-field="lost_reason">[^<]+<', html)
    response = move(client, opp_id, "lose", version, lost_reason="not-a-reason")
    assert response.status_code == 422 and 'data-field="lost_reason"' in response.get_data(True)
    opp = get(db, sales, opp_id)
    assert opp.state == "target" and opp.lost_reason is None
    with company_scope(sales.co.id):
        assert db.session.scalar(select(func.count(WorkflowHistory.id))) == 0

    response = move(client, opp_id, "lose", version, lost_reason="competitor", comment="选了别家")
    assert response.status_code == 302
    opp = get(db, sales, opp_id)
    assert (opp.state, opp.lost_reason) == ("lost", "competitor") and opp.closed_at is not None
    assert "选择了竞争对手" in client.get(f"/sales/opportunities/{opp_id}").get_data(as_text=True)

    assert move(client, opp_id, "reopen", opp.version).status_code == 302
    opp = get(db, sales, opp_id)
    assert (opp.state, opp.lost_reason, opp.closed_at) == ("target", None, None)


def test_a_stale_or_impossible_step_is_refused(app, db, client, sales):
    login(client, sales.rep, sales.co)
    opp_id = make_opp(db, sales)
    version = get(db, sales, opp_id).version
    assert move(client, opp_id, "to_trust", version).status_code == 302
    response = move(client, opp_id, "to_needs", version)  # the version before the move
    assert response.status_code == 409
    assert get(db, sales, opp_id).state == "trust"
    current = get(db, sales, opp_id).version
    assert move(client, opp_id, "reopen", current).status_code == 409  # not from an open stage
    assert move(client, opp_id, "fly_away", current).status_code == 409
    login(client, sales.admin, sales.co)
    with company_scope(sales.co.id):
        member = db.session.scalar(select(Membership).where(Membership.user_id == sales.admin.id))
        member.role = "viewer"
        db.session.commit()
    assert move(client, opp_id, "to_needs", current).status_code == 403


# -- probability and forecast -------------------------------------------------------------------


def test_probability_is_the_stage_default_unless_set_by_hand(app, db, client, sales):
    login(client, sales.rep, sales.co)
    opp_id = make_opp(db, sales, amount=Decimal(200000))
    take(db, sales, opp_id, "to_needs")
    page = client.get(f"/sales/opportunities/{opp_id}").get_data(as_text=True)
    assert re.search(r'data-field="probability">35%', page)
    assert "¥70,000.00" in page  # weighted: 200,000 × 35 %

    opp = get(db, sales, opp_id)
    form = {
        "name": opp.name,
        "amount": "200000",
        "probability": "60",
        "owner_id": str(sales.rep.id),
        "version": str(opp.version),
    }
    assert client.post(f"/sales/opportunities/{opp_id}/edit", data=form).status_code == 302
    page = client.get(f"/sales/opportunities/{opp_id}").get_data(as_text=True)
    assert re.search(r'data-field="probability">60%', page) and "¥120,000.00" in page
    listing = client.get("/sales/opportunities").get_data(as_text=True)
    assert "60%" in listing and "¥120,000.00" in listing

    form.update(probability="", version=str(get(db, sales, opp_id).version))
    assert client.post(f"/sales/opportunities/{opp_id}/edit", data=form).status_code == 302
    assert get(db, sales, opp_id).probability is None
    form.update(probability="140", version=str(get(db, sales, opp_id).version))
    response = client.post(f"/sales/opportunities/{opp_id}/edit", data=form)
    assert response.status_code == 422 and 'data-field="probability"' in response.get_data(True)
    form.update(probability="", amount="-5")
    assert client.post(f"/sales/opportunities/{opp_id}/edit", data=form).status_code == 422
    form.update(amount="5", version="1")  # an old version
    assert client.post(f"/sales/opportunities/{opp_id}/edit", data=form).status_code == 409

    take(db, sales, opp_id, "win")
    with company_scope(sales.co.id):
        opp = db.session.get(Opportunity, opp_id)
        assert funnel.probability_of(opp, funnel.stage_map()["won"]) == 100


def run_report(db, company, name, **args):
    report = reports.installed()[name]
    with company_scope(company.id):
        values, errors = reports.parse(report, MultiDict(args))
        assert not errors, errors
        return reports.run(report, values)


def test_weighted_forecast_by_month_and_owner(app, db, sales):
    """Hand-computed: March 100,000 × 35 % + 200,000 × 60 % (by hand) = 155,000; April
    50,000 × 5 % = 2,500; no date 10,000 × 20 % = 2,000; won and lost ones do not count."""
    s = sales
    a = make_opp(db, s, amount=Decimal(100000), expected_close=date(2026, 3, 15))
    b = make_opp(
        db,
        s,
        amount=Decimal(200000),
        probability=60,
        expected_close=date(2026, 3, 31),
        owner_id=s.manager.id,
    )
    make_opp(db, s, amount=Decimal(50000), expected_close=date(2026, 4, 1))
    d = make_opp(db, s, amount=Decimal(10000))
    won = make_opp(db, s, amount=Decimal(300000), expected_close=date(2026, 3, 2))
    lost = make_opp(db, s, amount=Decimal(70000), expected_close=date(2026, 3, 3))
    take(db, s, a, "to_needs")
    take(db, s, b, "to_value")
    take(db, s, d, "to_trust")
    take(db, s, won, "win")
    take(db, s, lost, "lose", lost_reason="price")
    make_opp(db, s, amount=Decimal(1))  # 1 × 5 %, no date
    result = run_report(db, s.co, "sales_forecast", view="month")
    rows = {r["value"]: r for r in result.rows}
    assert rows["2026-03"]["weighted"] == Decimal("155000.00")
    assert rows["2026-03"]["pipeline"] == Decimal("300000.00")
    assert rows["2026-03"]["opportunities"] == 2
    assert rows["2026-04"]["weighted"] == Decimal("2500.00")
    assert rows[""]["weighted"] == Decimal("2000.05")  # 10,000 × 20 % + 1 × 5 %
    assert [r["value"] for r in result.rows] == ["2026-03", "2026-04", ""]

    ranged = run_report(
        db, s.co, "sales_forecast", view="month", start="2026-02-01", end="2026-04-30"
    )
    assert [(r["value"], r["weighted"]) for r in ranged.rows] == [
        ("2026-02", Decimal("0.00")),
        ("2026-03", Decimal("155000.00")),
        ("2026-04", Decimal("2500.00")),
    ]
    march = ranged.link(ranged.rows[1])
    assert "close_from=2026-03-01" in march and "close_to=2026-03-31" in march

    by_owner = run_report(db, s.co, "sales_forecast", view="owner")
    owners = {r["value"]: r["weighted"] for r in by_owner.rows}
    assert owners == {s.manager.id: Decimal("120000.00"), s.rep.id: Decimal("39500.05")}


# -- funnel report --------------------------------------------------------------------------------


@pytest.fixture
def history(db, sales):
    """Four opportunities created ten days ago: one goes target → analysis (day 2) → trust (day
    5) → won (day 6); one target → analysis (day 4) → lost (day 5); one stays in target; one
    skips to trust (day 1). Plus one in the company without... (another sales company)."""
    s, t0 = sales, utcnow() - timedelta(days=10)
    day = timedelta(days=1)
    one = make_opp(db, s, at=t0, amount=Decimal(1000))
    two = make_opp(db, s, at=t0, amount=Decimal(2000))
    three = make_opp(db, s, at=t0, amount=Decimal(3000))
    four = make_opp(db, s, at=t0, amount=Decimal(4000))
    take(db, s, one, "to_analysis", at=t0 + 2 * day)
    take(db, s, one, "to_trust", at=t0 + 5 * day)
    take(db, s, one, "win", at=t0 + 6 * day)
    take(db, s, two, "to_analysis", at=t0 + 4 * day)
    take(db, s, two, "lose", at=t0 + 5 * day, lost_reason="no_budget")
    take(db, s, four, "to_trust", at=t0 + day)
    return SimpleNamespace(one=one, two=two, three=three, four=four)


def test_funnel_report_counts_conversion_and_days_in_stage(
    app, db, client, company, make_user, sales, history
):
    elsewhere = company(plugins=["sales"])
    far = SimpleNamespace(co=elsewhere, rep=make_user("sales_rep", elsewhere))
    with company_scope(elsewhere.id):
        c = Customer(name="别家客户")
        db.session.add(c)
        db.session.commit()
        far.customer = c.id
    take(db, far, make_opp(db, far), "win", user=far.rep)

    result = run_report(db, sales.co, "sales_funnel")
    rows = {r["value"]: r for r in result.rows}
    assert [r["value"] for r in result.rows] == [
        "target",
        "analysis",
        "trust",
        "needs",
        "value",
        "commitment",
        "payment",
        "won",
    ]
    reached = [r["reached"] for r in result.rows]
    assert reached == [4, 3, 2, 1, 1, 1, 1, 1]
    assert rows["target"]["conversion"] == pytest.approx(3 / 4)
    assert rows["analysis"]["conversion"] == pytest.approx(2 / 3)
    assert rows["trust"]["conversion"] == pytest.approx(1 / 2)
    assert rows["payment"]["conversion"] == 1 and rows["won"]["conversion"] is None
    assert (rows["target"]["now"], rows["trust"]["now"], rows["won"]["now"]) == (1, 1, 1)
    assert rows["target"]["amount"] == Decimal("3000.00")
    assert rows["trust"]["amount"] == Decimal("4000.00")
    assert rows["target"]["days"] == pytest.approx(round(7 / 3, 1))  # stays of 2, 4 and 1 days
    assert rows["analysis"]["days"] == pytest.approx(2.0)  # 3 and 1
    assert rows["trust"]["days"] == pytest.approx(1.0)
    assert rows["needs"]["days"] is None
    assert rows["analysis"]["lost"] == 1 and rows["target"]["lost"] == 0
    assert result.link(rows["analysis"]) == "/sales/opportunities?stage=analysis"

    login(client, sales.manager, sales.co)
    page = client.get("/reports/sales_funnel").get_data(as_text=True)
    assert "/sales/opportunities?stage=analysis" in page and "75.0%" in page
    listing = client.get("/sales/opportunities?stage=analysis").get_data(as_text=True)
    assert listing.count("data-opportunity=") == 0  # the one that reached it moved on
    listing = client.get("/sales/opportunities?stage=won").get_data(as_text=True)
    assert f'data-opportunity="{history.one}"' in listing

    mine = run_report(db, sales.co, "sales_funnel", owner=str(sales.manager.id))
    assert mine.rows == []  # nothing owned by the manager


def test_funnel_report_query_count_does_not_grow_with_stages(app, db, client, sales, history):
    login(client, sales.admin, sales.co)
    client.get("/reports/sales_funnel")
    with QueryCounter(db.engine) as few:
        client.get("/reports/sales_funnel")
    for n in range(5):
        client.post("/sales/stages/new", data={"label": f"Extra {n}", "probability": "50"})
    client.get("/reports/sales_funnel")
    with QueryCounter(db.engine) as many:
        assert client.get("/reports/sales_funnel").status_code == 200
    assert many.count == few.count


# -- calls, buying climate -------------------------------------------------------------------------


def test_call_outcomes_and_advance_needs_a_next_action(app, db, client, sales):
    login(client, sales.rep, sales.co)
    opp_id = make_opp(db, sales)
    url = f"/sales/opportunities/{opp_id}/calls"
    response = client.post(url, data={"outcome": "advance", "result": "客户很感兴趣"})
    assert response.status_code == 422
    assert re.search(r'data-field="next_step">[^<]+<', response.get_data(as_text=True))
    assert client.post(url, data={"outcome": "maybe"}).status_code == 422
    assert client.post(url, data={}).status_code == 422
    with company_scope(sales.co.id):
        assert db.session.scalar(select(func.count(Interaction.id))) == 0

    response = client.post(
        url,
        data={
            "outcome": "advance",
            "result": "同意安排演示",
            "next_step": "下周二产品演示",
            "next_step_due": "2030-01-08T10:00",
            "contact_id": str(sales.boss),
        },
    )
    assert response.status_code == 302
    assert client.post(url, data={"outcome": "continuation", "result": "再考虑"}).status_code == 302
    with company_scope(sales.co.id):
        calls = db.session.scalars(select(Interaction).order_by(Interaction.id)).all()
        assert [(c.subject_type, c.subject_id, c.kind) for c in calls] == [
            ("sales_opportunity", opp_id, "call")
        ] * 2
        assert calls[0].next_step == "下周二产品演示" and calls[0].contact_id == sales.boss
        field = funnel.outcome_field()
        values = ext.load([field], [c.id for c in calls])
        assert [values[c.id][funnel.OUTCOME_FIELD] for c in calls] == ["advance", "continuation"]
    page = client.get(f"/sales/opportunities/{opp_id}").get_data(as_text=True)
    assert 'data-outcome="advance"' in page and 'data-outcome="continuation"' in page
    assert "下周二产品演示" in page and "李总" in page
    customer = client.get(f"/customers/{sales.customer}").get_data(as_text=True)
    assert "同意安排演示" in customer  # on the customer's timeline too


def test_buying_climate_and_inside_guide(app, db, client, sales):
    login(client, sales.rep, sales.co)
    opp_id = make_opp(db, sales, guide_contact_id=None)
    url = f"/sales/opportunities/{opp_id}/contacts"
    assert (
        client.post(url, data={"contact_id": str(sales.boss), "role": "decider"}).status_code == 302
    )
    assert (
        client.post(url, data={"contact_id": str(sales.buyer), "role": "purchaser"}).status_code
        == 302
    )
    assert (
        client.post(url, data={"contact_id": str(sales.buyer), "role": "user"}).status_code == 302
    )
    response = client.post(url, data={"contact_id": str(sales.far), "role": "user"})
    assert response.status_code == 422 and 'data-field="contact_id"' in response.get_data(True)
    assert client.post(url, data={"contact_id": str(sales.boss), "role": "king"}).status_code == 422
    opp = get(db, sales, opp_id)
    assert sorted((r.contact_id, r.role) for r in opp.roles) == sorted(
        [(sales.boss, "decider"), (sales.buyer, "user")]
    )
    page = client.get(f"/sales/opportunities/{opp_id}").get_data(as_text=True)
    assert 'data-role="decider"' in page and "决策人" in page

    form = {
        "name": opp.name,
        "amount": "100000",
        "guide_contact_id": str(sales.far),
        "version": str(opp.version),
    }
    response = client.post(f"/sales/opportunities/{opp_id}/edit", data=form)
    assert response.status_code == 422  # a contact of another customer
    form["guide_contact_id"] = str(sales.boss)
    assert client.post(f"/sales/opportunities/{opp_id}/edit", data=form).status_code == 302
    page = client.get(f"/sales/opportunities/{opp_id}").get_data(as_text=True)
    assert re.search(r'data-field="guide">李总<', page)

    row = next(r for r in get(db, sales, opp_id).roles if r.role == "decider")
    assert client.post(f"{url}/{row.id}/delete").status_code == 302
    assert [r.role for r in get(db, sales, opp_id).roles] == ["user"]


# -- stage settings -------------------------------------------------------------------------------


def stages_form(db, s, **changes):
    """The stage settings form as posted, with ``changes`` by key: {field: value}."""
    data = {}
    with company_scope(s.co.id):
        rows = sorted(
            db.session.scalars(select(Stage)),
            key=lambda r: (funnel.OUTCOME_ORDER[r.outcome], r.sequence),
        )
    for i, stage in enumerate(rows):
        values = {
            "id": stage.id,
            "label": stage.label,
            "label_zh": stage.label_zh,
            "probability": stage.probability,
            "sequence": stage.sequence,
            "active": "y" if stage.active else None,
        }
        values.update(changes.get(stage.key, {}))
        for name, value in values.items():
            if value is not None:
                data[f"rows-{i}-{name}"] = str(value)
    return data


def test_admins_edit_and_add_stages_and_the_workflow_follows(app, db, client, sales):
    opp_id = make_opp(db, sales, amount=Decimal(100000))
    take(db, sales, opp_id, "to_needs")
    login(client, sales.rep, sales.co)
    assert client.get("/sales/stages").status_code == 403
    login(client, sales.manager, sales.co)
    assert client.get("/sales/stages").status_code == 200
    assert client.post("/sales/stages", data=stages_form(db, sales)).status_code == 403

    login(client, sales.admin, sales.co)
    data = stages_form(
        db, sales, needs={"probability": 40, "label_zh": "需求挖掘"}, trust={"active": None}
    )
    assert client.post("/sales/stages", data=data).status_code == 302
    page = client.get(f"/sales/opportunities/{opp_id}").get_data(as_text=True)
    assert re.search(r'data-field="probability">40%', page) and "需求挖掘" in page
    assert 'data-transition="to_trust"' not in page and 'data-transition="to_value"' in page
    board = client.get("/sales/opportunities/board").get_data(as_text=True)
    assert 'data-state="trust"' not in board  # inactive and empty

    bad = stages_form(db, sales, needs={"probability": 120})
    response = client.post("/sales/stages", data=bad)
    assert response.status_code == 422 and "rows-" in response.get_data(True)
    all_off = stages_form(db, sales, **{k: {"active": None} for k, *_r in funnel.DEFAULT_STAGES})
    assert client.post("/sales/stages", data=all_off).status_code == 422

    response = client.post(
        "/sales/stages/new",
        data={"label": "Site visit", "label_zh": "现场考察", "probability": "45", "sequence": "45"},
    )
    assert response.status_code == 302
    assert (
        client.post("/sales/stages/new", data={"label": "再谈", "probability": "30"}).status_code
        == 302
    )
    response = client.post(
        "/sales/stages/new", data={"label": "X", "key": "needs", "probability": "1"}
    )
    assert response.status_code == 422 and 'data-field="key"' in response.get_data(True)
    with company_scope(sales.co.id):
        keys = [s.key for s in funnel.stages()]
        assert keys[keys.index("needs") + 1] == "site_visit"
        assert keys[keys.index("payment") + 1] == "stage_2"  # no ASCII label: a made-up key
        assert keys[-2:] == ["won", "lost"]
    page = client.get(f"/sales/opportunities/{opp_id}").get_data(as_text=True)
    assert 'data-transition="to_site_visit"' in page
    assert move(client, opp_id, "to_site_visit", get(db, sales, opp_id).version).status_code == 302
    assert get(db, sales, opp_id).state == "site_visit"


# -- list, export, API, customer page, record rules ------------------------------------------------


def test_list_filters_pages_and_export(app, db, client, sales):
    rep, manager = sales.rep.id, sales.manager.id  # (the export empties the session)
    co = SimpleNamespace(id=sales.co.id)
    ids = [make_opp(db, sales, name=f"机会{n}", amount=Decimal(1000 * (n + 1))) for n in range(5)]
    take(db, sales, ids[0], "win")
    take(db, sales, ids[1], "to_value")
    login(client, sales.manager, sales.co)

    def shown(query=""):
        html = client.get(f"/sales/opportunities{query}").get_data(as_text=True)
        return [int(x) for x in re.findall(r'data-opportunity="(\d+)"', html)]

    assert shown() == ids[::-1]
    assert shown("?stage=value") == [ids[1]]
    assert shown("?status=won") == [ids[0]]
    assert shown(f"?owner={manager}") == []
    assert shown("?sort=amount") == ids[::-1]
    assert shown("?q=机会3") == [ids[3]]
    assert client.get("/sales/opportunities?stage=nowhere").status_code == 400
    assert client.get("/sales/opportunities?after=garbage").status_code == 400
    assert client.get("/sales/opportunities?close_from=2026-02-31").status_code == 400

    app.config["LIST_PAGE_SIZE"] = 2
    html = client.get("/sales/opportunities?sort=amount").get_data(as_text=True)
    assert [int(x) for x in re.findall(r'data-opportunity="(\d+)"', html)] == [ids[4], ids[3]]
    cursor = re.search(r'after=([^"&]+)', html).group(1)
    assert shown(f"?sort=amount&after={cursor}") == [ids[2], ids[1]]
    with QueryCounter(db.engine) as small:
        client.get("/sales/opportunities")
    app.config["LIST_PAGE_SIZE"] = 5
    with QueryCounter(db.engine) as large:
        client.get("/sales/opportunities")
    assert large.count == small.count

    response = client.get("/sales/opportunities/export.csv?status=open")
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][:4] == ["id", "name", "customer", "stage"] and len(rows) == 5
    assert {r[3] for r in rows[1:]} == {"目标客户", "呈现价值"}
    assert client.get("/sales/opportunities/export.xlsx").status_code == 200
    login(client, SimpleNamespace(id=rep), co)
    assert client.get("/sales/opportunities/export.csv").status_code == 403


def test_a_rep_sees_only_opportunities_of_customers_they_see(app, db, client, sales, make_user):
    mine = make_opp(db, sales)
    theirs = make_opp(db, sales, customer_id=sales.stranger, user=sales.manager)
    other_rep = make_user("sales_rep", sales.co)
    login(client, other_rep, sales.co)
    html = client.get("/sales/opportunities").get_data(as_text=True)
    assert f'data-opportunity="{mine}"' not in html and f'data-opportunity="{theirs}"' not in html
    assert client.get(f"/sales/opportunities/{mine}").status_code == 404
    report = client.get("/reports/sales_funnel?owner=").get_data(as_text=True)
    assert "/sales/opportunities?stage=target" not in report  # counts nothing it cannot see
    login(client, sales.rep, sales.co)
    html = client.get("/sales/opportunities").get_data(as_text=True)
    assert f'data-opportunity="{mine}"' in html and f'data-opportunity="{theirs}"' not in html
    report = client.get("/reports/sales_funnel").get_data(as_text=True)
    table = report[report.index("<table") :]
    target = table[: table.index("stage=analysis")]
    assert re.search(r"stage=target\">1<", target) and not re.search(r">2<", target)


def test_customer_page_panel_and_timeline(app, db, client, sales):
    open_id = make_opp(db, sales, name="开放中的机会")
    won_id = make_opp(db, sales, name="已赢的机会")
    lost_id = make_opp(db, sales, name="已输的机会")
    take(db, sales, won_id, "win")
    take(db, sales, lost_id, "lose", lost_reason="timing")
    login(client, sales.rep, sales.co)
    html = client.get(f"/customers/{sales.customer}").get_data(as_text=True)
    panel = html[html.index("customer-opportunities") :]
    panel = panel[: panel.index("</ul>")]
    assert f'data-opportunity="{open_id}"' in panel and "已赢的机会" not in panel
    assert "Won: 已赢的机会" in html or "赢单" in html
    assert "时机不对" in html  # the lost entry says why
    assert f"/sales/opportunities/new?customer_id={sales.customer}" in html


def test_api_resource_with_transitions(app, db, client, sales):
    _row, secret = tokens.issue(sales.rep, sales.co.id, "test")
    headers = {"Authorization": f"Bearer {secret}"}
    body = {"name": "API 机会", "customer_id": sales.customer, "amount": "5000.50"}
    response = client.post("/api/v1/sales_opportunities", json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    opp = response.get_json()
    assert opp["state"] == "target" and opp["contacts"] == []
    bad = client.post(
        "/api/v1/sales_opportunities",
        headers=headers,
        json={**body, "probability": 101, "guide_contact_id": sales.far},
    )
    assert bad.status_code == 422 and "probability" in bad.get_json()["error"]["fields"]
    url = f"/api/v1/sales_opportunities/{opp['id']}/transitions"
    names = {t["name"] for t in client.get(url, headers=headers).get_json()["transitions"]}
    assert {"to_needs", "win", "lose"} <= names
    response = client.post(f"{url}/lose", json={}, headers=headers)
    assert response.status_code == 422  # the reason is required (see docs/sales-funnel.md)
    assert "lost_reason" in response.get_json()["error"]["fields"]
    response = client.post(f"{url}/lose", json={"lost_reason": "nonsense"}, headers=headers)
    assert response.status_code == 422 and response.get_json()["error"]["code"] == "guard_refused"
    assert "lost_reason" in response.get_json()["error"]["fields"]  # the guard names the field
    response = client.post(f"{url}/lose", json={"lost_reason": "price"}, headers=headers)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["state"] == "lost"
    assert get(db, sales, opp["id"]).lost_reason == "price"
    assert client.post(f"{url}/reopen", json={}, headers=headers).status_code == 200
    spec = client.get("/api/v1/openapi.json", headers=headers).get_json()
    body = spec["paths"]["/api/v1/sales_opportunities/{id}/transitions/{transition}"]["post"]
    schema = body["requestBody"]["content"]["application/json"]["schema"]
    assert "lost_reason" in schema["properties"]
    # the buying climate the responses carry is documented (schemathesis checks the rest)
    record = spec["components"]["schemas"]
    assert any(
        "contacts" in s.get("properties", {}) for n, s in record.items() if "Opportunit" in n
    )
    response = client.post(f"{url}/to_needs", json={"comment": "需求明确"}, headers=headers)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["state"] == "needs"
    assert client.post(f"{url}/win", json={}, headers=headers).get_json()["state"] == "won"
    assert get(db, sales, opp["id"]).closed_at is not None
    listed = client.get("/api/v1/sales_opportunities?state=won", headers=headers).get_json()
    assert [o["id"] for o in listed["data"]] == [opp["id"]]


def test_demo_spreads_opportunities_over_the_funnel(app, db, sales, make_user):
    from faker import Faker

    make_user("sales_rep", sales.co)
    with company_scope(sales.co.id):
        for n in range(6):
            db.session.add(Customer(name=f"演示客户{n}", owner_id=sales.rep.id))
        db.session.commit()
        fake = Faker("zh_CN")
        fake.seed_instance(1)
        funnel.demo(sales.co, fake)
        db.session.commit()
        states = db.session.scalars(select(Opportunity.state)).all()
        assert len(states) == 30
        assert {"won", "lost"} <= set(states) and len(
            {s for s in states if s not in ("won", "lost")}
        ) >= 3
        lost = db.session.scalars(select(Opportunity).where(Opportunity.state == "lost")).all()
        assert all(o.lost_reason and o.closed_at for o in lost)
        assert db.session.scalar(select(func.count(WorkflowHistory.id))) > 30
        assert (
            db.session.scalar(
                select(func.count(Interaction.id)).where(
                    Interaction.subject_type == "sales_opportunity"
                )
            )
            > 5
        )
    result = run_report(db, sales.co, "sales_funnel")
    assert result.rows and result.rows[0]["reached"] == 30
    assert any(r["days"] for r in result.rows)


def test_dashboard_shows_the_open_pipeline_a_rep_their_own(app, db, client, sales):
    s = sales
    mine = make_opp(db, s, name="新院区项目", amount=Decimal(100000), owner_id=s.rep.id)
    make_opp(db, s, name="别人的项目", amount=Decimal(50000), owner_id=s.manager.id)
    take(db, s, mine, "to_analysis")
    login(client, s.rep, s.co)
    page = client.get("/dashboard/").get_data(as_text=True)
    assert "销售漏斗" in page or "Sales funnel" in page
    assert "¥100,000" in page and "¥150,000" not in page  # a rep sees their own pipeline
    login(client, s.manager, s.co)
    page = client.get("/dashboard/").get_data(as_text=True)
    assert "¥150,000" in page  # the manager: everyone's
