"""Value tier, loyalty and lifecycle stage: computed by the company's rules, in set-based SQL."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from core import classify
from core.db import utcnow
from core.models import AuditLog, CompanySetting, Customer, Interaction
from core.tenancy import company_scope

NOW = utcnow()


def ago(days: float):
    return NOW - timedelta(days=days)


def make(db, **values):
    values.setdefault("name", "客户")
    values.setdefault("status", "existing")
    values.setdefault("created_at", ago(1000))
    values.setdefault("last_contact_at", ago(1))
    customer = Customer(**values)
    db.session.add(customer)
    db.session.flush()
    return customer


def attrs(db, customer):
    db.session.refresh(customer)
    return customer.value_tier, customer.loyalty, customer.lifecycle_stage


@pytest.mark.parametrize(
    ("revenue", "tier"),
    [
        (None, "D"),
        (Decimal("0"), "D"),
        (Decimal("19999.99"), "D"),
        (Decimal("20000"), "C"),
        (Decimal("199999.99"), "C"),
        (Decimal("200000"), "B"),
        (Decimal("999999.99"), "B"),
        (Decimal("1000000"), "A"),
        (Decimal("50000000"), "A"),
    ],
)
def test_value_tier_thresholds(app, db, company, revenue, tier):
    with company_scope(company().id):
        customer = make(db, revenue=revenue)
        classify.classify_customers(now=NOW)
        assert attrs(db, customer)[0] == tier


def test_loyalty_edges(app, db, company):
    rules = classify.DEFAULTS
    with company_scope(company().id):
        prospect = make(db, status="potential")
        new = make(db, created_at=ago(rules.new_days - 1))
        just_old = make(db, created_at=ago(rules.new_days + 1))
        loyal = make(db, created_at=ago(rules.loyal_days + 1))
        almost_loyal = make(db, created_at=ago(rules.loyal_days + 1))
        too_young = make(db, created_at=ago(rules.loyal_days - 1))
        for customer, count in ((loyal, 6), (almost_loyal, 5), (too_young, 6)):
            for i in range(count):
                db.session.add(Interaction(customer_id=customer.id, occurred_at=ago(10 + i)))
        # interactions outside the activity window do not count
        db.session.add_all(
            Interaction(customer_id=almost_loyal.id, occurred_at=ago(400)) for _ in range(3)
        )
        classify.classify_customers(now=NOW)
        assert attrs(db, prospect)[1] is None
        assert attrs(db, new)[1] == "new"
        assert attrs(db, just_old)[1] == "old"
        assert attrs(db, loyal)[1] == "loyal"
        assert attrs(db, almost_loyal)[1] == "old"
        assert attrs(db, too_young)[1] == "old"


def test_lifecycle_edges(app, db, company):
    rules = classify.DEFAULTS
    with company_scope(company().id):
        lost = make(db, status="lost")
        silent = make(db, last_contact_at=ago(rules.dissolution_days + 1))
        quiet = make(db, last_contact_at=ago(rules.decline_days + 1))
        still_ok = make(db, last_contact_at=ago(rules.decline_days - 1))
        prospect = make(db, status="potential", created_at=ago(400), last_contact_at=ago(3))
        fresh = make(db, created_at=ago(rules.acquisition_days - 1), last_contact_at=None)
        growing = make(db, created_at=ago(rules.acquisition_days + 1))
        mature = make(db, created_at=ago(rules.maturity_days + 1))
        # an interaction newer than last_contact_at counts as the last contact
        revived = make(db, last_contact_at=ago(rules.dissolution_days + 50))
        db.session.add(Interaction(customer_id=revived.id, occurred_at=ago(2)))
        # never contacted: the creation date counts
        forgotten = make(db, created_at=ago(rules.decline_days + 5), last_contact_at=None)
        classify.classify_customers(now=NOW)
        assert attrs(db, lost)[2] == "dissolution"
        assert attrs(db, silent)[2] == "dissolution"
        assert attrs(db, quiet)[2] == "decline"
        assert attrs(db, still_ok)[2] == "maturity"
        assert attrs(db, prospect)[2] == "acquisition"
        assert attrs(db, fresh)[2] == "acquisition"
        assert attrs(db, growing)[2] == "growth"
        assert attrs(db, mature)[2] == "maturity"
        assert attrs(db, revived)[2] == "maturity"
        assert attrs(db, forgotten)[2] == "decline"


def test_tuned_rules_change_the_results(app, db, company):
    with company_scope(company().id):
        customer = make(db, revenue=Decimal("50000"), created_at=ago(100))
        classify.classify_customers(now=NOW)
        assert attrs(db, customer) == ("C", "new", "growth")
        classify.save_rules({"tier_b_min": 40_000, "tier_c_min": 10_000, "new_days": 30})
        changed = classify.classify_customers(now=NOW)
        assert changed == {"value_tier": 1, "loyalty": 1, "lifecycle_stage": 0}
        assert attrs(db, customer) == ("B", "old", "growth")
        stored = db.session.scalars(db.select(CompanySetting)).one()
        assert stored.key == "customer_rules"
        assert stored.value == {"tier_b_min": 40_000, "tier_c_min": 10_000, "new_days": 30}
        actions = db.session.scalars(db.select(AuditLog.action).order_by(AuditLog.id)).all()
        assert actions == ["update", "classify"]  # the rules saved, then the C → B move
        classify.reset_rules()
        assert classify.load_rules() == classify.DEFAULTS


def test_rules_are_per_company(app, db, company):
    acme, other = company(), company()
    with company_scope(acme.id):
        classify.save_rules({"tier_a_min": 10, "tier_b_min": 5, "tier_c_min": 1})
        db.session.commit()
    with company_scope(other.id):
        assert classify.load_rules() == classify.DEFAULTS


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"tier_a_min": -1}, "tier_a_min"),
        ({"tier_b_min": 2_000_000}, "tier_b_min"),
        ({"tier_c_min": 300_000}, "tier_c_min"),
        ({"new_days": 0}, "new_days"),
        ({"new_days": 800}, "new_days"),
        ({"decline_days": 400}, "decline_days"),
        ({"acquisition_days": 900}, "acquisition_days"),
        ({"loyal_interactions": "many"}, "loyal_interactions"),
        ({"loyal_interactions": 2.5}, "loyal_interactions"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_rules_are_refused_naming_the_field(app, db, company, data, field):
    with company_scope(company().id):
        with pytest.raises(classify.RulesError) as refused:
            classify.save_rules(data)
        assert field in refused.value.errors
        assert field in str(refused.value)
        assert db.session.scalars(db.select(CompanySetting)).all() == []


def test_only_given_ids_are_classified(app, db, company):
    with company_scope(company().id):
        one, two = make(db, revenue=Decimal(5_000_000)), make(db, revenue=Decimal(5_000_000))
        assert classify.classify_customers([one.id], now=NOW)["value_tier"] == 1
        assert attrs(db, one)[0] == "A" and attrs(db, two)[0] is None
        assert classify.classify_customers([], now=NOW) == {
            "value_tier": 0,
            "loyalty": 0,
            "lifecycle_stage": 0,
        }


def test_classifying_is_not_an_edit(app, db, company):
    with company_scope(company().id):
        customer = make(db, revenue=Decimal(300_000))
        db.session.commit()
        version, updated = customer.version, customer.updated_at
        classify.classify_customers(now=NOW)
        db.session.commit()
        assert attrs(db, customer)[0] == "B"
        assert (customer.version, customer.updated_at) == (version, updated)
        assert classify.classify_customers(now=NOW) == {
            "value_tier": 0,
            "loyalty": 0,
            "lifecycle_stage": 0,
        }


def test_other_companies_are_untouched(app, db, company):
    acme, other = company(), company()
    with company_scope(other.id):
        theirs = make(db, revenue=Decimal(5_000_000))
        db.session.commit()
    with company_scope(acme.id):
        make(db, revenue=Decimal(5_000_000))
        classify.classify_customers(now=NOW)
        db.session.commit()
    with company_scope(other.id):
        assert attrs(db, theirs)[0] is None


def test_query_count_does_not_grow_with_customers(app, db, company):
    from tests.test_customer_list import QueryCounter

    with company_scope(company().id):
        for i in range(3):
            make(db, revenue=Decimal(i * 100_000))
        db.session.commit()
        with QueryCounter(db.engine) as few:
            classify.classify_customers(now=NOW)
        for i in range(80):
            make(db, revenue=Decimal(i * 20_000), created_at=ago(i * 10))
        db.session.commit()
        with QueryCounter(db.engine) as many:
            classify.classify_customers(now=NOW)
        assert many.count == few.count <= 5  # 3 updates and the INSERT of the tier moves


def test_nightly_job_classifies_every_company(app, db, company):
    from core import jobs
    from core.plugins import current

    acme, other = company(), company()
    for row in (acme, other):
        with company_scope(row.id):
            make(db, revenue=Decimal(2_000_000))
            db.session.commit()
    job = current().registry.jobs["customers.classify"]
    done = jobs.run_due(NOW + timedelta(days=1), only=job.name)
    assert sorted(scope for _name, scope, _status in done) == [
        f"company:{acme.id}",
        f"company:{other.id}",
    ]
    assert all(status == "done" for *_rest, status in done)
    for row in (acme, other):
        with company_scope(row.id):
            assert db.session.scalars(db.select(Customer.value_tier)).all() == ["A"]


# -- the settings page -------------------------------------------------------------------------


def form_data(**changes):
    return {**classify.DEFAULTS.as_dict(), **changes}


def test_settings_page_saves_rules_and_recomputes(app, db, client, company, login_as):
    acme = company()
    login_as("manager", acme)
    with company_scope(acme.id):
        customer = make(db, revenue=Decimal("50000"))
        db.session.commit()
    page = client.get("/settings/")
    assert page.status_code == 200
    assert 'name="tier_a_min"' in page.get_data(as_text=True)
    saved = client.post("/settings/", data=form_data(tier_b_min=40_000))
    assert saved.status_code == 302
    with company_scope(acme.id):
        assert classify.load_rules().tier_b_min == 40_000
        assert attrs(db, customer)[0] == "B"
        db.session.execute(db.update(Customer).values(value_tier=None))
        db.session.commit()
    assert client.post("/settings/recompute").status_code == 302
    with company_scope(acme.id):
        assert attrs(db, customer)[0] == "B"
    assert client.post("/settings/reset").status_code == 302
    with company_scope(acme.id):
        assert classify.load_rules() == classify.DEFAULTS
        assert attrs(db, customer)[0] == "C"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"tier_b_min": 5_000_000}, "tier_b_min"),
        ({"tier_a_min": "lots"}, "tier_a_min"),
        ({"tier_c_min": ""}, "tier_c_min"),
        ({"decline_days": 0}, "decline_days"),
        ({"dissolution_days": 100}, "decline_days"),
        ({"loyal_interactions": -3}, "loyal_interactions"),
        ({"new_days": 10**12}, "new_days"),
    ],
)
def test_settings_form_refuses_bad_values_at_the_field(
    app, db, client, company, login_as, changes, field
):
    acme = company()
    login_as("admin", acme)
    response = client.post("/settings/", data=form_data(**changes))
    assert response.status_code == 422
    assert f'data-field="{field}"' in response.get_data(as_text=True)
    with company_scope(acme.id):
        assert db.session.scalars(db.select(CompanySetting)).all() == []


@pytest.mark.parametrize("role", ["sales_rep", "service_agent", "viewer"])
def test_settings_are_for_admins_and_managers(app, client, company, login_as, role):
    login_as(role, company())
    assert client.get("/settings/").status_code == 403
    assert client.post("/settings/", data=form_data()).status_code == 403
    assert client.post("/settings/recompute").status_code == 403
    assert "/settings/" not in client.get("/customers/").get_data(as_text=True)


def test_settings_menu_entry_for_managers(app, client, company, login_as):
    login_as("manager", company())
    html = client.get("/customers/").get_data(as_text=True)
    assert 'href="/settings/"' in html and 'href="/customers/duplicates"' in html
