"""The fixed cost of an authenticated API read: how many SQL statements a request with a bearer
token sends before and around its own query, and that nothing read once per request outlives
the request (a change of a company's settings or of a member's role counts on the next one).

The requests go to an app of their own (``make_app``), as a server's worker would serve them:
each request has its own application context and database session, so nothing the test's own
session loaded can spare a statement.
"""

from __future__ import annotations

import threading
import time

import pytest
from limits.storage import storage_from_string
from sqlalchemy import event, select

from core import access, ratelimit, tokens
from core.models import Customer, Membership
from core.models.setting import CompanySetting
from core.tenancy import company_scope, unscoped

PHONE = "13800138000"
#: The fixed statements: the token with its user and membership (one join), the company's
#: enabled plugins, its record-rule and permission settings (one statement for both).
FIXED = 3
#: A customer list page adds its capped count, its rows (extension fields joined) and the
#: rows' tags.
CUSTOMER_LIST = FIXED + 3


@pytest.fixture
def served(app, db, company, make_user, make_app):
    """A company with customers and an admin's token; a separate app serving the API, with
    its test client, the headers of the token and the app's engine."""
    acme = company(plugins=("sales",))
    admin = make_user("admin", acme)
    with company_scope(acme.id):
        db.session.add_all(
            Customer(name=f"客户{n}", code=f"C{n}", phone=PHONE, owner_id=admin.id)
            for n in range(7)
        )
        db.session.commit()
    _row, secret = tokens.issue(admin, acme.id, "cost")
    db.session.commit()
    server = make_app()
    with server.app_context():
        engine = db.engine
    return acme, admin, server.test_client(), {"Authorization": f"Bearer {secret}"}, engine


def statements(engine, call) -> list[str]:
    """The SQL statements ``engine`` sends while ``call()`` runs (a ``before_cursor_execute``
    listener)."""
    sent: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        sent.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        call()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return sent


def test_an_authenticated_api_list_sends_a_small_fixed_number_of_statements(served):
    _acme, _admin, client, headers, engine = served

    def get_list() -> None:
        answer = client.get("/api/v1/customers?limit=5", headers=headers)
        assert answer.status_code == 200 and len(answer.get_json()["data"]) == 5

    get_list()  # the first use of the token stamps last_used_at (an UPDATE and a commit)
    sent = statements(engine, get_list)
    assert len(sent) <= CUSTOMER_LIST, "\n".join(sent)
    # The token, its user and the membership come in one statement ...
    assert sum("api_token" in s for s in sent) == 1
    assert not any(s.startswith("SELECT membership.") for s in sent), "\n".join(sent)
    # ... and the company's two access settings in one more.
    assert sum("FROM company_setting" in s for s in sent) == 1
    assert sum("FROM company_plugin" in s for s in sent) == 1
    # Another list: the same fixed three, then its count and its rows.
    other = statements(engine, lambda: client.get("/api/v1/tickets", headers=headers))
    assert len(other) <= FIXED + 2, "\n".join(other)


def test_a_change_of_settings_or_role_counts_on_the_very_next_request(db, served):
    acme, admin, client, headers, _engine = served

    def phones() -> set[str]:
        answer = client.get("/api/v1/customers?limit=50", headers=headers)
        assert answer.status_code == 200
        return {row["phone"] for row in answer.get_json()["data"]}

    def rows() -> int:
        return len(client.get("/api/v1/customers?limit=50", headers=headers).get_json()["data"])

    assert phones() == {PHONE} and rows() == 7
    with company_scope(acme.id):
        setting = CompanySetting(key=access.PERMISSIONS_KEY, value={"pii": ["admin"]})
        db.session.add(setting)
        db.session.commit()
    assert phones() == {"138****8000"}
    with company_scope(acme.id):
        setting.value = {}
        db.session.commit()
    assert phones() == {PHONE}

    with company_scope(acme.id):
        db.session.add(CompanySetting(key=access.SETTING_KEY, value={"admin": "own"}))
        db.session.scalar(select(Customer).where(Customer.code == "C0")).owner_id = None
        db.session.commit()
    assert rows() == 6

    with unscoped():
        member = db.session.scalar(
            select(Membership).where(
                Membership.user_id == admin.id, Membership.company_id == acme.id
            )
        )
        member.role = "viewer"  # no pii, and the default rule "all"
        db.session.commit()
    assert phones() == {"138****8000"} and rows() == 7
    with unscoped():
        db.session.delete(member)
        db.session.commit()
    assert client.get("/api/v1/customers", headers=headers).status_code == 401


def test_the_api_counts_in_process_without_a_thread_per_request(app, served):
    _acme, _admin, client, headers, _engine = served
    assert isinstance(app.extensions[ratelimit.EXTENSION].storage, ratelimit.ProcessCounts)
    client.get("/api/v1/tickets", headers=headers)
    time.sleep(0.05)  # limits' own memory storage would start a 10 ms timer thread per hit
    threads = threading.active_count()
    for _ in range(3):
        assert client.get("/api/v1/tickets", headers=headers).status_code == 200
        assert threading.active_count() == threads
        time.sleep(0.02)


def test_process_counts_restart_an_ended_window_and_sweep_the_others(monkeypatch):
    storage = storage_from_string(ratelimit.storage_uri("memory://"))
    assert isinstance(storage, ratelimit.ProcessCounts)
    assert ratelimit.storage_uri("redis://cache:6379/1") == "redis://cache:6379/1"
    now = [time.time()]
    monkeypatch.setattr(time, "time", lambda: now[0])
    storage.swept_at = now[0]
    assert [storage.incr("a", 10), storage.incr("a", 10), storage.incr("b", 10)] == [1, 2, 1]
    now[0] += 11
    assert storage.incr("a", 10) == 1 and storage.get("a") == 1
    assert "b" in storage.storage  # ended, not yet swept
    now[0] += ratelimit.SWEEP_SECONDS
    assert storage.incr("a", 10) == 1
    assert "b" not in storage.storage and "b" not in storage.expirations
