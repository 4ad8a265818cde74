"""Acceptance walk (issue 3), in a real browser, as a new user would go:

log in, switch language, create a customer with a contact, find it by phone, log a visit, open a
ticket, move it to resolved, record a bad follow-up score and see the ticket reopened.
"""

from __future__ import annotations

import re

from sqlalchemy import select

from core.models import CalendarRecord, Contact, Customer, Interaction, ServiceTicket, Team
from core.tenancy import company_scope

PHONE = "139-1234-5678"


def test_a_new_user_walks_through_the_core_crm(app, db, company, make_user, browser, live_url):
    acme = company(name="锦苑物业", plugins=["property"])
    agent = make_user("manager", acme, email="zhou@example.com", password="s3cret-pass")
    agent.name = "周经理"
    with company_scope(acme.id):
        db.session.add(
            CalendarRecord(
                name="default",
                config={
                    "timezone": "Asia/Shanghai",
                    "hours": {str(d): [["00:00", "24:00"]] for d in range(7)},
                },
            )
        )
        db.session.add(Team(name="客服中心"))
        db.session.commit()

    page = browser.new_page(locale="zh-CN")
    page.set_default_timeout(10_000)

    # Log in: the dashboard greets the user in Chinese.
    page.goto(f"{live_url}/login")
    page.fill("input[name=email]", "zhou@example.com")
    page.fill("input[name=password]", "s3cret-pass")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/dashboard/"))
    assert "工作台" in page.inner_text("nav.menu")

    # Switch language to English and back.
    page.click("header button:has-text('English')")
    page.wait_for_load_state()
    assert "Dashboard" in page.inner_text("nav.menu")
    page.click("header button:has-text('中文')")
    page.wait_for_load_state()
    assert "工作台" in page.inner_text("nav.menu")

    # Create a customer.
    page.click("nav.menu a[href^='/customers']")
    page.click("a[href='/customers/new']")
    page.fill("input[name=name]", "王美丽")
    page.fill("input[name=phone]", PHONE)
    page.click("main form button[type=submit].primary")
    page.wait_for_url(re.compile(r"/customers/\d+$"))
    customer_url = page.url
    customer_id = int(customer_url.rsplit("/", 1)[1])

    # ... with a contact.
    page.click(f"a[href='/customers/{customer_id}/contacts/new']")
    page.fill("input[name=name]", "王先生")
    page.select_option("select[name=decision_role]", "decider")
    page.fill("input[name=phone]", "13800001111")
    page.click("main form button[type=submit].primary")
    page.wait_for_url(customer_url + "#contacts")
    assert "王先生" in page.inner_text("main")

    # Find the customer by phone, typed the way people type it.
    page.click("nav.menu a[href^='/customers']")
    page.fill("input[name=q]", "13912345678")
    page.press("input[name=q]", "Enter")
    page.wait_for_load_state()
    assert page.locator(f"a[href='/customers/{customer_id}']").count() >= 1
    page.click(f"a[href='/customers/{customer_id}']")
    page.wait_for_url(customer_url)

    # Log a visit.
    page.click(f"a[href*='/interactions/new?customer_id={customer_id}']")
    page.select_option("select[name=kind]", "visit")
    page.fill("input[name=purpose]", "上门了解漏水情况")
    page.fill("textarea[name=result]", "卫生间顶棚渗水，需报修")
    page.click("main form button[type=submit].primary")
    page.wait_for_load_state()
    page.goto(customer_url)
    assert "上门了解漏水情况" in page.inner_text("main")

    # Open a ticket for the customer.
    page.click(f"a[href*='/tickets/new?customer_id={customer_id}']")
    page.select_option("select[name=type]", "repair")
    page.fill("input[name=subject]", "卫生间顶棚渗水")
    page.click("main form button[type=submit].primary")
    page.wait_for_url(re.compile(r"/tickets/\d+$"))
    assert "卫生间顶棚渗水" in page.inner_text("main")

    # Move it to resolved: start work, then resolve with a note.
    with page.expect_navigation():
        page.click("form[data-transition=start] button[type=submit]")
    assert "处理中" in page.inner_text("main")
    resolve = page.locator("form[data-transition=resolve]")
    resolve.locator("textarea").fill("已更换防水层")
    with page.expect_navigation():
        resolve.locator("button[type=submit]").click()
    assert "已解决" in page.inner_text("main")

    # A bad follow-up score reopens it.
    follow_up = page.locator("form.followup-form")
    follow_up.locator("input[name$=customer_score]").fill("1")
    follow_up.locator("input[name$=quality_score]").fill("80")
    follow_up.locator("textarea[name$=result]").fill("还在漏水，很不满意")
    with page.expect_navigation():
        follow_up.locator("button[type=submit]").click()
    assert "处理中" in page.inner_text("main")

    with company_scope(acme.id):
        customer = db.session.get(Customer, customer_id)
        assert customer.phone == PHONE
        contact = db.session.scalar(select(Contact).where(Contact.customer_id == customer_id))
        assert contact.decision_role == "decider"
        kinds = set(
            db.session.scalars(
                select(Interaction.kind).where(Interaction.customer_id == customer_id)
            )
        )
        assert {"visit", "follow_up"} <= kinds
        ticket = db.session.scalar(
            select(ServiceTicket).where(ServiceTicket.customer_id == customer_id)
        )
        assert ticket.state == "in_progress"
