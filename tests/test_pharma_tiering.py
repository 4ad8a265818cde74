"""Dynamic doctor tiering of the pharma plugin (DOMAIN §5): schemes and versions, the set-based
recompute (criteria, normalisation, score, thresholds and deciles), the history, overrides on
the workflow engine and their locks, the pages, reports, API and job -- with expectations worked
out by hand on small fixed data sets, "today" being 2026-06-30."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from core import fields, tokens, workflow
from core.models import Customer, Interaction
from core.tenancy import company_scope
from core.testing import QueryCounter, company_today
from plugins.pharma import tiering
from plugins.pharma.models import DoctorTier, TierHistory, TierOverride, TierScheme
from plugins.sales.models import Order

TODAY = date(2026, 6, 30)
NOW = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)
NUMBERS = itertools.count(1)

#: 50 % prescription potential (0-100 as it is), 30 % visits in 90 days (4 = full marks),
#: 20 % orders of the last 365 days (100,000 = full marks); A from 70, B from 40, else C.
SCHEME = {
    "criteria": [
        {"source": "field", "field": "pharma__prescription_potential", "weight": 50, "cap": 100},
        {"source": "visits", "days": 90, "weight": 30, "cap": 4},
        {"source": "orders", "days": 365, "weight": 20, "cap": 100000},
    ],
    "method": "thresholds",
    "tiers": [{"name": "A", "bound": 70}, {"name": "B", "bound": 40}, {"name": "C", "bound": 0}],
}


def pharma_fields():
    from flask import current_app

    return current_app.extensions["guanxi.plugins"].registry.fields_for("customer", ["pharma"])


def doctor(db, name, *, potential=None, visits=(), orders=(), kind="doctor", **values):
    """A doctor of the company in scope: ``visits`` are days ago (before NOW), ``orders``
    ``(days_ago, amount[, state])``."""
    row = Customer(name=name, kind=kind, status="existing")
    db.session.add(row)
    db.session.flush()
    fields.save(pharma_fields(), row.id, {"pharma__prescription_potential": potential, **values})
    for days in visits:
        db.session.add(
            Interaction(customer_id=row.id, kind="visit", occurred_at=NOW - timedelta(days=days))
        )
    for days, amount, *state in orders:
        db.session.add(
            Order(
                number=f"T-{next(NUMBERS)}",
                customer_id=row.id,
                ordered_on=TODAY - timedelta(days=days),
                amount=Decimal(amount),
                cost=Decimal(0),
                state=state[0] if state else "open",
            )
        )
    db.session.flush()
    return row


def use_scheme(data=SCHEME, name="测试方案"):
    config = tiering.validate_config(data, fields=pharma_fields())
    return tiering.create_scheme(name, config, activate=True)


def tiers(db) -> dict[str, DoctorTier]:
    rows = db.session.execute(
        select(Customer.name, DoctorTier).join(DoctorTier, DoctorTier.customer_id == Customer.id)
    ).all()
    return {name: row for name, row in rows}


@pytest.fixture
def clinic(db, company):
    """Four doctors and a hospital; the company next door has a doctor too."""
    co = company(plugins=["pharma"])
    with company_scope(co.id):
        use_scheme()
        # 90 → 90; 4 visits in 90 days (one 100 days ago and a call do not count) → 100;
        # 120,000 of orders in the year (a cancelled 50,000 does not count) → 100.
        # score = (50×90 + 30×100 + 20×100) / 100 = 95 → A
        wang = doctor(
            db,
            "王医生",
            potential=90,
            visits=(1, 10, 30, 89, 100),
            orders=((10, 60000), (300, 60000), (5, 50000, "cancelled")),
        )
        db.session.add(Interaction(customer_id=wang.id, kind="call", occurred_at=NOW))
        # 60 → 60; 2 visits → 50; 30,000 → 30: (3000 + 1500 + 600) / 100 = 51 → B
        doctor(db, "李医生", potential=60, visits=(5, 6), orders=((20, 30000),))
        # nothing → 0; 1 visit → 25; no orders → 0: 750 / 100 = 7.5 → C
        doctor(db, "张医生", visits=(2,))
        # 80 → 80; no visits; an order 400 days ago does not count: 4000 / 100 = 40 → B (≥ 40)
        doctor(db, "赵医生", potential=80, orders=((400, 500000),))
        doctor(db, "人民医院", potential=100, kind="hospital")
        db.session.commit()
        counts = tiering.recompute(today=TODAY, now=NOW)
        db.session.commit()
    assert counts == {"doctors": 4, "written": 4, "locked": 0, "changed": 4}
    other = company(plugins=["pharma"])
    with company_scope(other.id):
        doctor(db, "隔壁医生", potential=100)
        db.session.commit()
    co.other = other
    return co


# -- the computation ----------------------------------------------------------------


def test_hand_computed_tiers_scores_and_inputs(db, clinic):
    with company_scope(clinic.id):
        t = tiers(db)
        assert set(t) == {"王医生", "李医生", "张医生", "赵医生"}  # the hospital is not rated
        assert {n: (r.tier, r.score) for n, r in t.items()} == {
            "王医生": ("A", 95.0),
            "李医生": ("B", 51.0),
            "张医生": ("C", 7.5),
            "赵医生": ("B", 40.0),
        }
        # [raw, normalised] per criterion, in the scheme's order
        assert [float(v) for v in t["王医生"].inputs] == [90, 90, 4, 100, 120000, 100]
        assert [float(v) for v in t["李医生"].inputs] == [60, 60, 2, 50, 30000, 30]
        assert [float(v) for v in t["张医生"].inputs] == [0, 0, 1, 25, 0, 0]
        version = tiering.active_version()
        assert {r.scheme_version_id for r in t.values()} == {version.id}
        # every doctor got a first tier: one history row each, from nothing
        history = db.session.scalars(select(TierHistory)).all()
        assert len(history) == 4 and {h.old_tier for h in history} == {None}
        assert {h.reason for h in history} == {"recompute"}
        why = tiering.explain(tiering.load_config(version), t["李医生"].inputs)
        assert [(w["raw"], w["normalised"], w["weight"], w["contribution"]) for w in why] == [
            (60, 60, 50, 30.0),
            (2, 50, 30, 15.0),
            (30000, 30, 20, 6.0),
        ]
    with company_scope(clinic.other.id):
        assert db.session.scalar(select(func.count()).select_from(DoctorTier)) == 0


def test_a_doctor_moves_tier_when_a_criterion_changes_and_history_keeps_the_values(db, clinic):
    with company_scope(clinic.id):
        li = db.session.scalar(select(Customer).where(Customer.name == "李医生"))
        fields.save(pharma_fields(), li.id, {"pharma__prescription_potential": 100})
        db.session.commit()
        # (50×100 + 30×50 + 20×30) / 100 = 71 → A
        counts = tiering.recompute(today=TODAY, now=NOW + timedelta(hours=1))
        db.session.commit()
        assert counts["changed"] == 1 and counts["written"] == 4
        assert (tiers(db)["李医生"].tier, tiers(db)["李医生"].score) == ("A", 71.0)
        moved = db.session.scalar(
            select(TierHistory).where(TierHistory.customer_id == li.id, TierHistory.old_tier == "B")
        )
        assert (moved.new_tier, moved.score, moved.reason) == ("A", 71.0, "recompute")
        assert [float(v) for v in moved.inputs] == [100, 100, 2, 50, 30000, 30]
        assert moved.scheme_version_id == tiering.active_version().id
        assert moved.changed_at == NOW + timedelta(hours=1)
        # a recompute that changes nothing writes no history
        again = tiering.recompute(today=TODAY, now=NOW + timedelta(hours=2))
        assert again["changed"] == 0


def test_a_new_version_is_kept_apart_and_named_by_history(db, clinic):
    with company_scope(clinic.id):
        scheme = db.session.scalar(select(TierScheme).where(TierScheme.active.is_(True)))
        first = tiering.active_version()
        data = {**SCHEME, "criteria": [{**SCHEME["criteria"][0], "weight": 100}]}
        second = tiering.save_version(scheme, tiering.validate_config(data, pharma_fields()))
        tiering.recompute(today=TODAY, now=NOW + timedelta(hours=1))
        db.session.commit()
        assert (first.number, second.number) == (1, 2)
        assert tiering.active_version().id == second.id
        t = tiers(db)  # potential alone now: 王 90 A, 李 60 B, 张 0 C, 赵 80 A
        assert {n: r.tier for n, r in t.items()} == {
            "王医生": "A",
            "李医生": "B",
            "张医生": "C",
            "赵医生": "A",
        }
        rows = db.session.execute(select(TierHistory.scheme_version_id, TierHistory.new_tier)).all()
        assert (second.id, "A") in rows and sum(1 for v, _t in rows if v == first.id) == 4


def test_deciles_and_percent_rank(db, company):
    co = company(plugins=["pharma"])
    with company_scope(co.id):
        use_scheme(
            {
                "criteria": [{"source": "field", "field": "pharma__prescription_potential",
                              "weight": 1, "cap": 100}],
                "method": "deciles",
                "tiers": [{"name": "A", "bound": 10}, {"name": "B", "bound": 30},
                          {"name": "C", "bound": 60}, {"name": "D", "bound": 100}],
            }
        )  # fmt: skip
        for k, p in enumerate((100, 100, 90, 80, 70, 60, 50, 40, 30, 20)):
            doctor(db, f"D{k}", potential=p)
        db.session.commit()
        tiering.recompute(today=TODAY, now=NOW)
        t = tiers(db)
        # share of the 10 doctors that scored strictly higher: 0, 0, 20, 30, 40 … 90
        assert [t[f"D{k}"].percentile for k in range(10)] == [0, 0, 20, 30, 40, 50, 60, 70, 80, 90]
        assert [t[f"D{k}"].tier for k in range(10)] == list("AABCCCDDDD")
    co2 = company(plugins=["pharma"])
    with company_scope(co2.id):
        use_scheme(
            {
                "criteria": [{"source": "field", "field": "pharma__prescription_potential",
                              "weight": 1, "normalise": "rank"}],
                "method": "thresholds",
                "tiers": [{"name": "高", "bound": 50}, {"name": "低", "bound": 0}],
            }
        )  # fmt: skip
        for k, p in enumerate((0, 10, 10, 40, 100)):
            doctor(db, f"R{k}", potential=p)
        db.session.commit()
        tiering.recompute(today=TODAY, now=NOW)
        t = tiers(db)
        # percent_rank × 100: (rank - 1) / (5 - 1): 0, 25, 25, 75, 100
        assert [t[f"R{k}"].score for k in range(5)] == [0, 25, 25, 75, 100]
        assert [t[f"R{k}"].tier for k in range(5)] == ["低", "低", "低", "高", "高"]


# -- overrides ----------------------------------------------------------------


def test_override_is_requested_approved_survives_recompute_and_expires(db, clinic, make_user):
    rep, manager = make_user("sales_rep", clinic), make_user("manager", clinic)
    today = company_today()
    with company_scope(clinic.id):
        zhang = db.session.scalar(select(Customer).where(Customer.name == "张医生"))
        with pytest.raises(tiering.OverrideError) as refused:
            tiering.request_override(rep, zhang, tier="Z", reason="", locked_until=today)
        assert set(refused.value.errors) == {"tier", "reason", "locked_until"}
        request = tiering.request_override(
            rep, zhang, tier="A", reason="新任科主任", locked_until=today + timedelta(days=30)
        )
        db.session.commit()
        with pytest.raises(tiering.OverrideError):  # one pending request per doctor
            tiering.request_override(
                rep, zhang, tier="B", reason="x", locked_until=today + timedelta(days=5)
            )
        db.session.rollback()
        with pytest.raises(workflow.NotAllowed):
            workflow.transition(request, "approve", user=rep)
        db.session.rollback()
        request = db.session.get(TierOverride, request.id)
        workflow.transition(request, "approve", user=manager, inputs={"comment": "同意"})
        db.session.commit()
        row = tiers(db)["张医生"]
        assert (row.tier, row.locked_until) == ("A", today + timedelta(days=30))
        override = db.session.scalar(select(TierHistory).where(TierHistory.reason == "override"))
        assert (override.old_tier, override.new_tier, override.override_id) == (
            "C",
            "A",
            request.id,
        )
        assert override.score == 7.5  # the values of the last computation travel with it
        # the lock holds through a recompute ...
        counts = tiering.recompute(today=today, now=NOW)
        db.session.commit()
        assert counts["locked"] == 1 and counts["written"] == 3
        assert tiers(db)["张医生"].tier == "A"
        # ... and ends the day after locked_until: the doctor is recomputed normally
        counts = tiering.recompute(today=today + timedelta(days=31), now=NOW)
        db.session.commit()
        row = tiers(db)["张医生"]
        assert (row.tier, row.locked_until, counts["locked"]) == ("C", None, 0)
        back = db.session.scalars(
            select(TierHistory)
            .where(TierHistory.customer_id == zhang.id)
            .order_by(TierHistory.id.desc())
        ).first()
        assert (back.old_tier, back.new_tier, back.reason) == ("A", "C", "recompute")


def test_reject_needs_a_comment(db, clinic, make_user):
    rep, manager = make_user("sales_rep", clinic), make_user("manager", clinic)
    with company_scope(clinic.id):
        zhao = db.session.scalar(select(Customer).where(Customer.name == "赵医生"))
        request = tiering.request_override(
            rep,
            zhao,
            tier="A",
            reason="学术带头人",
            locked_until=company_today() + timedelta(days=9),
        )
        db.session.commit()
        with pytest.raises(workflow.InputRequired):
            workflow.transition(request, "reject", user=manager, inputs={"comment": ""})
        db.session.rollback()
        request = db.session.get(TierOverride, request.id)
        workflow.transition(request, "reject", user=manager, inputs={"comment": "数据不支持"})
        db.session.commit()
        assert tiers(db)["赵医生"].tier == "B" and request.decision_note == "数据不支持"


def test_override_decided_through_the_api(db, client, clinic, make_user):
    """The resource is read-only (no create or PATCH) but its workflow's transitions are open
    to the roles the workflow allows."""
    rep, manager = make_user("sales_rep", clinic), make_user("manager", clinic)
    with company_scope(clinic.id):
        zhao = db.session.scalar(select(Customer).where(Customer.name == "赵医生"))
        request = tiering.request_override(
            rep,
            zhao,
            tier="A",
            reason="学术带头人",
            locked_until=company_today() + timedelta(days=9),
        )
        db.session.commit()
        request_id = request.id
    bearer = {}
    for user in (rep, manager):
        _row, secret = tokens.issue(user, clinic.id, "api")
        bearer[user.id] = {"Authorization": f"Bearer {secret}"}
    db.session.commit()
    api = client
    url = f"/api/v1/pharma_tier_overrides/{request_id}"
    assert api.patch(url, json={"tier": "B"}, headers=bearer[manager.id]).status_code == 405
    refused = api.post(f"{url}/transitions/approve", json={}, headers=bearer[rep.id])
    assert refused.status_code == 403
    done = api.post(
        f"{url}/transitions/approve", json={"comment": "同意"}, headers=bearer[manager.id]
    )
    assert done.status_code == 200 and done.get_json()["state"] == "approved"
    with company_scope(clinic.id):
        assert tiers(db)["赵医生"].tier == "A"


# -- validation ----------------------------------------------------------------


def test_scheme_validation_names_every_bad_input(app):
    with app.test_request_context():
        ok = tiering.validate_config(SCHEME, fields=pharma_fields())
        assert ok.total_weight == 100 and ok.tier_names == ["A", "B", "C"]
        with pytest.raises(tiering.SchemeError) as refused:
            tiering.validate_config(
                {
                    "criteria": [
                        {"source": "field", "field": "pharma__department", "weight": 1},
                        {"source": "visits", "days": 0, "weight": 0},
                        {"source": "orders", "weight": -3, "cap": 0},
                        {"source": "visits", "weight": 1.234},
                        {"source": "visits", "days": 90, "weight": 1},
                    ],
                    "method": "thresholds",
                    "tiers": [
                        {"name": "A", "bound": 50},
                        {"name": "a", "bound": 60},
                        {"name": "", "bound": 10},
                        {"name": "D", "bound": 5},
                    ],
                },
                fields=pharma_fields(),
            )
        errors = refused.value.errors
        assert set(errors) == {
            "criteria-0-source",  # not a numeric field
            "criteria-1-days",
            "criteria-1-weight",
            "criteria-2-weight",
            "criteria-2-cap",
            "criteria-3-weight",  # three decimals
            "criteria-4-source",  # visits over 90 days twice
            "tiers-1-name",  # one name, whatever the case
            "tiers-1-bound",  # not falling
            "tiers-2-name",
            "tiers-3-bound",  # the last tier's minimum is 0
        }
        with pytest.raises(tiering.SchemeError) as refused:
            tiering.validate_config(
                {"criteria": [], "method": "deciles", "tiers": [{"name": "A", "bound": 30},
                 {"name": "B", "bound": 20}, {"name": "C", "bound": 90}]},
                fields=pharma_fields(),
            )  # fmt: skip
        assert set(refused.value.errors) == {"criteria", "tiers-1-bound", "tiers-2-bound"}
        with pytest.raises(tiering.SchemeError) as refused:
            tiering.validate_config({"criteria": "x", "method": "mood", "tiers": [{}]}, fields=[])
        assert {"criteria", "method", "tiers"} <= set(refused.value.errors)


def _form(**changes):
    data = {
        "criteria-0-source": "field:pharma__prescription_potential",
        "criteria-0-weight": "50",
        "criteria-0-normalise": "scale",
        "criteria-0-cap": "100",
        "criteria-1-source": "visits",
        "criteria-1-days": "90",
        "criteria-1-weight": "30",
        "criteria-1-normalise": "scale",
        "criteria-1-cap": "4",
        "criteria-3-source": "orders",  # a blank row between: errors keep their row
        "criteria-3-days": "365",
        "criteria-3-weight": "20",
        "criteria-3-normalise": "scale",
        "criteria-3-cap": "100000",
        "method": "thresholds",
        "tiers-0-name": "A",
        "tiers-0-bound": "70",
        "tiers-1-name": "B",
        "tiers-1-bound": "40",
        "tiers-2-name": "C",
        "tiers-2-bound": "0",
    }
    data.update(changes)
    return data


def test_scheme_form_refuses_with_messages_then_saves_a_version_and_recomputes(
    db, client, login_as, clinic
):
    login_as("manager", clinic)
    with company_scope(clinic.id):
        scheme_id = db.session.scalar(select(TierScheme.id).where(TierScheme.active.is_(True)))
    url = f"/pharma/tiering/schemes/{scheme_id}/edit"
    assert client.get(url).status_code == 200
    bad = client.post(url, data=_form(**{"criteria-3-weight": "0", "tiers-1-bound": "80"}))
    assert bad.status_code == 422
    html = bad.get_data(as_text=True)
    assert 'data-field="criteria-3-weight"' in html and 'data-field="tiers-1-bound"' in html
    ok = client.post(url, data=_form(**{"criteria-0-weight": "150", "note": "处方潜力加权"}))
    assert ok.status_code == 302
    with company_scope(clinic.id):
        version = tiering.active_version()
        assert version.number == 2 and version.note == "处方潜力加权"
        # recomputed at once, as of the real today: 李's June visits are beyond 90 days now,
        # his order of 2026-06-10 is within the year: (150×60 + 30×0 + 20×30) / 200 = 48
        assert tiers(db)["李医生"].score == 48.0
    new = client.post("/pharma/tiering/schemes/new", data=_form(name=""))
    assert new.status_code == 422 and 'data-field="name"' in new.get_data(as_text=True)
    created = client.post("/pharma/tiering/schemes/new", data=_form(name="第二方案"))
    assert created.status_code == 302
    with company_scope(clinic.id):
        second = db.session.scalar(select(TierScheme).where(TierScheme.name == "第二方案"))
        assert second.active is False
    activate = client.post(f"/pharma/tiering/schemes/{second.id}/activate")
    assert activate.status_code == 302 and "changed=" in activate.headers["Location"]
    with company_scope(clinic.id):
        actives = db.session.scalars(select(TierScheme.name).where(TierScheme.active.is_(True)))
        assert list(actives) == ["第二方案"]
    login_as("sales_rep", clinic)
    assert client.get(url).status_code == 403
    assert client.post("/pharma/tiering/recompute").status_code == 403


# -- statements ----------------------------------------------------------------


def test_statement_count_does_not_grow_with_the_number_of_doctors(db, company):
    co = company(plugins=["pharma"])
    with company_scope(co.id):
        use_scheme()
        for k in range(10):
            doctor(db, f"D{k}", potential=k, visits=(k,), orders=((k, 1000),))
        db.session.commit()
        with QueryCounter(db.engine) as few:
            tiering.recompute(today=TODAY, now=NOW)
        db.session.commit()
        for k in range(10, 200):
            doctor(db, f"D{k}", potential=k % 100, visits=(k % 90,), orders=((k, 1000),))
        db.session.commit()
        with QueryCounter(db.engine) as many:
            counts = tiering.recompute(today=TODAY, now=NOW + timedelta(hours=1))
        db.session.commit()
        assert counts["doctors"] == 200
    assert many.count == few.count <= 5


# -- pages ----------------------------------------------------------------


def test_doctor_list_filters_pages_and_links_to_the_customer(app, client, login_as, clinic):
    login_as("manager", clinic)
    html = client.get("/pharma/doctors").get_data(as_text=True)
    assert html.index("王医生") < html.index("李医生") < html.index("赵医生") < html.index("张医生")
    assert "人民医院" not in html and "隔壁医生" not in html
    only_b = client.get("/pharma/doctors?tier=B").get_data(as_text=True)
    assert "李医生" in only_b and "王医生" not in only_b.split('class="list doctors"')[1]
    assert client.get("/pharma/doctors?sort=nope").status_code == 400
    assert client.get("/pharma/doctors?after=garbage").status_code == 400
    app.config["LIST_PAGE_SIZE"] = 3
    first = client.get("/pharma/doctors").get_data(as_text=True)
    assert first.count("data-doctor=") == 3
    after = first.split("after=")[1].split('"')[0]
    second = client.get(f"/pharma/doctors?after={after}").get_data(as_text=True)
    assert second.count("data-doctor=") == 1 and "张医生" in second
    by_name = client.get("/pharma/doctors?sort=name").get_data(as_text=True)
    assert "/customers/" in by_name


def test_doctor_list_queries_do_not_grow_with_the_page(app, db, client, login_as, company):
    co = company(plugins=["pharma"])
    login_as("manager", co)
    with company_scope(co.id):
        use_scheme()
        for k in range(3):
            doctor(db, f"D{k}", potential=k)
        tiering.recompute(today=TODAY, now=NOW)
        db.session.commit()
    client.get("/pharma/doctors")
    db.session.expire_all()
    with QueryCounter(db.engine) as few:
        client.get("/pharma/doctors")
    with company_scope(co.id):
        for k in range(3, 40):
            doctor(db, f"D{k}", potential=k)
        tiering.recompute(today=TODAY, now=NOW)
        db.session.commit()
    db.session.expire_all()
    with QueryCounter(db.engine) as many:
        html = client.get("/pharma/doctors").get_data(as_text=True)
    assert html.count("data-doctor=") == 40
    assert many.count == few.count


def test_doctor_page_and_customer_panel_say_why(db, client, login_as, clinic):
    login_as("manager", clinic)
    with company_scope(clinic.id):
        li = db.session.scalar(select(Customer).where(Customer.name == "李医生"))
    page = client.get(f"/pharma/doctors/{li.id}").get_data(as_text=True)
    assert 'data-current-tier="B"' in page and "51.00" in page
    assert 'class="list tier-why"' in page and "30,000" in page and "15.00" in page
    assert 'data-rule="A"' in page and "70" in page
    panel = client.get(f"/customers/{li.id}").get_data(as_text=True)
    assert 'data-current-tier="B"' in panel and "tier-why" in panel
    with company_scope(clinic.id):
        hospital = db.session.scalar(select(Customer).where(Customer.name == "人民医院"))
    assert client.get(f"/pharma/doctors/{hospital.id}").status_code == 404
    assert "tier-why" not in client.get(f"/customers/{hospital.id}").get_data(as_text=True)


def test_override_through_the_pages(db, client, login_as, clinic):
    rep = login_as("sales_rep", clinic)
    with company_scope(clinic.id):
        zhao = db.session.scalar(select(Customer).where(Customer.name == "赵医生"))
        zhao.owner_id = rep.id  # the rep's own doctor (the record rule)
        db.session.commit()
    url = f"/pharma/doctors/{zhao.id}/override"
    bad = client.post(url, data={"tier": "A", "reason": "", "locked_until": "nope"})
    assert bad.status_code == 422 and 'data-field="locked_until"' in bad.get_data(as_text=True)
    until = (company_today() + timedelta(days=60)).isoformat()
    ok = client.post(url, data={"tier": "A", "reason": "牵头多中心研究", "locked_until": until})
    assert ok.status_code == 302
    with company_scope(clinic.id):
        request = db.session.scalar(select(TierOverride))
    assert client.post(f"/pharma/overrides/{request.id}/approve").status_code == 403
    login_as("manager", clinic)
    refused = client.post(f"/pharma/overrides/{request.id}/reject", data={"comment": ""})
    assert refused.status_code == 422
    settings = client.get("/pharma/tiering").get_data(as_text=True)
    assert f'data-override="{request.id}"' in settings
    done = client.post(
        f"/pharma/overrides/{request.id}/approve", data={"version": str(request.version)}
    )
    assert done.status_code == 302
    page = client.get(f"/pharma/doctors/{zhao.id}").get_data(as_text=True)
    assert 'data-current-tier="A"' in page and f'data-locked-until="{until}"' in page
    assert 'data-history="override"' in page
    again = client.post(f"/pharma/overrides/{request.id}/approve")
    assert again.status_code == 409


def test_recompute_button_reports_counts(db, client, login_as, clinic):
    login_as("manager", clinic)
    with company_scope(clinic.id):
        db.session.execute(DoctorTier.__table__.delete())
        db.session.commit()
    answer = client.post("/pharma/tiering/recompute", follow_redirects=True)
    html = answer.get_data(as_text=True)
    assert answer.status_code == 200 and 'data-doctors="4"' in html and 'data-changed="4"' in html


def test_reports(client, login_as, clinic):
    login_as("manager", clinic)
    by_tier = client.get("/reports/pharma_doctors_by_tier").get_data(as_text=True)
    assert "/pharma/doctors?tier=B" in by_tier
    assert client.get("/reports/pharma_tier_movements").status_code == 200


def test_nightly_job_runs_for_companies_with_pharma(db, company, clinic):
    from core import jobs
    from core.db import utcnow

    done = jobs.run_due(utcnow() + timedelta(days=1), only="pharma.tiering")
    scopes = {scope for _n, scope, status in done if status == "done"}
    assert f"company:{clinic.id}" in scopes and f"company:{clinic.other.id}" in scopes
    with company_scope(clinic.other.id):
        # the default scheme it was given: prescription potential 100 × 35 % = 35 → C
        row = db.session.scalar(select(DoctorTier))
        assert (row.tier, row.score) == ("C", 35.0)


# -- the plugin for one company, not another -------------------------------------------------------


def test_nothing_for_a_company_without_pharma(
    app, db, client, company, login_as, make_user, clinic
):
    plain = company(plugins=["sales"])
    login_as("admin", plain)
    with company_scope(plain.id):
        c = Customer(name="某医生", kind="consumer", status="existing")
        db.session.add(c)
        db.session.commit()
    for url in ("/pharma/doctors", "/pharma/tiering", f"/pharma/doctors/{c.id}",
                "/reports/pharma_doctors_by_tier", "/reports/pharma_tier_movements"):  # fmt: skip
        assert client.get(url).status_code == 404, url
    assert client.post("/pharma/tiering/recompute").status_code == 404
    assert "tier-why" not in client.get(f"/customers/{c.id}").get_data(as_text=True)
    admin = make_user("admin", plain)
    _row, secret = tokens.issue(admin, plain.id, "bi")
    db.session.commit()
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/pharma_doctor_tiers", headers=headers).status_code == 404
    assert client.get("/api/v1/pharma_tier_overrides", headers=headers).status_code == 404
    mine = make_user("admin", clinic)
    _row, secret = tokens.issue(mine, clinic.id, "bi")
    db.session.commit()
    listed = app.test_client().get(
        "/api/v1/pharma_doctor_tiers?tier=B", headers={"Authorization": f"Bearer {secret}"}
    )
    assert listed.status_code == 200 and len(listed.get_json()["data"]) == 2


def test_tier_changes_are_on_the_doctors_timeline(db, client, login_as, clinic):
    login_as("manager", clinic)
    with company_scope(clinic.id):
        wang = db.session.scalar(select(Customer).where(Customer.name == "王医生"))
        entries = tiering.timeline(wang)
    assert len(entries) == 1 and entries[0].title.endswith("— → A") and entries[0].at == NOW
    html = client.get(f"/customers/{wang.id}").get_data(as_text=True)
    assert f"/pharma/doctors/{wang.id}" in html
