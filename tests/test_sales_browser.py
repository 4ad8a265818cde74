"""In a real browser: a rep moves an opportunity through the funnel on the board (menu and
drag and drop) and wins it on its page, then finds it in the funnel report.

Needs Debian's chromium (see tests/conftest.py); skipped with a message when it is missing.
"""

from __future__ import annotations

from decimal import Decimal

from core.models import Customer
from core.tenancy import company_scope
from plugins.sales import funnel


def test_move_an_opportunity_to_won_and_see_it_in_the_funnel_report(
    app, db, company, make_user, browser, live_url, log_in
):
    acme = company(name="锦苑物业", plugins=["sales"])
    rep = make_user("sales_rep", acme, email="rep@example.com", password="s3cret-pass")
    with company_scope(acme.id):
        customer = Customer(name="华夏商贸有限公司", owner_id=rep.id)
        db.session.add(customer)
        db.session.flush()
        opp = funnel.open_opportunity(
            rep, name="设备升级项目", customer_id=customer.id, amount=Decimal(250000)
        )
        db.session.commit()
        opp_id = opp.id

    page = browser.new_page(locale="zh-CN")
    log_in(page, "rep@example.com")

    page.click("nav.menu summary >> text=销售")
    page.click("nav.menu >> text=销售机会")
    page.click("nav.tabs a[href$='/sales/opportunities/board']")
    card = page.locator(f"article[data-opportunity='{opp_id}']")
    assert card.locator("xpath=ancestor::section").get_attribute("data-state") == "target"

    # drag the card onto the next column
    with page.expect_navigation():
        card.drag_to(page.locator("section[data-state='analysis']"))
    card = page.locator(f"article[data-opportunity='{opp_id}']")
    assert card.locator("xpath=ancestor::section").get_attribute("data-state") == "analysis"

    # the card's menu: on to "uncover needs"
    card.locator("select[name=transition]").select_option("to_needs")
    with page.expect_navigation():
        card.locator("form.move button[type=submit]").click()
    card = page.locator(f"article[data-opportunity='{opp_id}']")
    assert card.locator("xpath=ancestor::section").get_attribute("data-state") == "needs"

    # win it on its page
    card.locator("a").first.click()
    page.wait_for_selector("form[data-transition='win']")
    with page.expect_navigation():
        page.click("form[data-transition='win'] button")
    assert page.locator(".bar [data-stage='won']").count() == 1
    assert page.locator("ol.history li[data-transition='win']").count() == 1

    # the funnel report counts it, and its "won" row leads back to it
    page.goto(f"{live_url}/reports/sales_funnel")
    won = page.locator("table.report-table tr", has=page.locator("a[href*='stage=won']"))
    assert won.locator("td").nth(1).inner_text().strip() == "1"
    with page.expect_navigation():
        won.locator("a").first.click()
    assert page.locator(f"tr[data-opportunity='{opp_id}']").count() == 1
    assert "设备升级项目" in page.inner_text("table.opportunities")
