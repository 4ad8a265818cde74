"""The dealer plugin, installed as a package, against the Guanxi core's test kit."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

from guanxi_dealer import scoring
from guanxi_dealer.models import DealerLead
from sqlalchemy import select

from core.extend import Customer, company_scope, field_values, plugin_settings

DEFAULTS = {f"weight_{name}": weight for name, _l, _z, weight in scoring.CRITERIA}


def lead(**values):
    base = dict(
        offer=None, list_price=Decimal("152000"), service=0, influence=0, referral=0, age=None
    )
    return SimpleNamespace(**{**base, **values})


def test_the_last_golf_goes_to_the_better_customer_not_the_higher_offer():
    # The training's case: one GOLF 2.0 AT left; A offers 150,000, B 152,000.
    a = lead(offer=Decimal("150000"), service=5, influence=4, referral=4, age=32)
    b = lead(offer=Decimal("152000"), service=1, influence=1, referral=1, age=58)
    score_a = scoring.score(scoring.points(a, cars_owned=1), DEFAULTS)
    score_b = scoring.score(scoring.points(b, cars_owned=0), DEFAULTS)
    assert score_a > score_b
    # With all the weight on the price, the higher offer wins.
    price_only = {k: (100 if k == "weight_price" else 0) for k in DEFAULTS}
    assert scoring.score(scoring.points(b, 0), price_only) == Decimal("100.0")
    assert scoring.score(scoring.points(a, 1), price_only) < Decimal("100.0")


def test_scores_are_bounded_and_weights_of_zero_give_zero():
    best = lead(offer=Decimal("200000"), service=5, influence=5, referral=5, age=20)
    assert scoring.score(scoring.points(best, 3), DEFAULTS) == Decimal("100.0")
    assert scoring.score(scoring.points(best, 3), {}) == Decimal("0.0")


def add_customer(client, db, company, name, cars):
    client.post(
        "/customers/new", data={"name": name, "kind": "consumer", "dealer__cars_owned": cars}
    )
    with company_scope(company.id):
        return db.session.scalar(select(Customer.id).where(Customer.name == name))


def test_leads_are_ranked_test_driven_sold_and_reported(client, db, dealer_company, login_as):
    login_as("admin", dealer_company)
    form = client.get("/customers/new").get_data(as_text=True)
    assert 'name="dealer__cars_owned"' in form and "以往购车数" in form
    a = add_customer(client, db, dealer_company, "王先生", 1)
    b = add_customer(client, db, dealer_company, "李女士", 0)
    assert a and b
    with company_scope(dealer_company.id):
        assert field_values("customer", [a], "dealer")[a]["dealer__cars_owned"] == 1
    golf = {"vehicle": "GOLF 2.0 AT", "list_price": "152000"}
    client.post(
        "/dealer/",
        data={
            **golf,
            "customer_id": a,
            "offer": "150000",
            "service": 5,
            "influence": 4,
            "referral": 4,
            "age": 32,
        },
    )
    client.post(
        "/dealer/",
        data={
            **golf,
            "customer_id": b,
            "offer": "152000",
            "service": 1,
            "influence": 1,
            "referral": 1,
            "age": 58,
        },
    )
    page = client.get("/dealer/?vehicle=GOLF 2.0 AT").get_data(as_text=True)
    assert "最后一辆车卖给谁" in page  # the plugin's own Chinese catalogue
    assert page.index("王先生") < page.index("李女士")  # ranked by buyer value

    with company_scope(dealer_company.id):
        first = db.session.scalars(select(DealerLead).order_by(DealerLead.score.desc())).first()
    for step in ("book", "drive", "sell"):
        client.post(f"/dealer/{first.id}/{step}")
    with company_scope(dealer_company.id):
        db.session.refresh(first)
        assert first.state == "sold"

    report = client.get("/reports/dealer_vehicles")
    assert report.status_code == 200 and "GOLF 2.0 AT" in report.get_data(as_text=True)
    customer_page = client.get(f"/customers/{a}").get_data(as_text=True)
    assert "GOLF 2.0 AT" in customer_page


def test_selling_below_the_largest_discount_is_refused(client, db, dealer_company, login_as):
    login_as("admin", dealer_company)
    c = add_customer(client, db, dealer_company, "张先生", 0)
    client.post(
        "/dealer/",
        data={"vehicle": "Passat", "list_price": "200000", "offer": "150000", "customer_id": c},
    )
    with company_scope(dealer_company.id):
        row = db.session.scalars(select(DealerLead)).one()
    client.post(f"/dealer/{row.id}/book")
    client.post(f"/dealer/{row.id}/drive")
    refused = client.post(f"/dealer/{row.id}/sell", follow_redirects=True)
    assert "below list price less 10%" in refused.get_data(as_text=True)
    client.post("/settings/plugins/dealer/settings", data={**DEFAULTS, "max_discount": "30"})
    assert plugin_settings("dealer", dealer_company.id)["max_discount"] == 30
    client.post(f"/dealer/{row.id}/sell")
    with company_scope(dealer_company.id):
        db.session.refresh(row)
        assert row.state == "sold"


def test_losing_a_lead_needs_a_reason(client, db, dealer_company, login_as):
    login_as("sales_rep", dealer_company)
    c = add_customer(client, db, dealer_company, "赵女士", 0)
    client.post(
        "/dealer/",
        data={"vehicle": "Polo", "list_price": "90000", "offer": "88000", "customer_id": c},
    )
    with company_scope(dealer_company.id):
        row = db.session.scalars(select(DealerLead)).one()
    client.post(f"/dealer/{row.id}/lose")
    with company_scope(dealer_company.id):
        db.session.refresh(row)
        assert row.state == "new"
    client.post(f"/dealer/{row.id}/lose", data={"comment": "买了别家"})
    with company_scope(dealer_company.id):
        db.session.refresh(row)
        assert row.state == "lost"


def test_nothing_of_the_dealer_where_it_is_not_enabled(client, company, login_as):
    login_as("admin", company())
    assert 'name="dealer__cars_owned"' not in client.get("/customers/new").get_data(as_text=True)
    assert client.get("/dealer/").status_code == 404
    assert client.get("/reports/dealer_vehicles").status_code == 404
