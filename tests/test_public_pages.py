"""Core extension points for plugins: public pages under ``/p/<company code>/``, counting
anonymous actions against a limit, and a plugin workflow that its own tickets start on."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.models import Customer, Obligation
from core.tenancy import company_scope
from core.tickets import open_ticket

pytestmark = pytest.mark.guanxi_plugins("tests.sample_plugin")


def test_a_public_page_answers_for_the_company_in_its_url_without_login(app, client, company):
    on, off = company("pub-on", plugins=["sample"]), company("pub-off")

    page = client.get("/p/pub-on/sample/hello")
    assert page.status_code == 200
    # The page is scoped to the URL's company and its own links keep the company code.
    assert page.text == f"hello {on.id} /p/pub-on/sample/hello"
    assert client.get("/p/pub-off/sample/hello").status_code == 404  # plugin not enabled
    assert client.get("/p/nobody/sample/hello").status_code == 404
    assert off.id != on.id


def test_a_logged_in_member_of_another_company_reads_the_public_page_as_anyone(
    app, client, company, login_as
):
    on = company("pub-on2", plugins=["sample"])
    login_as("admin", company(plugins=["sample"]))
    assert client.get("/p/pub-on2/sample/hello").text.startswith(f"hello {on.id} ")


def test_anonymous_posts_beyond_the_limit_are_refused(app, client, company):
    company("pub-rate", plugins=["sample"])
    app.config["WTF_CSRF_ENABLED"] = False
    codes = [client.post("/p/pub-rate/sample/hello").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert client.get("/p/pub-rate/sample/hello").status_code == 200  # reading is not counted


def test_a_plugin_workflow_selects_its_own_tickets_where_the_plugin_is_on(app, db, company):
    on, off = company(plugins=["sample"]), company()
    for co, workflow_name, state in ((on, "sample_issue", "logged"), (off, "ticket", "new")):
        with company_scope(co.id):
            customer = Customer(name="李先生")
            db.session.add(customer)
            db.session.flush()
            ticket = open_ticket(customer_id=customer.id, subject="门禁坏了", type="sample_issue")
            plain = open_ticket(customer_id=customer.id, subject="咨询", type="inquiry")
            db.session.commit()
            assert (ticket.workflow, ticket.state) == (workflow_name, state)
            assert (plain.workflow, plain.state) == ("ticket", "new")
            kinds = set(
                db.session.scalars(
                    select(Obligation.kind).where(Obligation.subject_id == ticket.id)
                )
            )
            # The core's SLA clocks run on tickets of the core's workflow only.
            expected = set() if co is on else {"ticket.first_response", "ticket.resolution"}
            assert kinds == expected


def test_every_page_carries_a_content_security_policy_without_inline_script(app, client):
    page = client.get("/login")
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "unsafe-eval" not in policy
    assert "frame-ancestors 'none'" in policy
    assert page.headers["X-Content-Type-Options"] == "nosniff"


def test_no_template_holds_inline_script():
    """The CSP allows scripts from files only: no <script> body, no on…= handler, anywhere."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    inline = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|\son[a-z]+\s*=\s*[\"']", re.I)
    found = [
        f"{path.relative_to(root)}: {match.group(0)}"
        for folder in ("core", "plugins", "examples")
        for path in (root / folder).rglob("*.html")
        for match in inline.finditer(path.read_text(encoding="utf-8"))
    ]
    assert not found, "inline script (move it to a static .js file):\n" + "\n".join(found)


def test_failed_logins_are_throttled_per_account(app, client, company, make_user):
    app.config["WTF_CSRF_ENABLED"] = False
    user = make_user("admin", company(), email="li@example.com", password="right")
    codes = [
        client.post("/login", data={"email": "li@example.com", "password": "wrong"}).status_code
        for _ in range(11)
    ]
    assert codes[:10] == [200] * 10 and codes[10] == 429
    # Even the right password waits now; another account is not affected.
    refused = client.post("/login", data={"email": "li@example.com", "password": "right"})
    assert refused.status_code == 429
    other = make_user("admin", company(), email="wu@example.com", password="right")
    assert (
        client.post("/login", data={"email": "wu@example.com", "password": "right"}).status_code
        == 302
    )
    assert user.id != other.id


@pytest.mark.parametrize("next_url", ["//evil.example", "/\\evil.example", "https://evil.example"])
def test_login_never_redirects_to_another_site(app, client, company, make_user, next_url):
    app.config["WTF_CSRF_ENABLED"] = False
    make_user("admin", company(), email="safe@example.com", password="right")
    answer = client.post(
        "/login",
        query_string={"next": next_url},
        data={"email": "safe@example.com", "password": "right"},
    )
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/dashboard")
