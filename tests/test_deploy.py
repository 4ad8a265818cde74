"""Behind a reverse proxy (docs/deploy.md): whose address the app sees, and secure cookies."""

from __future__ import annotations

from sqlalchemy import select

from core.models import AuditLog
from core.tenancy import unscoped


def _failed_login_address(db, make_app, company, make_user, **config) -> str:
    co = company()
    make_user("sales_rep", co, email="rep@example.com")
    app = make_app(**config)
    client = app.test_client()
    client.post(
        "/login",
        data={"email": "rep@example.com", "password": "wrong"},
        headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"},
        environ_base={"REMOTE_ADDR": "10.0.0.2"},  # nginx
    )
    with app.app_context(), unscoped():
        row = db.session.scalar(select(AuditLog).where(AuditLog.action == "login_failed"))
        return row.data["address"]


def test_behind_one_proxy_the_client_address_is_the_forwarded_one(db, make_app, company, make_user):
    assert _failed_login_address(db, make_app, company, make_user, PROXY_COUNT=1) == "203.0.113.9"


def test_without_a_proxy_a_forged_forwarded_header_is_ignored(db, make_app, company, make_user):
    assert _failed_login_address(db, make_app, company, make_user) == "10.0.0.2"


def test_over_https_the_session_cookie_is_secure(make_app, company, make_user, monkeypatch):
    monkeypatch.setenv("GUANXI_HTTPS", "1")
    co = company()
    make_user("sales_rep", co, email="rep@example.com")
    app = make_app()
    client = app.test_client()
    response = client.post(
        "/login",
        data={"email": "rep@example.com", "password": "secret"},
        base_url="https://crm.example.com",
    )
    cookies = response.headers.getlist("Set-Cookie")
    session = [c for c in cookies if c.startswith("session=")]
    assert session and all("Secure" in c and "HttpOnly" in c for c in session)
