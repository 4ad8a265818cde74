"""Refresh the README's screenshots from a fresh demo (needs Debian's chromium and playwright).

    .venv/bin/python scripts/screenshots.py [NAME.png ...]

Builds the demo in a temporary instance folder, serves it on a free local port from a thread and
photographs the pages named in ``SHOTS`` (or only the files named on the command line) into
``docs/screenshots/``.
"""

from __future__ import annotations

import sys
import tempfile
import threading
from pathlib import Path

from werkzeug.serving import make_server

from core.app import create_app

OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

#: (file name, login, path or callable finding it, locale)
SHOTS = [
    ("login.png", None, "/login", "zh_CN"),
    ("dashboard-pharma.png", "manager@pharma.demo", "/dashboard/", "zh_CN"),
    ("customers-pharma.png", "manager@pharma.demo", "/customers/", "zh_CN"),
    ("customer-detail-pharma.png", "manager@pharma.demo", "first-hospital", "zh_CN"),
    ("tickets-property.png", "service_agent@property.demo", "/tickets/?sort=due", "zh_CN"),
    ("ticket-board-property.png", "service_agent@property.demo", "/tickets/board", "zh_CN"),
    ("ticket-detail-property.png", "service_agent@property.demo", "first-ticket", "zh_CN"),
    ("channels-pharma.png", "manager@pharma.demo", "/channels/", "zh_CN"),
    ("next-steps-insurance.png", "sales_rep@insurance.demo", "/interactions/next-steps", "zh_CN"),
    ("duplicates-insurance.png", "manager@insurance.demo", "/customers/duplicates", "zh_CN"),
    ("customers-insurance-en.png", "manager@insurance.demo", "/customers/", "en"),
    ("tickets-insurance-en.png", "manager@insurance.demo", "/tickets/", "en"),
    ("reports-property.png", "manager@property.demo", "/reports/", "zh_CN"),
    ("report-tickets-property.png", "manager@property.demo", "/reports/tickets", "zh_CN"),
    ("report-customers-pharma.png", "manager@pharma.demo", "/reports/customers", "zh_CN"),
    ("report-sla-property.png", "manager@property.demo", "/reports/sla", "zh_CN"),
    ("import-pharma.png", "admin@pharma.demo", "/imports/", "zh_CN"),
    ("list-columns-pharma.png", "admin@pharma.demo", "/settings/columns/", "zh_CN"),
    ("api-docs-pharma.png", "admin@pharma.demo", "/developer/api", "zh_CN"),
    ("tokens-pharma.png", "admin@pharma.demo", "/account/tokens/", "zh_CN"),
    ("sales-board-pharma.png", "manager@pharma.demo", "/sales/opportunities/board", "zh_CN"),
    ("report-funnel-insurance.png", "manager@insurance.demo", "/reports/sales_funnel", "zh_CN"),
    ("orders-insurance.png", "manager@insurance.demo", "/sales/orders", "zh_CN"),
    ("receivables-pharma.png", "manager@pharma.demo", "/sales/receivables", "zh_CN"),
    ("value-insurance.png", "manager@insurance.demo", "/sales/value", "zh_CN"),
    ("targets-pharma.png", "manager@pharma.demo", "/sales/targets", "zh_CN"),
    ("scorecard-property.png", "manager@property.demo", "/sales/scorecard", "zh_CN"),
    ("doctors-pharma.png", "manager@pharma.demo", "/pharma/doctors", "zh_CN"),
    ("doctor-tier-pharma.png", "manager@pharma.demo", "first-doctor", "zh_CN"),
    ("tiering-pharma.png", "manager@pharma.demo", "/pharma/tiering", "zh_CN"),
    ("visit-plan-pharma.png", "sales_rep@pharma.demo", "/pharma/visits/plan", "zh_CN"),
    ("visit-compliance-pharma.png", "manager@pharma.demo", "/pharma/visits/compliance", "zh_CN"),
    ("agents-insurance.png", "manager@insurance.demo", "/insurance/agents", "zh_CN"),
    ("leads-insurance.png", "agent@insurance.demo", "/insurance/leads", "zh_CN"),
    ("policies-insurance.png", "manager@insurance.demo", "/insurance/policies", "zh_CN"),
    ("policy-detail-insurance.png", "manager@insurance.demo", "first-policy", "zh_CN"),
    ("statement-insurance.png", "manager@insurance.demo", "first-statement", "zh_CN"),
    ("league-insurance.png", "manager@insurance.demo", "/reports/insurance_agent_league", "zh_CN"),
    (
        "report-renewals-insurance.png",
        "manager@insurance.demo",
        "/reports/insurance_renewals_due",
        "zh_CN",
    ),
    ("complaints-property.png", "service_agent@property.demo", "/property/complaints", "zh_CN"),
    ("complaint-detail-property.png", "eng@property.demo", "first-complaint", "zh_CN"),
    ("estates-property.png", "manager@property.demo", "/property/estates", "zh_CN"),
    ("complaint-form-public.png", None, "public-form", "zh_CN"),
    ("tracking-public.png", "service_agent@property.demo", "tracking-link", "zh_CN"),
    (
        "report-root-causes-property.png",
        "manager@property.demo",
        "/reports/property_root_causes",
        "zh_CN",
    ),
    (
        "report-satisfaction-property.png",
        "manager@property.demo",
        "/reports/property_satisfaction",
        "zh_CN",
    ),
    ("survey-campaign-property.png", "manager@property.demo", "first-campaign", "zh_CN"),
    ("segments-pharma.png", "manager@pharma.demo", "/marketing/segments/new?value_tier=A", "zh_CN"),
    ("campaigns-pharma.png", "manager@pharma.demo", "/marketing/campaigns", "zh_CN"),
    ("outbox-insurance.png", "manager@insurance.demo", "/marketing/outbox", "zh_CN"),
    ("loyalty-pharma.png", "manager@pharma.demo", "/marketing/loyalty", "zh_CN"),
    ("plugins-admin.png", "admin@pharma.demo", "/settings/plugins/", "zh_CN"),
    ("personal-data-pharma.png", "admin@pharma.demo", "personal-data", "zh_CN"),
]

