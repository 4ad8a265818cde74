"""Customer value of the sales plugin (issue 6): RFM and segments, historical/current/potential
value and LTV (NPV), ABC classes, the attack/defend quadrant, revenue and value tiers fed from
orders, the rules page, the pages, export, API, reports and job -- with expectations computed by
hand on small fixed data sets, "today" being 2026-06-30."""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from core import classify, fields, tokens
from core.models import AuditLog, CompanySetting, Customer
from core.tenancy import company_scope
from core.testing import QueryCounter
from plugins.sales import value
from plugins.sales.models import CustomerValue, Order

TODAY = date(2026, 6, 30)
NUMBERS = itertools.count(1)
#: (1 - 1.1 ** -5) / 0.1: the present value of 1 yuan a year for 5 years at 10 %.
ANNUITY = (1 - 1.1**-5) / 0.1  # 3.7907867694...


def ago(days: int) -> date:
    return TODAY - timedelta(days=days)


def customer(db, name, *, revenue=None, potential=None, share=None, orders=()):
    """A customer of the company in scope with its sales fields and orders
    ``(days_ago, amount, cost[, state])``."""
    row = Customer(name=name, status="existing", revenue=revenue)
    db.session.add(row)
    db.session.flush()
    declared = [f for f in fields_of_sales() if f.name in ("purchase_potential", "share_of_wallet")]
    fields.save(
        declared,
        row.id,
        {"sales__purchase_potential": potential, "sales__share_of_wallet": share},
    )
    for days, amount, cost, *state in orders:
        db.session.add(
            Order(
                number=f"V-{next(NUMBERS)}",
                customer_id=row.id,
                ordered_on=ago(days),
                amount=Decimal(amount),
                cost=Decimal(cost),
                state=state[0] if state else "open",
            )
        )
    db.session.flush()
    return row


def fields_of_sales():
    from flask import current_app

    return current_app.extensions["guanxi.plugins"].registry.fields_for("customer", ["sales"])


def values(db) -> dict[str, CustomerValue]:
    """The value rows of the company in scope, by customer name."""
    rows = db.session.execute(
        select(Customer.name, CustomerValue).join(
            CustomerValue, CustomerValue.customer_id == Customer.id
        )
    ).all()
    return {name: row for name, row in rows}


@pytest.fixture
def shop(db, company):
    """Four customers with orders (a champion, a new one, a lost one, one at risk), one with a
    hand-typed revenue and no orders; the company next door has sales too."""
    co = company(plugins=["sales"])
    with company_scope(co.id):
        # 12 monthly orders of 100,000 (cost 60,000) in the year, one of 50,000 (cost 30,000)
        # two years ago, and a cancelled order of 999,999 three days ago that counts for nothing.
        monthly = [(5 + 30 * k, 100_000, 60_000) for k in range(12)]
        customer(
            db,
            "冠军",
            potential=3_000_000,
            share=70,
            orders=[*monthly, (800, 50_000, 30_000), (3, 999_999, 0, "cancelled")],
        )
        customer(db, "新客", potential=2_000_000, share=40, orders=[(20, 30_000, 8_000)])
        customer(
            db,
            "流失",
            revenue=Decimal(500_000),  # typed by hand once; orders now say otherwise
            potential=500_000,
            share=10,
            orders=[(400, 15_000, 10_000)],
        )
        customer(
            db,
            "风险",
            orders=[(200, 20_000, 15_000), (230, 20_000, 15_000), (260, 20_000, 15_000)],
        )
        customer(db, "手填", revenue=Decimal(500_000), potential=1_000_000, share=20)
        classify.classify_customers()  # tiers from the revenues as they were before the orders
        db.session.commit()
        value.recompute(today=TODAY)
        db.session.commit()
    return co


# -- RFM ----------------------------------------------------------------------------------------


