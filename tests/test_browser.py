"""In a real browser: a user logs in, sees the customer archive and switches language.

Needs Debian's chromium (``apt-get install chromium fonts-wqy-microhei``) and playwright (test
extra). Skipped with a message when chromium is missing, except in CI, which sets
``GUANXI_REQUIRE_BROWSER=1`` and must run it.
"""

from __future__ import annotations

from core.models import Customer
from core.tenancy import company_scope


def test_log_in_see_customers_and_switch_language(
    app, db, company, make_user, browser, live_url, log_in
):
    acme = company(name="康泰医药", plugins=["pharma"])
    make_user("manager", acme, email="li@example.com", password="s3cret-pass")
    with company_scope(acme.id):
        db.session.add(Customer(name="北京协和医院", kind="consumer"))
        db.session.commit()

    page = browser.new_page(locale="zh-CN")
    log_in(page, "li@example.com", "wrong")
    assert page.locator(".error, .flash").count() >= 1

    log_in(page, "li@example.com")
    page.goto(f"{live_url}/customers/")
    assert page.locator("text=北京协和医院").count() == 1
    assert "康泰医药" in page.inner_text("header")

    with page.expect_navigation():
        page.click("header button:has-text('English')")
    assert page.locator("header button:has-text('中文')").count() == 1
