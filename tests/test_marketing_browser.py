"""In a real browser: a manager builds a segment by filters and sees its count change as the
filters do, launches a campaign to it, reads the messages in the outbox and a customer follows
the unsubscribe link of one.

Needs Debian's chromium (see tests/conftest.py); skipped with a message when it is missing.
"""

from __future__ import annotations

import re

from sqlalchemy import select

from core import consent
from core.models import Consent, Customer
from core.tenancy import company_scope


def test_segment_count_campaign_and_outbox(app, db, company, make_user, browser, live_url, log_in):
    shop = company(name="康泰大药房", plugins=["marketing"])
    make_user("manager", shop, email="mkt@example.com", password="s3cret-pass")
    with company_scope(shop.id):
        for i in range(7):
            c = Customer(
                name=f"会员{i}",
                phone=f"1370000000{i}",
                lifecycle_stage="decline" if i < 5 else "maturity",
            )
            db.session.add(c)
            db.session.flush()
            if i in (0, 1, 2, 5):  # three in decline agreed to SMS promotions
                consent.record(c.id, "sms", "marketing", True, "门店登记表")
        db.session.commit()

    page = browser.new_page(locale="zh-CN")
    log_in(page, "mkt@example.com")

    page.click("nav.menu summary >> text=营销")
    page.click("nav.menu >> text=客户分群")
    page.click("a[href$='/marketing/segments/new']")
    # segment.js (deferred) must have run before a filter changes, or no count is asked for
    page.wait_for_load_state("load")
    count = page.locator("#segment-count")
    assert count.get_attribute("data-count") == "7"
    # the live count follows the filter before anything is submitted
    page.select_option("form.segment-filters select[name=lifecycle_stage]", "decline")
    page.wait_for_selector("#segment-count[data-count='5']")
    with page.expect_navigation():
        page.click("form.segment-filters button.show-count")
    assert page.locator("#segment-count .n").inner_text() == "5"

    page.fill("form.segment-save input[name=name]", "衰退期会员")
    with page.expect_navigation():
        page.click("form.segment-save button[type=submit]")
    assert page.locator("h1").inner_text() == "衰退期会员"
    assert page.locator("#segment-count").get_attribute("data-count") == "5"

    page.click("a[href*='/marketing/campaigns/new?segment_id=']")
    page.fill("input[name=name]", "老会员回归礼")
    page.select_option("select[name=channel]", "sms")
    page.fill("textarea[name=body]", "{name}您好，好久不见，凭此短信到店领取20元券。")
    with page.expect_navigation():
        page.click("button[name=launch]")
    assert page.locator("dd.state").get_attribute("data-state") == "sent"
    assert page.locator("dd.reach-segment").inner_text() == "5"
    assert page.locator("dd.messages-count").inner_text() == "3"

    page.click("a[href*='/marketing/outbox?campaign_id=']")
    rows = page.locator("table.outbox tbody tr[data-message]")
    assert rows.count() == 3
    texts = [rows.nth(i).locator(".body").inner_text() for i in range(3)]
    assert sorted(t.split("您好")[0] for t in texts) == ["会员0", "会员1", "会员2"]
    assert all("好久不见" in t for t in texts)

    # the customer opens the unsubscribe link at the end of the text
    link = re.search(r"https?://\S+/marketing/u/\S+", texts[0]).group(0)
    customer_name = texts[0].split("您好")[0]
    visitor = browser.new_page(locale="zh-CN")
    visitor.goto(link)
    with visitor.expect_navigation():
        visitor.click("form.unsubscribe-form button[type=submit]")
    assert visitor.locator("form.unsubscribe-form").count() == 0
    with company_scope(shop.id):
        row = db.session.execute(
            select(Consent.granted, Consent.source)
            .join(Customer, Customer.id == Consent.customer_id)
            .where(Customer.name == customer_name)
        ).one()
    assert row.granted is False and row.source.startswith("unsubscribe link")
