"""Property reports against a hand-computed fixture: root-cause Pareto, SLA compliance, reopen
rate, repeat complaints, complaints by category; one query whatever the groups; the reports
exist only for the company that enabled the plugin; the dashboard widgets draw.

The fixture (estate 阳光花园, building 1栋, units 101 and 102; SLA rule normal: respond in 60,
resolve in 600 working minutes):

====  ========  =====  =======  ==================================================  ======
id    category  unit   filed    steps                                               cause
====  ========  =====  =======  ==================================================  ======
t1    repairs   101    -30 d    start +1', resolve +2', follow-up 5 → closed         ageing
t2    repairs   101    -25 d    repeat of t1; start, resolve, follow-up 1 → reopen,  ageing
                                resolve again
t3    cleaning  102    -40 d    start, resolve, follow-up 4 → closed                 contr.
t4    cleaning  102    -20 d    repeat of t3; left new (both clocks breached)        –
t5    repairs   102    -15 d    start after 8 days, resolve (both clocks late)       ageing
====  ========  =====  =======  ==================================================  ======
"""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from core import followup, reports, workflow
from core.db import utcnow
from core.models import Customer, Membership, Team
from core.tenancy import company_scope
from core.testing import QueryCounter
from plugins.property.complaints import dispatch, file_complaint, resolve, seed_classifier
from plugins.property.models import Building, ComplaintClass, Estate, SlaRule, Unit

PLUGINS = ["surveys", "property"]


def _log_in(client, user, company):
    with client.session_transaction() as session:
        session["_user_id"] = str(user.id)
        session["_fresh"] = True
        session["company_id"] = company.id


@pytest.fixture
def prop(app, db, company, make_user):
    co = company(plugins=PLUGINS)
    plain = company()
    manager = make_user("manager", co)
    agent = make_user("service_agent", co)
    now = utcnow()
    with company_scope(co.id):
        seed_classifier()
        team = Team(name="工程维修部", manager_id=manager.id)
        db.session.add(team)
        db.session.flush()
        member = db.session.scalar(select(Membership).where(Membership.user_id == agent.id))
        member.team_id = team.id
        estate = Estate(code="YG", name="阳光花园")
        db.session.add(estate)
        db.session.flush()
        building = Building(estate_id=estate.id, name="1栋")
        db.session.add(building)
        db.session.flush()
        u1, u2 = (
            Unit(building_id=building.id, label="101"),
            Unit(building_id=building.id, label="102"),
        )
        resident = Customer(name="李业主", kind="resident", status="existing")
        db.session.add_all([u1, u2, resident])
        db.session.add(SlaRule(priority="normal", response_minutes=60, resolution_minutes=600))
        db.session.flush()
        cats = {
            c.code: c.id
            for c in db.session.scalars(
                select(ComplaintClass).where(ComplaintClass.level == "category")
            )
        }
        minute = timedelta(minutes=1)

        def filed(code, unit, days):
            at = now - timedelta(days=days)
            return file_complaint(
                customer_id=resident.id,
                subject=f"{code} {days}",
                unit_id=unit.id,
                category_id=cats[code],
                at=at,
            ), at

        def work(ticket, at, cause, start_after=minute):
            dispatch(ticket, manager, team_id=team.id, assignee_id=agent.id, at=at + minute / 2)
            workflow.transition(ticket, "start", user=agent, at=at + start_after)
            resolve(ticket, agent, root_cause=cause, action="修好了", at=at + start_after + minute)
            return at + start_after + minute

        t1, at = filed("repairs", u1, 30)
        done = work(t1, at, "equipment_ageing")
        followup.record_followup(t1, manager, 5, 5, "满意", at=done + minute)
        t2, at = filed("repairs", u1, 25)
        done = work(t2, at, "equipment_ageing")
        followup.record_followup(t2, manager, 1, 3, "不满意", at=done + minute)
        resolve(t2, agent, root_cause="equipment_ageing", action="再修", at=done + 2 * minute)
        t3, at = filed("cleaning", u2, 40)
        done = work(t3, at, "contractor")
        followup.record_followup(t3, manager, 4, 4, "满意", at=done + minute)
        t4, _at = filed("cleaning", u2, 20)
        t5, at = filed("repairs", u2, 15)
        work(t5, at, "equipment_ageing", start_after=timedelta(days=8))
        db.session.commit()
        states = {t.subject: t.state for t in (t1, t2, t3, t4, t5)}
    return SimpleNamespace(
        company=co,
        plain=plain,
        manager=manager,
        agent=agent,
        cats=cats,
        states=states,
        ids=(t1.id, t2.id, t3.id, t4.id, t5.id),
        u1=u1.id,
        u2=u2.id,
    )