def test_rfm_scores_and_segments(db, shop):
    with company_scope(shop.id):
        v = values(db)
    champion = v["冠军"]
    # last order 5 days ago (≤30 → R5); 12 orders in 365 days (≥12 → F5); 1,200,000 (≥1M → M5)
    assert (champion.recency_days, champion.frequency, champion.monetary) == (5, 12, 1_200_000)
    assert (champion.r_score, champion.f_score, champion.m_score) == (5, 5, 5)
    assert champion.segment == "champions"
    assert champion.orders_total == 13  # the cancelled order is not one
    new = v["新客"]
    # one order 20 days ago: R5, F1 (fewer than 2), M2 (30,000 ≥ 10,000); first order ≤ 90 days
    assert (new.r_score, new.f_score, new.m_score, new.segment) == (5, 1, 2, "new")
    lost = v["流失"]
    # last order 400 days ago: outside every threshold and the window
    assert (lost.recency_days, lost.frequency, lost.monetary) == (400, 0, 0)
    assert (lost.r_score, lost.f_score, lost.m_score, lost.segment) == (1, 1, 1, "lost")
    risk = v["风险"]
    # last order 200 days ago (≤365 → R2), 3 orders (≥3 → F3), 60,000 (≥50,000 → M3)
    assert (risk.r_score, risk.f_score, risk.m_score, risk.segment) == (2, 3, 3, "at_risk")
    typed = v["手填"]
    assert (typed.r_score, typed.segment, typed.recency_days) == (None, None, None)


def test_segment_rules_in_order(db):
    """Each rule of the table in docs/sales-value.md, evaluated by the SQL ``CASE`` itself."""
    from sqlalchemy import literal

    rules = value.DEFAULTS
    old_first = literal(ago(1000))
    cases = {
        (5, 5, 5): "champions",
        (4, 4, 3): "loyal",
        (3, 5, 1): "loyal",
        (5, 2, 5): "potential_loyalist",
        (3, 2, 2): "needs_attention",
        (2, 4, 4): "cant_lose",
        (1, 5, 5): "cant_lose",
        (2, 4, 2): "at_risk",
        (2, 3, 5): "at_risk",
        (2, 2, 5): "hibernating",
        (1, 2, 2): "lost",
    }
    for (r, f, m), expected in cases.items():
        expr = value.segment_sql(literal(r), literal(f), literal(m), old_first, TODAY, rules)
        assert db.session.scalar(select(expr)) == expected, (r, f, m)
    recent = literal(ago(30))
    expr = value.segment_sql(literal(5), literal(1), literal(1), recent, TODAY, rules)
    assert db.session.scalar(select(expr)) == "new"


# -- values -------------------------------------------------------------------------------------


def test_historical_current_potential_and_lifetime_value(db, shop):
    with company_scope(shop.id):
        v = values(db)
    new = v["新客"]
    # margin 30,000 - 8,000 = 22,000, all of it in the last 12 months
    assert new.historical_value == new.yearly_margin == 22_000
    assert pytest.approx(3.7907867694) == ANNUITY
    # current value: 22,000 × 3.7907867694 = 83,397.31
    assert new.current_value == Decimal("83397.31") == round(Decimal(22_000 * ANNUITY), 2)
    # LTV = historical + current = 22,000 + 83,397.31
    assert new.lifetime_value == Decimal("105397.31")
    # potential: share 40 % raised to the target 100 %: 22,000 × 100 / 40 = 55,000 a year,
    # × 3.7907867694 = 208,493.27
    assert new.potential_value == Decimal("208493.27")
    champion = v["冠军"]
    # 12 × 40,000 in the year + 20,000 two years ago; the cancelled order adds nothing
    assert champion.historical_value == 500_000
    assert champion.yearly_margin == 480_000
    assert champion.current_value == Decimal("1819577.65")  # 480,000 × 3.7907867694
    assert champion.lifetime_value == Decimal("2319577.65")
    lost = v["流失"]
    # nothing in the last 12 months: no current value; the margin of 5,000 is history
    assert (lost.historical_value, lost.current_value, lost.lifetime_value) == (5000, 0, 5000)
    # share 10 %: 0 × 100 / 10 is still 0
    assert lost.potential_value == 0


def test_potential_without_share_uses_purchase_potential_and_margin_rate(db, company):
    co = company(plugins=["sales"])
    with company_scope(co.id):
        customer(db, "有收入", potential=400_000, orders=[(10, 50_000, 40_000)])
        customer(db, "无订单", potential=400_000)
        customer(db, "已满", potential=400_000, share=100, orders=[(10, 50_000, 40_000)])
        value.recompute(today=TODAY)
        v = values(db)
    # no share: potential 400,000 × target 100 % × its margin rate 10,000 / 50,000 = 80,000 a
    # year, × 3.7907867694 = 303,262.94
    assert v["有收入"].potential_value == Decimal("303262.94")
    # no revenue of its own: the default margin rate 20 %: 80,000 a year again
    assert v["无订单"].potential_value == Decimal("303262.94")
    # share already at the target: potential = current = 10,000 × 3.7907867694
    assert v["已满"].potential_value == v["已满"].current_value == Decimal("37907.87")


