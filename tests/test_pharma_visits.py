"""Pharma visit control (DOMAIN §5): counting visits (minimum duration), quotas per tier and month
on the clock engine, the month-end reminder, compliance, the rules page, supervision comments,
the pages, and a constant statement count -- expectations computed by hand on small sets."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from core import interactions
from core.models import Comment, Customer, Interaction, Notification, Obligation
from core.tenancy import company_scope
from core.testing import QueryCounter
from plugins.pharma import visits
from plugins.pharma.models import DoctorTier, VisitQuota

NOV = date(2026, 11, 1)
#: 2026-11-25 12:00 in Shanghai.
NOV_25 = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)
NUMBERS = itertools.count(1)


def doctor(db, owner, tier, name=None):
    """A doctor owned by ``owner`` with tier ``tier`` (``None``: no tier row)."""
    row = Customer(name=name or f"医生{next(NUMBERS)}", kind="doctor", owner_id=owner.id)
    db.session.add(row)
    db.session.flush()
    if tier is not None:
        db.session.add(DoctorTier(customer_id=row.id, tier=tier))
        db.session.flush()
    return row


def visit(db, doc, user, at, minutes, kind="visit"):
    """A visit written directly (as an import would), not through the hook."""
    row = Interaction(
        customer_id=doc.id, user_id=user.id, kind=kind, occurred_at=at, duration_minutes=minutes
    )
    db.session.add(row)
    db.session.flush()
    return row


def clock_of(db, doc):
    return db.session.scalars(
        select(Obligation)
        .where(
            Obligation.kind == visits.CLOCK,
            Obligation.subject_type == "customer",
            Obligation.subject_id == doc.id,
        )
        .execution_options(populate_existing=True)
    ).first()


@pytest.fixture
def pharma(db, company, make_user):
    co = company(plugins=["pharma"])
    users = {
        "manager": make_user("manager", co),
        "admin": make_user("admin", co),
        "rep1": make_user("sales_rep", co),
        "rep2": make_user("sales_rep", co),
        "rep3": make_user("sales_rep", co),
    }
    return co, users


# -- counting and the clock ---------------------------------------------------------------------


def test_a_short_visit_does_not_count_and_enough_visits_meet_the_quota(db, pharma):
    co, u = pharma
    now = interactions.utcnow()
    with company_scope(co.id):
        doc = doctor(db, u["rep1"], "B")  # B: 2 visits a month by default
        visits.open_month()
        assert clock_of(db, doc).met_at is None
        at = now - timedelta(minutes=5)
        short = visits.log_visit(doc, u["rep1"], occurred_at=at, duration_minutes=14)
        assert not visits.counts(short, visits.load_settings())
        visits.log_visit(doc, u["rep1"], occurred_at=at, duration_minutes=15)
        status = visits.doctor_status(doc)
        assert (status["quota"], status["counted"], status["remaining"]) == (2, 1, 1)
        assert clock_of(db, doc).met_at is None  # one short visit + one counting visit: not met
        row = visits.log_visit(
            doc, u["rep1"], occurred_at=at, duration_minutes=30, products="阿托伐他汀", samples=3
        )
        db.session.commit()
        assert clock_of(db, doc).met_at is not None  # met through guanxi_interaction_saved
        assert visits.visit_extras([row.id])[row.id]["pharma__samples"] == 3
        # Edited down below the minimum: the quota is open again.
        interactions.update(row, doc, kind="visit", occurred_at=at, duration_minutes=10)
        db.session.commit()
        assert clock_of(db, doc).met_at is None
        # A company raising the minimum turns the 15-minute visit into a short one.
        interactions.update(row, doc, kind="visit", occurred_at=at, duration_minutes=30)
        assert clock_of(db, doc).met_at is not None
        visits.save_settings({"min_minutes": 20})
        assert clock_of(db, doc).met_at is None


def test_open_month_restarts_one_row_per_doctor_and_drops_doctors_without_quota(db, pharma):
    co, u = pharma
    oct_ = datetime(2026, 10, 10, 4, 0, tzinfo=UTC)
    with company_scope(co.id):
        a = doctor(db, u["rep1"], "A")
        d = doctor(db, u["rep1"], "D")  # quota 0: no row, no clock
        none = doctor(db, u["rep1"], None)  # no tier: no quota
        visits.open_month(now=oct_)
        first = clock_of(db, a)
        assert first is not None and clock_of(db, d) is None and clock_of(db, none) is None
        assert first.started_at == datetime(2026, 9, 30, 16, 0, tzinfo=UTC)  # Oct 1, Shanghai
        # due at the end of the last working day of October (Fri 30th, 18:00 Shanghai)
        assert first.due_at == datetime(2026, 10, 30, 10, 0, tzinfo=UTC)
        first.met_at = oct_
        visits.open_month(now=NOV_25)
        again = clock_of(db, a)
        assert again.id == first.id  # one row per doctor, counted afresh
        assert again.met_at is None and again.escalation_level == 0
        assert again.started_at == datetime(2026, 10, 31, 16, 0, tzinfo=UTC)
        # The tier is the one at the month's opening; settings changes re-apply the numbers.
        db.session.execute(
            DoctorTier.__table__.update().where(DoctorTier.customer_id == a.id).values(tier="D")
        )
        visits.save_settings({"quotas": {"A": 5, "B": 2}}, now=NOV_25)
        quota = db.session.scalars(select(VisitQuota).where(VisitQuota.month == NOV)).one()
        assert (quota.tier, quota.quota) == ("A", 5)
        visits.save_settings({"quotas": {"A": 0, "B": 2}}, now=NOV_25)
        assert db.session.scalar(select(func.count(VisitQuota.id))) == 1  # October's stays
        assert clock_of(db, a) is None


# -- reminder -----------------------------------------------------------------------------------


@pytest.fixture
def november(db, pharma):
    """rep1: two doctors, quotas met; rep2: an A doctor with 3 of 4 (one short visit besides)
    and a C doctor with none; rep3: a B doctor with 1 of 2; the manager owns a met C doctor."""
    co, u = pharma
    day = datetime(2026, 11, 10, 2, 0, tzinfo=UTC)
    with company_scope(co.id):
        docs = {
            "r1_b": doctor(db, u["rep1"], "B", "赵医生"),
            "r1_c": doctor(db, u["rep1"], "C", "钱医生"),
            "r2_a": doctor(db, u["rep2"], "A", "孙医生"),
            "r2_c": doctor(db, u["rep2"], "C", "李医生"),
            "r3_b": doctor(db, u["rep3"], "B", "周医生"),
            "m_c": doctor(db, u["manager"], "C", "吴医生"),
        }
        for key, user, counting, short in (
            ("r1_b", "rep1", 2, 0),
            ("r1_c", "rep1", 1, 0),
            ("r2_a", "rep2", 3, 1),
            ("r3_b", "rep3", 1, 0),
            ("m_c", "manager", 1, 0),
        ):
            for _n in range(counting):
                visit(db, docs[key], u[user], day, 20)
            for _n in range(short):
                visit(db, docs[key], u[user], day, 5)
        visit(db, docs["r2_c"], u["rep2"], day, 60, kind="call")  # a call is not a visit
        visit(db, docs["r2_c"], u["rep2"], day - timedelta(days=30), 30)  # October's
        visits.open_month(now=NOV_25 - timedelta(days=1))
        db.session.commit()
    return co, u, docs


def test_quota_clocks_follow_the_counts(db, november):
    co, u, docs = november
    with company_scope(co.id):
        met = {k for k, d in docs.items() if clock_of(db, d).met_at is not None}
        assert met == {"r1_b", "r1_c", "m_c"}


def test_reminder_from_the_25th_notifies_exactly_the_reps_behind_once(db, november):
    co, u, docs = november

    def reminded():
        return {
            n.user_id: n.message
            for n in db.session.scalars(
                select(Notification).where(Notification.kind == visits.REMINDER_KIND)
            )
        }

    with company_scope(co.id):
        visits.remind_behind(now=NOV_25 - timedelta(days=1))
        assert reminded() == {}  # the 24th: too early
        assert visits.remind_behind(now=NOV_25) == "2 reps reminded"
        db.session.commit()
        got = reminded()
        assert set(got) == {u["rep2"].id, u["rep3"].id}
        assert "孙医生" in got[u["rep2"].id] and "李医生" in got[u["rep2"].id]
        assert "周医生" in got[u["rep3"].id] and "赵医生" not in got[u["rep3"].id]
        assert "2" in got[u["rep2"].id]  # 2 doctors, 2 visits lacking (1 + 1)
        assert visits.remind_behind(now=NOV_25 + timedelta(hours=1)) == "0 reps reminded"
        assert visits.remind_behind(now=NOV_25 + timedelta(days=2)) == "0 reps reminded"
        db.session.commit()
        assert (
            db.session.scalar(
                select(func.count(Notification.id)).where(Notification.kind == visits.REMINDER_KIND)
            )
            == 2
        )
        # A later reminder day in the settings: nobody before it.
        visits.save_settings({"reminder_day": 28}, now=NOV_25)
        assert visits.remind_behind(now=NOV_25 + timedelta(days=1)).startswith("reminders start")


def test_compliance_by_rep_and_tier_hand_computed(db, november):
    co, u, docs = november
    with company_scope(co.id):
        data = visits.compliance(NOV)
        reps = {line.key: line for line in data.by_rep}
        tiers = {line.key: line for line in data.by_tier}
        r1, r2, r3 = (reps[str(u[k].id)] for k in ("rep1", "rep2", "rep3"))
        assert (r1.doctors, r1.met, r1.due, r1.done, r1.rate) == (2, 2, 3, 3, 1.0)
        assert (r2.doctors, r2.met, r2.due, r2.done, r2.rate) == (2, 0, 5, 3, 0.0)
        assert (r3.doctors, r3.met, r3.due, r3.done, r3.rate) == (1, 0, 2, 1, 0.0)
        assert (tiers["A"].doctors, tiers["A"].met) == (1, 0)
        assert (tiers["B"].doctors, tiers["B"].met, tiers["B"].due, tiers["B"].done) == (2, 1, 4, 3)
        assert (tiers["C"].doctors, tiers["C"].met, tiers["C"].rate) == (3, 2, 2 / 3)
        assert (data.total.doctors, data.total.met, data.total.due, data.total.done) == (
            6,
            3,
            11,
            8,
        )
        page = visits.plan(NOV, u["rep2"].id, behind_only=True)
        assert [(line.name, line.remaining) for line in page.lines] == [
            ("孙医生", 1),
            ("李医生", 1),
        ]


def test_reports_compliance_and_kpis(db, client, login_as, november):
    co, u, docs = november
    login_as("admin", co)
    page = client.get("/reports/pharma_visit_compliance?month=2026-11&dimension=tier")
    assert page.status_code == 200
    with company_scope(co.id):
        from core import reports

        kpis = reports.run(reports.get("pharma_visit_kpis"), {"month": "2026-11"})
        rows = {r["label"]: r for r in kpis.rows}
        rep2 = rows[u["rep2"].name]
        assert (rep2["done"], rep2["due"], rep2["top"], rep2["top_visited"]) == (3, 5, 1, 1)
        assert rep2["coverage"] == 1.0
        assert rep2["visits"] == 3  # counting visits made by rep2 in November
        days = visits.working_days(NOV, now=datetime(2026, 12, 5, tzinfo=UTC))
        assert days == 21  # November 2026: 21 working days Mon-Fri
        assert rows[u["rep1"].name]["coverage"] is None  # rep1 has no A doctor


# -- settings -----------------------------------------------------------------------------------


def test_settings_validation():
    ok = visits.validate_settings({"quotas": {"A": "6", "B": 3}, "min_minutes": 20})
    assert ok.quotas == {"A": 6, "B": 3} and ok.min_minutes == 20 and ok.reminder_day == 25
    assert ok.top_tier == "A"
    for data, key in (
        ({"quotas": {"A": -1}}, "quota_A"),
        ({"quotas": {"A": 61}}, "quota_A"),
        ({"quotas": {"A": "x"}}, "quota_A"),
        ({"quotas": {"A": True}}, "quota_A"),
        ({"quotas": {"bad tier!": 1}}, "tier"),
        ({"quotas": [1, 2]}, "quotas"),
        ({"min_minutes": 481}, "min_minutes"),
        ({"min_minutes": -5}, "min_minutes"),
        ({"reminder_day": 29}, "reminder_day"),
        ({"reminder_day": 0}, "reminder_day"),
        ({"colour": "red"}, "colour"),
    ):
        with pytest.raises(visits.SettingsError) as exc:
            visits.validate_settings(data)
        assert key in exc.value.errors, data
    with pytest.raises(visits.SettingsError):
        visits.validate_settings(["not", "a", "mapping"])


def test_settings_page(db, client, login_as, pharma):
    co, u = pharma
    login_as("sales_rep", co)
    assert client.get("/pharma/visits/settings").status_code == 403
    login_as("manager", co)
    page = client.get("/pharma/visits/settings")
    assert page.status_code == 200 and 'name="quota_A"' in page.get_data(as_text=True)
    bad = client.post(
        "/pharma/visits/settings",
        data={"quota_A": "99", "quota_B": "2", "min_minutes": "abc", "reminder_day": "25"},
    )
    assert bad.status_code == 422
    text = bad.get_data(as_text=True)
    assert 'data-field="quota_A"' in text and 'data-field="min_minutes"' in text
    good = client.post(
        "/pharma/visits/settings",
        data={
            "quota_A": "5",
            "quota_B": "3",
            "quota_C": "1",
            "quota_D": "0",
            "min_minutes": "20",
            "reminder_day": "22",
            "new_tier": "VIP",
            "new_quota": "8",
        },
    )
    assert good.status_code == 302
    with company_scope(co.id):
        saved = visits.load_settings()
    assert saved.quotas == {"A": 5, "B": 3, "C": 1, "D": 0, "VIP": 8}
    assert (saved.min_minutes, saved.reminder_day) == (20, 22)


# -- supervision --------------------------------------------------------------------------------


def test_supervision_comment_notifies_the_rep(db, client, login_as, pharma):
    co, u = pharma
    with company_scope(co.id):
        doc = doctor(db, u["rep1"], "A")
        row = visits.log_visit(
            doc, u["rep1"], occurred_at=interactions.utcnow(), duration_minutes=10
        )
        db.session.commit()
        visit_id = row.id
    manager = login_as("manager", co)
    page = client.get(f"/pharma/visits/{visit_id}")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and 'data-counts="0"' in text  # 10 min: does not count
    assert 'name="category"' in text
    posted = client.post(
        f"/pharma/visits/{visit_id}/comment",
        data={"category": "supervision", "body": "拜访时间太短，请准备临床数据。"},
    )
    assert posted.status_code == 302
    assert (
        client.post(
            f"/pharma/visits/{visit_id}/comment", data={"category": "praise", "body": "x"}
        ).status_code
        == 422
    )
    with company_scope(co.id):
        comment = db.session.scalars(select(Comment)).one()
        assert comment.body.startswith("【督导】") and comment.user_id == manager.id
        assert visits.split_category(comment.body) == (
            "supervision",
            "拜访时间太短，请准备临床数据。",
        )
        notes = db.session.scalars(
            select(Notification).where(Notification.kind == visits.SUPERVISION_KIND)
        ).all()
        assert [n.user_id for n in notes] == [u["rep1"].id]
        assert notes[0].link.startswith(f"/pharma/visits/{visit_id}#comment-")
    page = client.get(f"/pharma/visits/{visit_id}").get_data(as_text=True)
    assert 'data-category="supervision"' in page
    # The rep replies (plain; no category for reps) and is not notified of their own words.
    client.get("/logout")
    with client.session_transaction() as session:
        session["_user_id"] = str(u["rep1"].id)
        session["company_id"] = co.id
    assert (
        client.post(
            f"/pharma/visits/{visit_id}/comment", data={"category": "summary", "body": "好"}
        ).status_code
        == 403
    )
    assert (
        client.post(
            f"/pharma/visits/{visit_id}/comment", data={"body": "收到，下次改进。"}
        ).status_code
        == 302
    )
    with company_scope(co.id):
        assert (
            db.session.scalar(
                select(func.count(Notification.id)).where(
                    Notification.kind == visits.SUPERVISION_KIND
                )
            )
            == 1
        )


# -- pages --------------------------------------------------------------------------------------


def test_pages_for_reps_and_managers(db, client, login_as, november):
    co, u, docs = november
    with client.session_transaction() as session:
        session["_user_id"] = str(u["rep2"].id)
        session["company_id"] = co.id
    plan = client.get("/pharma/visits/plan?month=2026-11")
    text = plan.get_data(as_text=True)
    assert plan.status_code == 200
    assert (
        f'data-doctor="{docs["r2_a"].id}"' in text
        and f'data-doctor="{docs["r1_b"].id}"' not in text
    )
    assert client.get(f"/pharma/visits/plan?rep={u['rep1'].id}").status_code == 403
    assert client.get("/pharma/visits/compliance").status_code == 403
    assert client.get("/pharma/visits/plan?month=2026-13").status_code == 400
    assert client.get("/pharma/visits/plan?after=zz").status_code == 400
    form = client.get(f"/pharma/visits/new?customer_id={docs['r2_c'].id}")
    assert form.status_code == 200 and "15" in form.get_data(as_text=True)
    bad = client.post(
        f"/pharma/visits/new?customer_id={docs['r2_c'].id}",
        data={"occurred_at": "2026-12-01T10:00", "duration_minutes": "-3"},
    )
    assert bad.status_code == 422
    logged = client.post(
        f"/pharma/visits/new?customer_id={docs['r2_c'].id}",
        data={
            "occurred_at": (
                interactions.utcnow() + timedelta(hours=8) - timedelta(minutes=30)
            ).strftime("%Y-%m-%dT%H:%M"),
            "duration_minutes": "25",
            "visit_type": "academic",
            "products": "二甲双胍",
            "samples": "2",
        },
    )
    assert logged.status_code == 302
    customer_page = client.get(f"/customers/{docs['r2_c'].id}").get_data(as_text=True)
    assert "visit-quota-panel" in customer_page and 'data-counts="1"' in customer_page
    assert "visits-widget" in client.get("/dashboard/").get_data(as_text=True)
    login_as("admin", co)
    comp = client.get("/pharma/visits/compliance?month=2026-11")
    text = comp.get_data(as_text=True)
    assert comp.status_code == 200 and f'data-rep="{u["rep2"].id}"' in text
    drill = client.get(f"/pharma/visits/compliance/doctors?month=2026-11&rep={u['rep2'].id}")
    assert drill.status_code == 200 and "孙医生" in drill.get_data(as_text=True)
    tier = client.get("/pharma/visits/compliance/doctors?month=2026-11&tier=C")
    assert "李医生" in tier.get_data(as_text=True) and "钱医生" not in tier.get_data(as_text=True)
    assert client.get("/pharma/visits/plan?rep=all&month=2026-11&show=all").status_code == 200


def test_pages_404_for_a_company_without_the_plugin(db, client, login_as, company):
    co = company(plugins=["sales"])
    login_as("admin", co)
    for url in (
        "/pharma/visits/plan",
        "/pharma/visits/compliance",
        "/pharma/visits/compliance/doctors",
        "/pharma/visits/settings",
        "/pharma/visits/new?customer_id=1",
        "/pharma/visits/1",
        "/reports/pharma_visit_compliance",
        "/reports/pharma_visit_kpis",
    ):
        assert client.get(url).status_code == 404, url


# -- scale --------------------------------------------------------------------------------------


def _statements(db, co, u, doctors):
    with company_scope(co.id):
        for n in range(doctors):
            doc = doctor(db, u["rep1" if n % 2 else "rep2"], "ABCD"[n % 4])
            for k in range(n % 3):
                visit(db, doc, u["rep1"], datetime(2026, 11, 3 + k, 3, 0, tzinfo=UTC), 10 + 5 * k)
        db.session.commit()
        with QueryCounter(db.engine) as opening:
            visits.open_month(now=NOV_25)
        with QueryCounter(db.engine) as syncing:
            visits.sync_met(now=NOV_25)
        with QueryCounter(db.engine) as comp:
            visits.compliance(NOV)
        with QueryCounter(db.engine) as reminding:
            visits.remind_behind(now=NOV_25)
        db.session.rollback()
    return opening.count, syncing.count, comp.count, reminding.count


def test_statement_count_of_the_counting_is_constant(db, company, make_user):
    counts = []
    for size in (8, 80):
        co = company(plugins=["pharma"])
        u = {r: make_user("sales_rep", co) for r in ("rep1", "rep2")}
        counts.append(_statements(db, co, u, size))
    few, many = counts
    assert few[:3] == many[:3]
    # reminding: one query for everyone, then one notification per rep (two reps either way)
    assert few[3] == many[3]


def test_a_visit_logged_through_the_api_meets_the_quota_by_the_core_hook(db, client, pharma):
    from core import tokens

    co, u = pharma
    with company_scope(co.id):
        doc = doctor(db, u["rep1"], "C")  # C: one visit a month
        visits.open_month()
        _row, secret = tokens.issue(u["rep1"], co.id, "visits")
        db.session.commit()
        doc_id = doc.id
    at = (interactions.utcnow() - timedelta(minutes=40)).strftime("%Y-%m-%dT%H:%M:%SZ")
    made = client.post(
        "/api/v1/interactions",
        json={
            "customer_id": doc_id,
            "kind": "visit",
            "occurred_at": at,
            "duration_minutes": 25,
            "pharma__products": "布地奈德",
            "pharma__samples": 4,
            "pharma__visit_type": "detailing",
        },
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert made.status_code == 201, made.get_json()
    with company_scope(co.id):
        assert clock_of(db, db.session.get(Customer, doc_id)).met_at is not None
        extras = visits.visit_extras([made.get_json()["id"]])[made.get_json()["id"]]
        assert extras["pharma__products"] == "布地奈德" and extras["pharma__samples"] == 4
