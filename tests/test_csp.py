"""The Content-Security-Policy allows styles from the site's stylesheets only (``style-src 'self'``,
core/web/hardening.py): no template holds ``style="…"`` or ``<style>``, the header carries no
``'unsafe-inline'``, the generated width and indent classes are all in the stylesheet, and in a
real browser the pages that used to carry inline styles (dashboard bars, the channel tree, the
visit compliance meters, the customer value pages, a report chart, the API page) log no CSP
violation.

The browser test needs Debian's chromium (see tests/conftest.py); skipped when it is missing.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from core.db import utcnow
from core.models import Channel, Customer, Interaction
from core.tenancy import company_scope
from core.tickets import open_ticket

ROOT = Path(__file__).resolve().parent.parent
INLINE_STYLE = re.compile(r"\sstyle\s*=|<style\b", re.I)


def _templates() -> list[Path]:
    return [
        path
        for folder in ("core", "plugins", "examples")
        for path in sorted((ROOT / folder).rglob("*.html"))
        if "static" not in path.relative_to(ROOT).parts
    ]


def test_no_template_holds_an_inline_style():
    found = [
        f"{path.relative_to(ROOT)}:{text[: m.start()].count(chr(10)) + 1}: {m.group(0).strip()}"
        for path in _templates()
        for text in [path.read_text(encoding="utf-8")]
        for m in INLINE_STYLE.finditer(text)
    ]
    assert not found, "inline style (use a class in core/static/guanxi.css):\n" + "\n".join(found)


def test_our_scripts_and_charts_write_no_inline_style():
    scripts = [*(ROOT / "core" / "static").glob("*.js"), *(ROOT / "plugins").glob("*/static/*.js")]
    assert scripts
    writes = re.compile(r"setAttribute\(\s*[\"']style|style\s*=|<style|cssText", re.I)
    found = [
        f"{p.relative_to(ROOT)}: {m.group(0)}"
        for p in scripts
        for m in writes.finditer(p.read_text(encoding="utf-8"))
    ]
    assert not found, "\n".join(found)
    assert not INLINE_STYLE.search((ROOT / "core" / "charts.py").read_text(encoding="utf-8"))


def test_the_policy_has_no_unsafe_inline(app, client, login_as):
    from core.web.hardening import POLICY

    assert "unsafe-inline" not in POLICY and "style-src 'self';" in POLICY
    login_as("admin")
    for url in ("/login", "/dashboard/", "/channels/"):
        policy = client.get(url).headers["Content-Security-Policy"]
        assert "unsafe-inline" not in policy and "style-src 'self';" in policy, url


def test_the_generated_width_and_indent_classes_are_all_in_the_stylesheet():
    css = (ROOT / "core" / "static" / "guanxi.css").read_text(encoding="utf-8")
    for i in range(101):
        assert f".w-{i} {{ width: {i}%; }}" in css, i
    from core.channels import MAX_DEPTH

    for depth in range(MAX_DEPTH + 1):
        indent = f"{round(0.6 + depth * 1.4, 1):g}rem"
        assert f"td.depth-{depth} {{ padding-left: {indent}; }}" in css, depth


def test_width_class_rounds_and_clamps(app):
    from flask import render_template_string

    source = '{% from "macros.html" import width_class %}{{ width_class(s) }}'
    with app.test_request_context():
        got = [render_template_string(source, s=s) for s in (0, 0.374, 0.376, 1, 1.7, -0.2, None)]
    assert got == ["w-0", "w-37", "w-38", "w-100", "w-100", "w-0", "w-0"]


def _seed(app, db, company, make_user):
    """A company with sales and pharma: customers in two value tiers, tickets, a three-level
    channel tree, outstanding orders, doctors with visit quotas partly met, computed values."""
    from plugins.pharma import visits
    from plugins.pharma.models import DoctorTier
    from plugins.sales import value
    from plugins.sales.models import Order

    acme = company(name="康泰医药", plugins=["sales", "pharma"])
    user = make_user("admin", acme, email="csp@example.com", password="s3cret-pass")
    now = utcnow()
    with company_scope(acme.id):
        customers = [
            Customer(name=f"客户{i}", value_tier="AB"[i % 2], status="existing") for i in range(3)
        ]
        db.session.add_all(customers)
        db.session.flush()
        for i, customer in enumerate(customers):
            open_ticket(customer_id=customer.id, subject=f"工单{i}", assignee_id=user.id)
            for k in range(i + 1):
                db.session.add(
                    Order(
                        number=f"CSP-{i}-{k}",
                        customer_id=customer.id,
                        ordered_on=(now - timedelta(days=40 * k + 5)).date(),
                        amount=Decimal(10_000 * (i + 1)),
                        cost=Decimal(6_000 * (i + 1)),
                        state="open",
                    )
                )
        top = Channel(name="华南经销商", type="distributor")
        db.session.add(top)
        db.session.flush()
        mid = Channel(name="东区二级", type="distributor", parent_id=top.id)
        db.session.add(mid)
        db.session.flush()
        db.session.add(Channel(name="东区门店", type="direct", parent_id=mid.id))
        for n, (tier, done) in enumerate((("A", 1), ("B", 2), ("C", 0))):
            doc = Customer(name=f"医生{n}", kind="doctor", owner_id=user.id)
            db.session.add(doc)
            db.session.flush()
            db.session.add(DoctorTier(customer_id=doc.id, tier=tier))
            for _ in range(done):
                db.session.add(
                    Interaction(
                        customer_id=doc.id,
                        user_id=user.id,
                        kind="visit",
                        occurred_at=now - timedelta(minutes=30),
                        duration_minutes=20,
                    )
                )
        db.session.flush()
        visits.open_month()
        db.session.commit()
        value.recompute()
        db.session.commit()
    return customers[2].id


def test_pages_that_had_inline_styles_log_no_csp_violation(
    app, db, company, make_user, browser, live_url, log_in
):
    customer_id = _seed(app, db, company, make_user)
    page = browser.new_page(locale="zh-CN")
    page.set_default_timeout(15_000)
    violations: list[str] = []
    # Chromium logs "Applying inline style violates the following Content Security Policy
    # directive…" (older builds: "Refused to apply inline style…").
    page.on(
        "console",
        lambda msg: (
            violations.append(f"{page.url}: {msg.text}")
            if "Content Security Policy" in msg.text or "Refused to" in msg.text
            else None
        ),
    )
    page.on("pageerror", lambda exc: violations.append(f"{page.url}: {exc}"))
    log_in(page, "csp@example.com")
    page.wait_for_url(re.compile(r"/dashboard/"))
    # The bars are drawn: a fill as wide as its class says (the longest bar is the whole track).
    page.wait_for_load_state("networkidle")
    fills = page.locator("ul.bars .bar-fill")
    assert fills.count() >= 2
    widths = page.eval_on_selector_all(
        "ul.bars .bar-fill",
        "els => els.map(e => [e.className, e.getBoundingClientRect().width,"
        " e.parentElement.getBoundingClientRect().width])",
    )
    for name, width, track in widths:
        share = int(re.search(r"\bw-(\d+)\b", name).group(1))
        assert abs(width - track * share / 100) < 1, (name, width, track)

    page.goto(f"{live_url}/channels/")
    page.wait_for_load_state("networkidle")
    pads = page.eval_on_selector_all(
        "table.channel-tree tbody tr td:first-child",
        "els => els.map(e => parseFloat(getComputedStyle(e).paddingLeft))",
    )
    assert len(pads) == 3 and pads[0] < pads[1] < pads[2], pads
    assert abs((pads[1] - pads[0]) - 1.4 * 15) < 0.5, pads  # 1.4rem a level (15px root)

    page.goto(f"{live_url}/pharma/visits/compliance")
    page.wait_for_load_state("networkidle")
    meters = page.locator(".meter .meter-fill")
    assert meters.count() >= 1
    assert page.eval_on_selector(
        ".meter", "e => getComputedStyle(e).display + ' ' + getComputedStyle(e).width"
    ) == ("inline-block 90px")

    for url, shows in (
        ("/sales/value", "section.card.span-2"),
        (f"/customers/{customer_id}", "ul.value-why"),
        ("/sales/receivables", "table.ageing"),
        ("/reports/customers", "svg.chart"),
        # Swagger UI (vendored) styles through the CSSOM only: no exception needed for it.
        ("/developer/api", "#swagger-ui .swagger-ui"),
    ):
        answer = page.goto(f"{live_url}{url}")
        assert answer is not None and answer.ok, url
        page.wait_for_load_state("networkidle")
        page.wait_for_selector(shows)
    # An operation opened, with its example responses highlighted.
    page.click("#swagger-ui .opblock .opblock-summary >> nth=0")
    page.wait_for_selector("#swagger-ui .opblock.is-open .responses-wrapper")
    page.wait_for_timeout(300)
    assert violations == []