def test_discount_rate_and_horizon_come_from_the_rules(db, shop):
    with company_scope(shop.id):
        value.save_rules({"discount_rate": "0", "horizon_years": 3})
        value.recompute(today=TODAY)
        new = values(db)["新客"]
    assert new.current_value == 66_000  # at 0 % the annuity factor is the horizon: 22,000 × 3
    assert value.annuity_factor(Decimal(10), 5) == Decimal("3.7907867694")


# -- ABC ----------------------------------------------------------------------------------------


def test_abc_boundaries_at_exactly_80_and_95_percent(db, company):
    co = company(plugins=["sales"])
    with company_scope(co.id):
        # yearly margins 50,000 / 30,000 / 15,000 / 5,000: cumulative 50 %, 80 %, 95 %, 100 %
        for name, margin in (("甲", 50_000), ("乙", 30_000), ("丙", 15_000), ("丁", 5_000)):
            customer(db, name, orders=[(10, margin + 1_000, 1_000)])
        customer(db, "旧单", orders=[(500, 9_000, 1_000)])  # no margin in the last 12 months
        customer(db, "没单")
        value.recompute(today=TODAY)
        v = values(db)
    classes = {name: row.abc_class for name, row in v.items()}
    assert classes == {"甲": "A", "乙": "A", "丙": "B", "丁": "C", "旧单": "C", "没单": None}
    assert v["乙"].abc_share == Decimal("80.00") and v["丙"].abc_share == Decimal("95.00")
    assert v["旧单"].abc_share is None
    with company_scope(co.id):  # one customer at a time ranks the same way
        ids = dict(db.session.execute(select(Customer.name, Customer.id)).all())
        db.session.execute(CustomerValue.__table__.update().values(abc_class=None, abc_share=None))
        value.recompute([ids["乙"], ids["丙"], ids["旧单"]], today=TODAY)
        v = values(db)
    assert [(v[n].abc_class, v[n].abc_share) for n in ("乙", "丙", "旧单")] == [
        ("A", Decimal("80.00")),
        ("B", Decimal("95.00")),
        ("C", None),
    ]


def test_the_largest_customer_is_class_a_even_above_the_a_share(db, company):
    co = company(plugins=["sales"])
    with company_scope(co.id):
        customer(db, "大户", orders=[(10, 86_000, 1_000)])  # 85 % of the margin alone
        customer(db, "小户", orders=[(10, 16_000, 1_000)])
        value.recompute(today=TODAY)
        v = values(db)
    assert (v["大户"].abc_class, v["小户"].abc_class) == ("A", "C")


def test_abc_may_rank_by_revenue(db, company):
    co = company(plugins=["sales"])
    with company_scope(co.id):
        customer(db, "高收入低毛利", orders=[(10, 90_000, 89_000)])
        customer(db, "低收入高毛利", orders=[(10, 10_000, 0)])
        value.save_rules({"abc_basis": "revenue"})
        value.recompute(today=TODAY)
        v = values(db)
    assert (v["高收入低毛利"].abc_class, v["低收入高毛利"].abc_class) == ("A", "C")


# -- the attack/defend quadrant ------------------------------------------------------------------


def test_quadrant_placement_in_all_five_regions_with_boundaries(db, company):
    co = company(plugins=["sales"])
    places = {
        # (purchase potential, share of wallet) → quadrant, resource
        "retain": (3_000_000, 70, "retain", "defend"),
        "retain at 60": (1_000_000, 60, "retain", "defend"),
        "acquire at 20": (1_000_000, 20, "acquire", "attack"),
        "acquire at 59": (5_000_000, 59, "acquire", "attack"),
        "harass": (5_000_000, 19, "harass", "attack"),
        "harass at 0": (1_000_000, 0, "harass", "attack"),
        "maintain": (999_999, 20, "maintain", "maintain"),
        "maintain high share": (10_000, 90, "maintain", "maintain"),
        "abandon": (999_999, 19, "abandon", "none"),
        "no share": (999_999, None, None, None),
        "no potential": (None, 50, None, None),
    }
    with company_scope(co.id):
        for name, (potential, share, _q, _r) in places.items():
            customer(db, name, potential=potential, share=share)
        value.recompute(today=TODAY)
        v = values(db)
    for name, (_p, _s, quadrant, resource) in places.items():
        assert (v[name].quadrant, v[name].resource) == (quadrant, resource), name


