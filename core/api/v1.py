"""``/api/v1``: the routes of every resource, authentication, limits and the OpenAPI document.

:func:`blueprint` builds the blueprint of one application from the resources the core and the
installed plugins declared (hook ``guanxi_api_resources``); a resource of a plugin the
company has not enabled answers 404, like the plugin's pages.

Authentication is a personal bearer token (``Authorization: Bearer gx_…``, see
:mod:`core.tokens`) or the browser session. Writes must be ``application/json``, which a
cross-site form cannot send, so the API is exempt from the form CSRF token. Each token (or
user, or address) may make ``API_RATE_LIMIT`` requests (Flask-Limiter, storage
``RATELIMIT_STORAGE_URI``: memory by default, Redis for several workers); bodies over
``MAX_CONTENT_LENGTH`` are refused with 413.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, current_app, g, jsonify, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import current_user

from core import ratelimit, workflow
from core.api import openapi
from core.api.errors import ApiError
from core.api.resources import Resource, check_if_match, user
from core.db import db
from core.tenancy import current_company_id

WRITES = ("POST", "PUT", "PATCH", "DELETE")


def _enabled() -> frozenset[str]:
    from core.web.context import enabled_plugins

    return frozenset(enabled_plugins()) | {"core"}


def _resources() -> dict[str, Resource]:
    return current_app.extensions["guanxi.plugins"].registry.api_resources


def _resource(name: str) -> Resource:
    resource = _resources().get(name)
    if resource is None or resource.plugin not in _enabled():
        raise ApiError(404, "not_found", f"no resource {name!r}")
    return resource


def _guard() -> Any:
    if not current_user.is_authenticated:
        raise ApiError(
            401,
            "unauthorized",
            "send a valid token (Authorization: Bearer gx_…) or log in",
            headers={"WWW-Authenticate": 'Bearer realm="guanxi"'},
        )
    if current_company_id() is None:
        raise ApiError(403, "no_company", "choose a company first (or use a token)")
    if request.method in WRITES and "api_token" not in g:
        _session_csrf()
    if request.method in WRITES and request.get_data(cache=True) and not request.is_json:
        raise ApiError(415, "unsupported_media_type", "send application/json")
    return None


def _session_csrf() -> None:
    """A write made with the login session -- a browser, the API page's "Try it out" -- must
    send the page's CSRF token in the ``X-CSRFToken`` header: the session cookie alone would
    let another site's page write as the user. A request with a bearer token needs none (the
    blueprint is exempt from the app-wide form check for that reason)."""
    from flask_wtf.csrf import CSRFError

    from core.web.helpers import check_csrf

    try:
        check_csrf(request.headers.get("X-CSRFToken"))
    except CSRFError as exc:
        raise ApiError(
            400, "csrf_failed", f"{exc.description} Send it in the X-CSRFToken header."
        ) from exc


def _body() -> Any:
    """The request's JSON body (an empty body counts as ``{}``); 400 when malformed."""
    if not request.get_data(cache=True):
        return {}
    return request.get_json()


def _etag(answer: Any, record: Any) -> Any:
    if hasattr(record, "version"):
        answer.headers["ETag"] = f'"{record.version}"'
    return answer


# -- views ------------------------------------------------------------------------------------


def list_records(resource: str) -> Any:
    res = _resource(resource)
    args = {key: request.args.getlist(key) for key in request.args}
    return jsonify(res.page(args))


def read_record(resource: str, record_id: int) -> Any:
    res = _resource(resource)
    record = res.get(record_id)
    return _etag(jsonify(res.one(record)), record)


def create_record(resource: str) -> Any:
    res = _resource(resource)
    record = res.save(_body())
    db.session.commit()
    answer = jsonify(res.one(record))
    answer.status_code = 201
    answer.headers["Location"] = f"{request.path.rstrip('/')}/{record.id}"
    return _etag(answer, record)


def update_record(resource: str, record_id: int) -> Any:
    res = _resource(resource)
    res.require_writer(None, transition=True)
    record = res.get(record_id)
    check_if_match(record)
    res.save(_body(), record)
    db.session.commit()
    return _etag(jsonify(res.one(record)), record)


def bulk_records(resource: str) -> Any:
    res = _resource(resource)
    result = res.bulk(_body())
    db.session.commit()
    return jsonify(result)


def _workflows(res: Resource) -> list[workflow.Workflow]:
    registry = current_app.extensions["guanxi.plugins"].registry
    enabled = _enabled()
    company_id = current_company_id()
    return [
        wf.for_company(company_id)
        for wf in registry.workflows.values()
        if wf.model is res.model and wf.plugin in enabled
    ]