def _run(app, prop, name, **args):
    with (
        app.test_request_context("/", headers={"Accept-Language": "en"}),
        company_scope(prop.company.id),
    ):
        report = reports.installed()[name]
        params, errors = reports.parse(report, {k: str(v) for k, v in args.items()})
        assert not errors
        return reports.run(report, params).rows


def test_fixture_states(prop):
    assert prop.states == {
        "repairs 30": "closed",
        "repairs 25": "resolved",
        "cleaning 40": "closed",
        "cleaning 20": "new",
        "repairs 15": "resolved",
    }


def test_root_cause_pareto(app, prop):
    rows = _run(app, prop, "property_root_causes")
    assert [(r["value"], r["n"]) for r in rows] == [("equipment_ageing", 3), ("contractor", 1)]
    assert [r["share"] for r in rows] == [0.75, 0.25]
    assert [r["cumulative"] for r in rows] == [0.75, 1.0]
    only_repairs = _run(app, prop, "property_root_causes", category=prop.cats["repairs"])
    assert [(r["value"], r["n"]) for r in only_repairs] == [("equipment_ageing", 3)]


def test_sla_compliance_by_category(app, prop):
    rows = {r["value"]: r for r in _run(app, prop, "property_sla")}
    repairs, cleaning = rows[prop.cats["repairs"]], rows[prop.cats["cleaning"]]
    assert (repairs["met"], repairs["met_late"], repairs["breached"]) == (4, 2, 0)
    assert repairs["compliance"] == pytest.approx(4 / 6)
    assert repairs["response_compliance"] == pytest.approx(2 / 3)
    assert repairs["resolution_compliance"] == pytest.approx(2 / 3)
    assert (cleaning["met"], cleaning["met_late"], cleaning["breached"]) == (2, 0, 2)
    assert cleaning["compliance"] == 0.5
    response = {r["value"]: r for r in _run(app, prop, "property_sla", kind="response")}
    assert response[prop.cats["repairs"]]["met"] == 2
    assert response[prop.cats["repairs"]]["met_late"] == 1


def test_reopen_rate(app, prop):
    rows = _run(app, prop, "property_reopen")
    by = {r["value"]: r for r in rows if not r.get("total")}
    repairs, cleaning = by[prop.cats["repairs"]], by[prop.cats["cleaning"]]
    assert (repairs["complaints"], repairs["resolved"], repairs["reopened"]) == (3, 3, 1)
    assert repairs["rate"] == pytest.approx(1 / 3)
    assert (cleaning["complaints"], cleaning["resolved"], cleaning["reopened"]) == (2, 1, 0)
    assert cleaning["rate"] == 0
    total = rows[-1]
    assert total["total"] and (total["complaints"], total["resolved"], total["reopened"]) == (
        5,
        4,
        1,
    )
    assert total["rate"] == 0.25


def test_repeat_complaints(app, prop):
    by_category = {r["value"]: r for r in _run(app, prop, "property_repeats", view="category")}
    assert (
        by_category[prop.cats["repairs"]]["repeats"],
        by_category[prop.cats["repairs"]]["complaints"],
    ) == (1, 3)
    assert by_category[prop.cats["cleaning"]]["share"] == 0.5
    estates = _run(app, prop, "property_repeats", view="estate")
    assert [(r["label"], r["complaints"], r["repeats"]) for r in estates] == [("阳光花园", 5, 2)]
    units = _run(app, prop, "property_repeats", view="unit")
    assert sorted((r["value"], r["repeats"], r["complaints"]) for r in units) == sorted(
        [(prop.u1, 1, 2), (prop.u2, 1, 3)]
    )