def test_quadrant_thresholds_come_from_the_rules(db, shop):
    with company_scope(shop.id):
        value.save_rules({"potential_threshold": 500_000, "share_high": 30, "share_low": 5})
        value.recompute(today=TODAY)
        v = values(db)
    assert v["流失"].quadrant == "acquire"  # 500,000 ≥ 500,000 and 5 ≤ 10 < 30
    assert v["新客"].quadrant == "retain"  # 40 ≥ 30


# -- revenue and value tiers follow orders --------------------------------------------------------


def test_revenue_and_value_tier_follow_orders_but_not_where_there_are_none(db, shop):
    with company_scope(shop.id):
        tiers = {c.name: (c.revenue, c.value_tier) for c in db.session.scalars(select(Customer))}
        moves = db.session.scalars(select(AuditLog.data).where(AuditLog.action == "classify")).all()
    assert tiers["冠军"] == (1_200_000, "A")  # the orders of the last 12 months
    assert tiers["新客"] == (30_000, "C")
    assert tiers["流失"] == (0, "D")  # typed 500,000 once; its orders now say 0
    assert tiers["手填"] == (500_000, "B")  # no orders: the typed revenue stays
    assert {"field": "value_tier", "from": "B", "to": "D"} in moves  # 流失 moved down


def test_recompute_of_one_customer_after_an_order(db, shop):
    with company_scope(shop.id):
        new = db.session.scalar(select(Customer).where(Customer.name == "新客"))
        before = values(db)["冠军"].computed_at
        db.session.add(
            Order(number="V-late", customer_id=new.id, ordered_on=ago(1), amount=Decimal(2_000_000))
        )
        db.session.flush()
        counts = value.recompute([new.id], today=TODAY)
        v = values(db)
        db.session.refresh(new)
    assert counts["customers"] == 1
    assert v["新客"].monetary == 2_030_000 and v["新客"].m_score == 5
    assert new.revenue == 2_030_000 and new.value_tier == "A"
    assert v["新客"].abc_class == "A"
    assert v["冠军"].computed_at == before  # the others are left alone until the night:
    assert v["冠军"].abc_class == "A"
    with company_scope(shop.id):
        value.recompute(today=TODAY)
        v = values(db)
    # 冠军's 480,000 now comes after 新客's 2,022,000: 2,502,000 / 2,517,000 = 99.4 % → C
    assert (v["新客"].abc_class, v["冠军"].abc_class) == ("A", "C")


def test_recompute_keeps_to_the_company_in_scope(db, shop, company):
    other = company(plugins=["sales"])
    with company_scope(other.id):
        customer(db, "别家", orders=[(10, 5_000, 0)])
        value.recompute(today=TODAY)
    with company_scope(shop.id):
        assert len(values(db)) == 5
        value.recompute(today=TODAY)
    with company_scope(other.id):
        assert list(values(db)) == ["别家"]
        assert db.session.scalar(select(Customer.revenue)) == 5_000


# -- statements: a constant number whatever the number of customers ------------------------------


def _customers(db, start, count):
    for i in range(start, start + count):
        customer(
            db,
            f"客户{i}",
            potential=100_000 * i,
            share=i % 100,
            orders=[(i % 400, 1_000 + i, 500), (i % 50, 2_000, 100)],
        )


def test_statement_count_does_not_grow_with_the_number_of_customers(db, company):
    co = company(plugins=["sales"])
    with company_scope(co.id):
        _customers(db, 0, 10)
        db.session.commit()
        with QueryCounter(db.engine) as few:
            value.recompute(today=TODAY)
        db.session.commit()
        _customers(db, 10, 190)
        db.session.commit()
        with QueryCounter(db.engine) as many:
            counts = value.recompute(today=TODAY)
        db.session.commit()
        assert counts["customers"] == 200
        assert db.session.scalar(select(func.count()).select_from(CustomerValue)) == 200
    assert many.count == few.count <= 9


# -- pages --------------------------------------------------------------------------------------