#: "first-…" paths: the list to open and the address its first row's link starts with.
FIRST_ROW = {
    "first-customer": ("/customers/", "/customers/"),
    # a hospital with contacts, visits and consent answers in the demo
    "first-hospital": ("/customers/?q=上海第一人民医院", "/customers/"),
    "first-doctor": ("/pharma/doctors", "/pharma/doctors/"),
    "first-policy": ("/insurance/policies?state=issued", "/insurance/policies/"),
    "first-statement": ("/insurance/commissions/statements?state=paid", "/insurance/commissions/"),
    "first-ticket": ("/tickets/?state=in_progress", "/tickets/"),
    "first-complaint": ("/property/complaints?state=resolved", "/tickets/"),
    "first-campaign": ("/surveys/campaigns", "/surveys/campaigns/"),
}


def _public_form(page, base: str) -> None:
    """The resident's complaint form, past its first step (estate and building)."""
    page.goto(f"{base}/p/demo-property/property/complaint")
    page.select_option("#building_id", index=1)
    page.click("#place-form button[type=submit]")


def _tracking_link(page, base: str) -> None:
    """A resident's tracking page, reached from the link on a resolved complaint."""
    page.goto(f"{base}/property/complaints?state=closed")
    page.click("table tbody tr:first-child a[href^='/tickets/']")
    href = page.get_attribute("a.tracking", "href") or ""
    page.goto(href if href.startswith("http") else base + href)


def _personal_data(page, base: str) -> None:
    """A customer's personal-data page (administrators)."""
    page.goto(f"{base}/customers/")
    page.click("table tbody tr:first-child a[href^='/customers/']")
    page.goto(page.url.rstrip("/") + "/personal-data")


#: Paths that need more than opening an address.
STEPS = {
    "public-form": _public_form,
    "tracking-link": _tracking_link,
    "personal-data": _personal_data,
}


def main() -> None:
    from playwright.sync_api import sync_playwright

    from core import demo
    from core.migrations import upgrade

    folder = tempfile.mkdtemp(prefix="guanxi-shots-")
    app = create_app(
        {"INSTANCE_PATH": folder, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder}/d.db"}
    )
    with app.app_context():
        upgrade()
        demo.ensure(echo=lambda *_: None)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        wanted_names = set(sys.argv[1:])
        for name, login, path, locale in SHOTS:
            if wanted_names and name not in wanted_names:
                continue
            context = browser.new_context(
                viewport={"width": 1280, "height": 800},
                locale="zh-CN" if locale == "zh_CN" else "en-US",
            )
            page = context.new_page()
            if login:
                page.goto(f"{base}/login")
                page.fill("input[name=email]", login)
                page.fill("input[name=password]", "guanxi123")
                page.click("button[type=submit]")
                page.wait_for_load_state()
                wanted = "English" if locale == "en" else "中文"
                switch = page.locator(f"header button:has-text('{wanted}')")
                if switch.count():
                    switch.click()
                    page.wait_for_load_state()
            if path in STEPS:
                STEPS[path](page, base)
            elif path in FIRST_ROW:
                listing, link = FIRST_ROW[path]
                page.goto(base + listing)
                page.click(f"table tbody tr:first-child a[href^='{link}']")
            else:
                page.goto(base + path)
            page.wait_for_load_state()
            page.screenshot(path=str(OUT / name), full_page=True)
            context.close()
            print("wrote", OUT / name)
        browser.close()
    server.shutdown()


if __name__ == "__main__":
    main()