def test_complaints_by_category_and_month(app, prop):
    rows = {r["value"]: r for r in _run(app, prop, "property_complaints")}
    assert (rows[prop.cats["repairs"]]["done"], rows[prop.cats["repairs"]]["total"]) == (3, 3)
    assert (rows[prop.cats["cleaning"]]["open"], rows[prop.cats["cleaning"]]["total"]) == (1, 2)
    months = _run(app, prop, "property_complaints", by="month")
    assert sum(r["total"] for r in months) == 5
    times = _run(app, prop, "property_times")
    assert sum(r["response"] for r in times) == 4 and sum(r["resolution"] for r in times) == 4


def test_one_query_whatever_the_groups(app, db, prop):
    with app.test_request_context("/"), company_scope(prop.company.id):
        for name, args in (
            ("property_complaints", {"by": "building"}),
            ("property_sla", {}),
            ("property_reopen", {}),
            ("property_repeats", {"view": "unit"}),
            ("property_root_causes", {}),
        ):
            report = reports.installed()[name]
            params, _errors = reports.parse(report, args)
            stmt = report.query(params)
            with QueryCounter(db.engine) as counter:
                db.session.execute(stmt).all()
            assert counter.count == 1, name


def test_reports_only_for_the_company_with_the_plugin(app, db, client, prop, make_user):
    _log_in(client, prop.manager, prop.company)
    listing = client.get("/reports/").get_data(as_text=True)
    assert "property_root_causes" in listing
    for name in (
        "property_complaints",
        "property_sla",
        "property_reopen",
        "property_repeats",
        "property_root_causes",
        "property_times",
        "property_satisfaction",
    ):
        assert client.get(f"/reports/{name}").status_code == 200, name
    export = client.get("/reports/property_root_causes/export.csv")
    assert export.status_code == 200 and "3" in export.get_data(as_text=True)
    page = client.get("/reports/property_complaints?by=category").get_data(as_text=True)
    assert "/property/complaints?" in page and f"category={prop.cats['repairs']}" in page
    other = make_user("manager", prop.plain)
    _log_in(client, other, prop.plain)
    assert client.get("/reports/property_root_causes").status_code == 404
    assert "property_root_causes" not in client.get("/reports/").get_data(as_text=True)


def test_dashboard_widgets(app, client, prop):
    _log_in(client, prop.manager, prop.company)
    page = client.get("/dashboard/").get_data(as_text=True)
    assert "/property/complaints?state=new" in page
    assert "This widget could not be drawn" not in page and "无法显示" not in page


def test_satisfaction_by_dimension_and_trend(app, db, prop):
    from plugins.property.reports import SATISFACTION_DIMENSIONS
    from plugins.surveys import campaigns, questionnaires

    with company_scope(prop.company.id):
        q = questionnaires.create_questionnaire(
            "业主满意度调查",
            dimensions=SATISFACTION_DIMENSIONS[:2],
            sections=(
                {
                    "title": "评价",
                    "questions": [
                        {"text": "前台", "kind": "rating", "dimension": "front_desk"},
                        {"text": "保洁", "kind": "rating", "dimension": "cleaning"},
                    ],
                },
            ),
        )
        campaign = campaigns.create_campaign(q, "第一季度", audience={"kind": ["resident"]})
        assert campaigns.launch_campaign(campaign) == 1
        invitation = db.session.scalar(select(campaigns.Invitation))
        front, clean = (x.id for x in questionnaires.questions_of(q.id))
        campaigns.record_response(invitation, {front: 5, clean: 2})
        db.session.commit()
    rows = _run(app, prop, "property_satisfaction")
    assert [(r["value"], r["average"], r["csat"]) for r in rows] == [
        ("front_desk", 5.0, 1.0),
        ("cleaning", 2.0, 0.0),
    ]
    trend = _run(app, prop, "property_satisfaction", view="quarter")
    assert len(trend) == 1 and trend[0]["front_desk"] == 5.0 and trend[0]["cleaning"] == 2.0