def test_value_page_distribution_list_filters_and_paging(app, client, login_as, shop):
    login_as("manager", shop)
    html = client.get("/sales/value").get_data(as_text=True)
    assert 'data-segment="champions"' in html and 'data-quadrant="acquire"' in html
    assert html.index("冠军") < html.index("新客") < html.index("流失")  # by LTV, highest first
    assert "2,319,578" in html  # the champion's LTV
    assert "计算于" in html and " UTC" not in html  # when, in the company's time
    only = client.get("/sales/value?segment=at_risk").get_data(as_text=True)
    assert "风险" in only and "冠军" not in only.split("customer-values")[1]
    assert client.get("/sales/value?abc=Z").status_code == 400
    assert client.get("/sales/value?sort=nope").status_code == 400
    assert client.get("/sales/value?after=garbage").status_code == 400
    app.config["LIST_PAGE_SIZE"] = 2
    first = client.get("/sales/value").get_data(as_text=True)
    assert first.count("data-customer=") == 2 and "after=" in first
    after = first.split('href="/sales/value?after=')[1].split('"')[0]
    second = client.get(f"/sales/value?after={after}").get_data(as_text=True)
    assert (
        "流失" in second.split("customer-values")[1]
        and "冠军" not in second.split("customer-values")[1]
    )


def test_value_list_queries_do_not_grow_with_the_page(app, db, client, login_as, company):
    co = company(plugins=["sales"])
    login_as("manager", co)
    with company_scope(co.id):
        _customers(db, 0, 3)
        value.recompute(today=TODAY)
        db.session.commit()
    client.get("/sales/value")
    db.session.expire_all()
    with QueryCounter(db.engine) as few:
        client.get("/sales/value")
    with company_scope(co.id):
        _customers(db, 3, 40)
        value.recompute(today=TODAY)
        db.session.commit()
    db.session.expire_all()
    with QueryCounter(db.engine) as many:
        html = client.get("/sales/value").get_data(as_text=True)
    assert html.count("data-customer=") == 43
    assert many.count == few.count


def test_customer_page_says_why(db, client, login_as, shop):
    login_as("admin", shop)
    with company_scope(shop.id):
        new = db.session.scalar(select(Customer).where(Customer.name == "新客"))
    html = client.get(f"/customers/{new.id}").get_data(as_text=True)
    assert 'class="value-why"' in html
    assert "R 5" in html and "20" in html  # the last order 20 days ago
    assert "22,000" in html and "3.79" in html and "105,397.31" in html  # LTV = 22,000 + …
    assert "40%" in html and "2,000,000" in html  # the quadrant's inputs


def test_recompute_button_and_who_may_press_it(db, client, login_as, shop, make_user):
    login_as("manager", shop)
    with company_scope(shop.id):
        db.session.execute(CustomerValue.__table__.delete())
        db.session.commit()
    answer = client.post("/sales/value/recompute")
    assert answer.status_code == 302
    with company_scope(shop.id):
        assert db.session.scalar(select(func.count()).select_from(CustomerValue)) == 5
        new_id = db.session.scalar(select(Customer.id).where(Customer.name == "新客"))
    login_as("sales_rep", shop)
    assert client.post("/sales/value/recompute").status_code == 403
    assert client.post("/sales/value/recompute", data={"customer_id": "x"}).status_code == 400
    login_as("viewer", shop)
    assert client.post("/sales/value/recompute", data={"customer_id": new_id}).status_code == 403
    login_as("service_agent", shop)
    one = client.post("/sales/value/recompute", data={"customer_id": new_id})
    assert one.status_code == 302 and one.headers["Location"].endswith(f"/customers/{new_id}")


def test_export_csv(client, login_as, shop):
    login_as("manager", shop)
    answer = client.get("/sales/value/export.csv?quadrant=acquire")
    assert answer.status_code == 200
    lines = answer.get_data(as_text=True).lstrip("\ufeff").strip().splitlines()
    assert lines[0].startswith("customer_id,code,name,value_tier,segment,r_score")
    assert len(lines) == 3 and "新客" in answer.get_data(as_text=True)  # 新客 and 手填
    login_as("sales_rep", shop)
    assert client.get("/sales/value/export.csv").status_code == 403


# -- rules --------------------------------------------------------------------------------------


def _rules_form(**changes):
    data = {k: str(v) for k, v in value.DEFAULTS.as_dict().items()}
    data.update({k: str(v) for k, v in changes.items()})
    return data