def list_transitions(resource: str, record_id: int) -> Any:
    res = _resource(resource)
    record = res.get(record_id)
    steps = workflow.available(record, user())
    return jsonify(
        {
            "state": record.state,
            "transitions": [
                {"name": t.name, "label": t.text, "to": t.target, "inputs": list(t.inputs)}
                for t in steps
            ],
        }
    )


def take_transition(resource: str, record_id: int, transition: str) -> Any:
    res = _resource(resource)
    res.require_writer(None, transition=True)
    record = res.get(record_id)
    check_if_match(record)
    body = _body()
    if not isinstance(body, dict):
        raise ApiError(422, "invalid", "a JSON object is required", {"_body": ["An object."]})
    step = workflow.workflow_for(record).get(transition)
    unknown = set(body) - {"comment", "assignee_id", *(step.inputs if step else ())}
    if unknown:
        raise ApiError(
            422, "invalid", "unknown fields", {k[:60]: ["Unknown field."] for k in unknown}
        )
    try:
        inputs = res.transition_inputs(record, transition, body)
        workflow.transition(record, transition, user=user(), inputs=inputs)
        res.after_transition(record, transition, body)
        db.session.commit()
    except workflow.WorkflowError as exc:
        db.session.rollback()
        fields = {exc.field: [exc.message]} if exc.field else None
        code = "not_found" if "has no transition" in exc.message else exc.code
        status = 404 if code == "not_found" else exc.status
        raise ApiError(status, code, exc.message, fields) from exc
    return _etag(jsonify(res.one(record)), record)


def openapi_document() -> Any:
    enabled = _enabled()
    visible = [r for r in _resources().values() if r.plugin in enabled]
    transitions: dict[str, list[str]] = {}
    inputs: dict[str, list[str]] = {}
    for res in visible:
        steps = [t for wf in _workflows(res) for t in wf.transitions]
        if steps:
            transitions[res.name] = sorted({t.name for t in steps})
            inputs[res.name] = sorted({i for t in steps for i in t.inputs})
    # Companies with the same plugins share a document unless their own workflows (per-company
    # stages) give them other transitions.
    cache = current_app.extensions.setdefault("guanxi.openapi", {})
    key = (enabled, repr(sorted(transitions.items())), repr(sorted(inputs.items())))
    if key not in cache:
        cache[key] = openapi.document(visible, transitions, inputs)
    return jsonify(cache[key])


# -- assembly ---------------------------------------------------------------------------------


def _rate_key() -> str:
    token = g.get("api_token")
    if token is not None:
        return f"token:{token.id}"
    if current_user.is_authenticated:
        return f"user:{current_user.id}"
    return f"addr:{get_remote_address()}"


def blueprint(app: Flask) -> Blueprint:
    """The ``/api/v1`` blueprint of ``app``, with a route set per declared resource."""
    bp = Blueprint("api_v1", __name__, url_prefix="/api/v1")
    bp.before_request(_guard)
    bp.add_url_rule("/openapi.json", "openapi", openapi_document)
    manager = app.extensions["guanxi.plugins"]
    for name, res in manager.registry.api_resources.items():
        d = {"resource": name}
        bp.add_url_rule(f"/{name}", f"{name}_list", list_records, defaults=d)
        bp.add_url_rule(f"/{name}/<int:record_id>", f"{name}_read", read_record, defaults=d)
        if not res.read_only:
            bp.add_url_rule(
                f"/{name}", f"{name}_create", create_record, defaults=d, methods=["POST"]
            )
            bp.add_url_rule(
                f"/{name}/<int:record_id>",
                f"{name}_update",
                update_record,
                defaults=d,
                methods=["PATCH"],
            )
        if res.bulk_key and not res.read_only:
            bp.add_url_rule(
                f"/{name}/bulk", f"{name}_bulk", bulk_records, defaults=d, methods=["POST"]
            )
        if any(wf.model is res.model for wf in manager.registry.workflows.values()):
            bp.add_url_rule(
                f"/{name}/<int:record_id>/transitions",
                f"{name}_transitions",
                list_transitions,
                defaults=d,
            )
            bp.add_url_rule(
                f"/{name}/<int:record_id>/transitions/<transition>",
                f"{name}_transition",
                take_transition,
                defaults=d,
                methods=["POST"],
            )
    limiter = Limiter(
        _rate_key,
        app=app,
        storage_uri=ratelimit.storage_uri(app.config["RATELIMIT_STORAGE_URI"]),
        headers_enabled=True,
        key_prefix="guanxi",
    )
    limiter.limit(lambda: current_app.config["API_RATE_LIMIT"])(bp)
    ratelimit.init_app(app, limiter)
    return bp
