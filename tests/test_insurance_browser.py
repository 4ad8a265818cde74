"""In a real browser: an agent enters a lead, works it and writes the policy application from
it; the manager issues the policy; the lead has become a customer and the agent finds the
first-year commission on this month's statement.

Needs Debian's chromium (see tests/conftest.py); skipped with a message when it is missing.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select

from core.models import Customer
from core.tenancy import company_scope
from core.testing import company_today
from plugins.insurance import agents, commissions
from plugins.insurance.models import Lead, Policy, Product


def test_a_lead_becomes_a_customer_with_an_issued_policy_and_a_commission(
    app, db, company, make_user, browser, live_url, log_in
):
    insurer = company(name="安联人寿", plugins=["insurance"])
    make_user("manager", insurer, email="manager@example.com", password="s3cret-pass")
    rep = make_user("sales_rep", insurer, email="agent@example.com", password="s3cret-pass")
    today = company_today()
    with company_scope(insurer.id):
        agent = agents.create_agent(
            agents.AgentInput(
                channel_name="张伟",
                channel_type="insurance_agent",
                licence_number="LIC-0001",
                licence_classes=["life"],
                licence_expires_on=today + timedelta(days=400),
                user_id=rep.id,
            )
        )
        product = Product(code="L1", name="终身寿险", product_class="life")
        db.session.add(product)
        db.session.flush()
        commissions.save_schedule(
            commissions.ScheduleInput(
                product_id=product.id,
                channel_type=None,
                first_year_rate=Decimal("30"),
                renewal_rate=Decimal("5"),
                override_rates=[],
                valid_from=today - timedelta(days=365),
                valid_to=None,
            )
        )
        db.session.commit()
        agent_id, product_id = agent.id, product.id

    # the agent enters a lead: the prospect is made with it, the agent is herself
    page = browser.new_page(locale="zh-CN")
    log_in(page, "agent@example.com")
    page.click("nav.menu summary >> text=保险")
    page.click("nav.menu >> text=线索")
    with page.expect_navigation():
        page.click("a[href$='/insurance/leads/new']")
    assert page.locator("select[name=agent_id]").input_value() == str(agent_id)
    page.fill("input[name=name]", "李秀英")
    page.fill("input[name=phone]", "13912345678")
    page.select_option("select[name=source]", "walk_in")
    with page.expect_navigation():
        page.click("form button[type=submit].primary")
    assert page.locator("[data-customer-status]").get_attribute("data-customer-status") == (
        "potential"
    )
    for step in ("contact", "propose"):
        with page.expect_navigation():
            page.click(f"form.step-{step} button")
    assert page.locator("[data-state]").first.get_attribute("data-state") == "proposal"

    # the application, from the lead: the customer is filled in
    with page.expect_navigation():
        page.click("a.button.primary >> text=新建保单")
    assert "李秀英" in page.locator("input[name=customer]").input_value()
    page.select_option("select[name=product_id]", str(product_id))
    page.select_option("select[name=agent_id]", str(agent_id))
    page.fill("input[name=premium]", "12000")
    page.select_option("select[name=frequency]", "annual")
    with page.expect_navigation():
        page.click("form.policy-form > button.primary:not([aria-hidden])")
    with company_scope(insurer.id):
        policy = db.session.scalars(select(Policy)).one()
        policy_id, number = policy.id, policy.number
    assert page.url.endswith(f"/insurance/policies/{policy_id}")
    with page.expect_navigation():
        page.click("form[data-transition=submit] button")
    # issuing is the underwriter's: the agent has no such button
    assert page.locator("form[data-transition=issue]").count() == 0

    # the manager issues it
    boss = browser.new_page(locale="zh-CN")
    log_in(boss, "manager@example.com")
    boss.goto(f"{live_url}/insurance/policies/{policy_id}")
    with boss.expect_navigation():
        boss.click("form[data-transition=issue] button")
    assert boss.locator("dd[data-field=issued_on]").inner_text() == today.isoformat()
    assert boss.locator("dd[data-field=order] a").count() == 1  # the premium's sales order

    with company_scope(insurer.id):
        db.session.expire_all()
        lead = db.session.scalars(select(Lead)).one()
        assert lead.state == "converted"
        assert db.session.get(Customer, lead.customer_id).status == "existing"

    # the agent's statement of this month: 30 % of ¥12,000
    page.click("nav.menu summary >> text=保险")
    page.click("nav.menu >> text=佣金")
    month = today.strftime("%Y-%m")
    row = page.locator("table.statements tbody tr", has_text=month)
    assert row.count() == 1
    with page.expect_navigation():
        row.locator("a").click()
    line = page.locator("table.statement-lines tr[data-kind=first_year]")
    assert number in line.inner_text()
    assert Decimal(line.locator("td[data-amount]").get_attribute("data-amount")) == Decimal(
        "3600.00"
    )
    assert Decimal(page.locator("dd.totals").get_attribute("data-total")) == Decimal("3600.00")