def test_rules_page_validates_saves_and_recomputes(db, client, login_as, shop):
    login_as("manager", shop)
    assert client.get("/sales/value/settings").status_code == 200
    bad = client.post("/sales/value/settings", data=_rules_form(abc_a=96, r5_days=100))
    assert bad.status_code == 422
    html = bad.get_data(as_text=True)
    assert 'data-field="abc_a"' in html and 'data-field="r5_days"' in html
    nan = client.post("/sales/value/settings", data=_rules_form(discount_rate="nan"))
    assert nan.status_code == 422 and 'data-field="discount_rate"' in nan.get_data(as_text=True)
    empty = client.post("/sales/value/settings", data=_rules_form(window_days=""))
    assert empty.status_code == 422
    ok = client.post("/sales/value/settings", data=_rules_form(potential_threshold=500_000))
    assert ok.status_code == 302
    with company_scope(shop.id):
        stored = db.session.scalar(
            select(CompanySetting.value).where(CompanySetting.key == "sales_value")
        )
        assert stored == {"potential_threshold": 500_000}  # only what differs from the defaults
        assert value.load_rules().potential_threshold == 500_000
        assert values(db)["流失"].quadrant == "harass"  # recomputed at once: 500,000 is high now
    login_as("sales_rep", shop)
    assert client.get("/sales/value/settings").status_code == 403


def test_rules_schema_refuses_bad_values_naming_the_field():
    with pytest.raises(value.RulesError) as refused:
        value.validate_rules({"share_low": 70, "share_high": 60, "colour": "red"})
    assert set(refused.value.errors) == {"colour"}  # unknown first; order checked once clean
    with pytest.raises(value.RulesError) as refused:
        value.validate_rules({"share_low": 70})
    assert set(refused.value.errors) == {"share_low"}
    with pytest.raises(value.RulesError) as refused:
        value.validate_rules({"abc_basis": "mood", "horizon_years": 0})
    assert set(refused.value.errors) == {"abc_basis", "horizon_years"}


# -- the plugin for one company, not another ----------------------------------------------------


def test_only_companies_with_sales_see_values(app, db, client, company, login_as, shop):
    login_as("admin", shop)
    dashboard = client.get("/dashboard/").get_data(as_text=True)
    assert "/sales/value" in dashboard
    assert client.get("/reports/sales_value_quadrant").status_code == 200
    plain = company()
    login_as("admin", plain)
    with company_scope(plain.id):
        c = Customer(name="无销售", status="existing")
        db.session.add(c)
        db.session.commit()
    assert "/sales/value" not in client.get("/dashboard/").get_data(as_text=True)
    assert client.get("/sales/value").status_code == 404
    assert client.get("/sales/value/settings").status_code == 404
    assert client.get("/reports/sales_value_quadrant").status_code == 404
    page = client.get(f"/customers/{c.id}").get_data(as_text=True)
    assert "value-why" not in page


def test_nightly_job_recomputes_companies_with_sales_only(db, company, shop):
    from core import jobs
    from core.db import utcnow

    plain = company()
    with company_scope(plain.id):
        db.session.add(Customer(name="无销售", status="existing", revenue=Decimal(7)))
        db.session.commit()
    done = jobs.run_due(utcnow() + timedelta(days=1), only="sales.value")
    assert [(scope, status) for _n, scope, status in done] == [(f"company:{shop.id}", "done")]
    with company_scope(plain.id):
        assert db.session.scalar(select(Customer.revenue)) == 7


# -- reports and API ------------------------------------------------------------------------------


def test_reports(client, login_as, shop):
    login_as("manager", shop)
    quadrant = client.get("/reports/sales_value_quadrant").get_data(as_text=True)
    assert "获取" in quadrant or "Acquire" in quadrant
    for name in ("sales_value_segments", "sales_value_abc", "sales_value_tiers"):
        assert client.get(f"/reports/{name}").status_code == 200, name
    pareto = client.get("/reports/sales_value_abc?view=pareto")
    assert pareto.status_code == 200
    assert client.get("/reports/sales_value_quadrant?measure=potential").status_code == 200


def test_api_reads_values_and_refuses_writes(db, client, make_user, shop):
    admin = make_user("admin", shop)
    _row, secret = tokens.issue(admin, shop.id, "bi")
    db.session.commit()
    headers = {"Authorization": f"Bearer {secret}"}
    listed = client.get("/api/v1/sales_customer_values?segment=champions", headers=headers)
    assert listed.status_code == 200
    data = listed.get_json()["data"]
    assert len(data) == 1 and data[0]["lifetime_value"] in ("2319577.65", 2319577.65)
    one = client.get(f"/api/v1/sales_customer_values/{data[0]['id']}", headers=headers)
    assert one.status_code == 200 and one.get_json()["segment"] == "champions"
    refused = client.post("/api/v1/sales_customer_values", json={}, headers=headers)
    assert refused.status_code == 405
