"""CSRF: every state-changing request of a browser session must carry the page's token.

The rules are read from the app's URL map, so a route a plugin adds tomorrow is covered without
anyone remembering it. With CSRF on (tests turn it off elsewhere), a logged-in administrator of
a company with every built-in plugin posts to every write rule without a token: the app-wide
check (Flask-WTF's ``CSRFProtect``) must refuse with 400 before the view runs, and nothing may
change. The views exempt from the app-wide check are listed here with the reason and are each
shown to check the token themselves; the JSON API refuses a session write without the
``X-CSRFToken`` header and accepts a bearer token without one.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from werkzeug.routing import Rule
from werkzeug.routing.converters import AnyConverter, IntegerConverter

from core.models import AuditLog, Customer

WRITES = {"POST", "PUT", "PATCH", "DELETE"}

#: Views exempt from the app-wide check, each with the reason; each checks the token itself.
EXEMPT = {
    # Upload views: the app-wide check would read the whole body before the view sets the size
    # limit it accepts, so an oversized file would end in a bare 413 (core.web.helpers).
    "core.web.imports.upload": "upload: checks the token itself after setting its body limit",
    # The public complaint form (photo upload); its check: tests/test_property_public.py::
    # test_the_form_checks_its_csrf_token_itself.
    "plugins.property.public.complaint": "public upload: checks the token itself",
}
#: Blueprints exempt from the app-wide check: the API (bearer tokens; session writes checked by
#: the API itself, see test_an_api_write_with_the_session_needs_the_header).
EXEMPT_BLUEPRINTS = {"api_v1"}


@pytest.fixture
def csrf_app(make_app: Any) -> Any:
    from core.db import db

    application = make_app(WTF_CSRF_ENABLED=True)
    with application.app_context():
        yield application
        db.session.rollback()
        db.session.remove()


@pytest.fixture
def admin(csrf_app: Any, company: Any, login_as: Any) -> Any:
    every = tuple(csrf_app.extensions["guanxi.plugins"].manifests)
    acme = company("csrf-co", plugins=every)
    client = csrf_app.test_client()
    login_as("admin", acme, client=client)
    return client, acme


def _url(rule: Rule) -> str:
    """The rule's path with a value for each argument its converter accepts."""
    values: dict[str, Any] = {}
    for name in rule.arguments:
        converter = rule._converters[name]  # type: ignore[attr-defined]
        if isinstance(converter, IntegerConverter):
            values[name] = 1
        elif isinstance(converter, AnyConverter):
            values[name] = sorted(converter.items)[0] if hasattr(converter, "items") else "x"
        else:
            values[name] = "csrf-co" if name in ("company", "code", "company_code") else "x"
    return rule.build(values, append_unknown=False)[1]  # type: ignore[index]


def _writes(app: Any) -> list[Rule]:
    return [
        r
        for r in app.url_map.iter_rules()
        if set(r.methods or ()) & WRITES and r.endpoint.split(".")[0] not in EXEMPT_BLUEPRINTS
    ]


def _view_name(app: Any, endpoint: str) -> str:
    view = app.view_functions[endpoint]
    return f"{view.__module__}.{view.__name__}"


def _counts(db: Any) -> tuple[int, int]:
    from core.tenancy import unscoped

    with unscoped():
        return (
            db.session.scalar(select(func.count()).select_from(Customer)),
            db.session.scalar(select(func.count()).select_from(AuditLog)),
        )


def test_every_form_write_without_the_token_is_refused(csrf_app, admin, db):
    client, _acme = admin
    before = _counts(db)
    checked, accepted = 0, []
    for rule in _writes(csrf_app):
        if _view_name(csrf_app, rule.endpoint) in EXEMPT:
            continue
        for method in sorted(set(rule.methods or ()) & WRITES):
            answer = client.open(_url(rule), method=method, data={"name": "无令牌"})
            checked += 1
            if answer.status_code != 400 or b"CSRF" not in answer.data:
                accepted.append(f"{method} {rule.rule} → {answer.status_code}")
    assert not accepted, "writes that did not ask for the CSRF token:\n" + "\n".join(accepted)
    assert checked > 100  # the sweep reached the plugins' routes too
    db.session.expire_all()
    assert _counts(db) == before


def test_the_exempt_views_are_the_listed_ones_and_check_the_token_themselves(csrf_app, admin, db):
    from core.app import csrf

    client, _acme = admin
    exempt = {v for v in csrf._exempt_views}  # type: ignore[attr-defined]
    assert exempt == set(EXEMPT), "a view left the app-wide CSRF check; list it with a reason"
    assert {bp.name for bp in csrf._exempt_blueprints} == EXEMPT_BLUEPRINTS  # type: ignore[attr-defined]
    before = _counts(db)
    refused = client.post("/imports/", data={"kind": "customers"})
    assert refused.status_code == 400 and b"CSRF" in refused.data
    db.session.expire_all()
    assert _counts(db) == before


def test_an_api_write_with_the_session_needs_the_header(csrf_app, admin, db):
    import re

    from core.tenancy import unscoped

    client, _acme = admin
    body = {"name": "会话写入", "kind": "business"}
    refused = client.post("/api/v1/customers", json=body)
    assert refused.status_code == 400
    assert refused.get_json()["error"]["code"] == "csrf_failed"
    with unscoped():
        assert db.session.scalar(select(Customer.id).where(Customer.name == "会话写入")) is None

    page = client.get("/developer/api").get_data(as_text=True)
    token = re.search(r'data-csrf="([^"]+)"', page).group(1)
    done = client.post("/api/v1/customers", json=body, headers={"X-CSRFToken": token})
    assert done.status_code == 201, done.get_data(as_text=True)


def test_a_bearer_token_needs_no_csrf_token(csrf_app, company, make_user, db):
    from core import tokens

    acme = company("csrf-api", plugins=())
    user = make_user("admin", acme)
    _row, secret = tokens.issue(user, acme.id, "ci")
    db.session.commit()
    answer = csrf_app.test_client().post(
        "/api/v1/customers",
        json={"name": "令牌写入", "kind": "business"},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert answer.status_code == 201, answer.get_data(as_text=True)
