"""Every state-changing route writes an audit row (docs/security.md, "Audit").

One company with every built-in plugin enabled is filled by the demo code (the same seeding as
the isolation test). The test reads every URL rule with POST/PUT/PATCH/DELETE from
``app.url_map.iter_rules()`` at collection time -- a route added tomorrow is a new test -- and
for each one:

* submits the forms the company's own pages show for that rule (found by a crawl of the pages
  as the admin, with the values the pages render; empty fields get plausible values by their
  name and type, and a second try edits the text fields so that an edit form saves a change);
* on the JSON API (bearer token): creates a copy of an existing record, changes a text field of
  one, takes each transition the API offers for a few records, sends a bulk of one.

Every statement the database runs is watched: a request that ran an ``INSERT``, ``UPDATE`` or
``DELETE`` on any table but ``audit_log`` must have inserted into ``audit_log`` too. A rule
must either have changed something in one of its requests, or be in :data:`ALLOW` with the
reason it writes nothing worth auditing, or in :data:`COVERED_ELSEWHERE` -- the rules this
crawl cannot exercise (forms no page shows as posted, uploads, public pages, API records its
copy cannot create), each proven by a named test of tests/test_audit_rules.py that makes the
real request and checks the change and its audit row (action, entity, old → new values); a
test here checks that every named test exists -- or in :data:`XFAIL` (strict: known gaps,
failing the day they are fixed so that the entry goes; empty today).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from core.testing import company_today
from tests.test_isolation import _login, _match, _Page, _seed

CODE = "audit-co"
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
#: Pages crawled per endpoint that takes path values, and forms kept per write endpoint.
PER_ENDPOINT, FORMS = 8, 4
#: Records of an API resource whose transitions are tried.
TRANSITION_RECORDS = 4

#: Write rules that change nothing a company must answer for, with the reason.
ALLOW: dict[str, str] = {
    "auth.login": "the crawl is logged in and sees no login form; tests/test_audit.py checks "
    "that logins and failed logins are audited",
    "auth.language": "the user's interface language (their own preference, not company data)",
    "auth.switch": "switches the company shown in the session; writes no row",
    "notifications.mark_read": "marks the user's own notification read",
    "notifications.mark_all_read": "marks the user's own notifications read",
    "notifications.open_": "marks the user's own notification read and follows its link",
}

#: Rules no page shows a form for, submitted with the forms of another rule (its path
#: rewritten): the plugins page shows "disable" for every enabled plugin, and this enables
#: again the one the test of "disable" switched off.
DERIVED: dict[str, tuple[str, str, str]] = {
    "plugins_admin.enable": ("plugins_admin.disable", "/disable", "/enable"),
}

NO_FORM = "not exercised yet: the crawl of the company's pages finds no form that posts to it"
NO_CHANGE = "not exercised yet: the company's form for it, filled by the test, saves no change"
NOT_API = "not exercised yet: the copy or edit of a record the test sends is refused"

#: Write rules the crawl cannot exercise (no page shows a form that posts to them as they are
#: posted, an upload, a public page, a record the API's copy cannot create), proven instead by a
#: test of their own that makes the real request and checks the change and its audit row:
#: rule -> that test. :func:`test_covered_elsewhere_names_real_tests` checks that each exists.
RULES = "tests/test_audit_rules.py"
COVERED_ELSEWHERE: dict[str, str] = {
    "api_v1.insurance_agents_create": f"{RULES}::test_api_insurance_agents_create",
    "api_v1.insurance_agents_update": f"{RULES}::test_api_insurance_agents_update",
    "api_v1.sales_orders_create": f"{RULES}::test_api_sales_orders_create",
    "api_v1.sales_payments_update": f"{RULES}::test_api_sales_payments_update",
    "channels.add_claim": f"{RULES}::test_channel_add_claim",
    "consent.record": f"{RULES}::test_record_consent",
    "identify.merge_page": f"{RULES}::test_customer_merge_page",
    "imports.mapping": f"{RULES}::test_import_upload_and_mapping",
    "imports.resume": f"{RULES}::test_import_resume",
    "imports.upload": f"{RULES}::test_import_upload_and_mapping",
    "insurance.agent_edit": f"{RULES}::test_insurance_agent_edit",
    "insurance.agent_new": f"{RULES}::test_insurance_agent_new",
    "insurance.lead_transition": f"{RULES}::test_insurance_lead_transition",
    "insurance.policy_new": f"{RULES}::test_insurance_policy_new",
    "insurance.policy_renewal": f"{RULES}::test_insurance_policy_renewal",
    "insurance.schedules": f"{RULES}::test_insurance_schedules",
    "interactions.create": f"{RULES}::test_interaction_create",
    "interactions.done": f"{RULES}::test_interaction_done",
    "interactions.edit": f"{RULES}::test_interaction_edit",
    "marketing.campaign_launch": f"{RULES}::test_marketing_campaign_launch",
    "marketing.redeem": f"{RULES}::test_marketing_redeem",
    "marketing.segment_import": f"{RULES}::test_marketing_segment_import",
    "marketing_public.unsubscribe": f"{RULES}::test_marketing_public_unsubscribe",
    "pharma.doctor_override": f"{RULES}::test_pharma_doctor_override",
    "pharma.override_decide": f"{RULES}::test_pharma_override_decide",
    "pharma.scheme_activate": f"{RULES}::test_pharma_scheme_activate",
    "pharma.scheme_edit": f"{RULES}::test_pharma_scheme_edit",
    "pharma.scheme_new": f"{RULES}::test_pharma_scheme_new",
    "pharma.visits_new": f"{RULES}::test_pharma_visits_new",
    "plugins_admin.settings": f"{RULES}::test_plugin_settings",
    "privacy.page": f"{RULES}::test_privacy_page_erasure",
    "property.complaint_dispatch": f"{RULES}::test_property_complaint_dispatch",
    "property.complaint_new": f"{RULES}::test_property_complaint_new",
    "property.residence_end": f"{RULES}::test_property_residence_end",
    "property.resident_link": f"{RULES}::test_property_resident_link",
    "property_public.complaint": f"{RULES}::test_property_public_complaint",
    "sales.opportunity_call": f"{RULES}::test_sales_opportunity_call",
    "sales.order_edit": f"{RULES}::test_sales_order_edit",
    "sales.order_new": f"{RULES}::test_sales_order_new",
    "sales.payment_reverse": f"{RULES}::test_sales_payment_reverse",
    "surveys.campaign_step": f"{RULES}::test_surveys_campaign_step",
    "surveys.dimension_add": f"{RULES}::test_surveys_dimension_add",
    "surveys.phone_entry": f"{RULES}::test_surveys_phone_entry",
    "surveys.question_delete": f"{RULES}::test_surveys_question_delete",
    "surveys_public.answer": f"{RULES}::test_surveys_public_answer",
    "surveys_public.stop": f"{RULES}::test_surveys_public_stop",
    "tickets.assignment": f"{RULES}::test_ticket_assignment",
    "tickets.record_followup": f"{RULES}::test_ticket_record_followup",
    "tickets.settings_sla": f"{RULES}::test_ticket_settings_sla",
}

#: Write rules the test cannot yet make change anything, so their audit is unproven (strict
#: expected failures: one that starts changing rows passes, and its entry must go -- or it
#: fails for a missing audit row, which is a bug to fix). Empty is the goal: a rule the crawl
#: cannot exercise gets a test in :data:`RULES` and goes to :data:`COVERED_ELSEWHERE`.
XFAIL: dict[str, str] = {}


def _write_endpoints() -> list[str]:
    from core.app import create_app

    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "SECRET_KEY": "collect"})
    return sorted({r.endpoint for r in app.url_map.iter_rules() if set(r.methods or ()) & WRITES})


ENDPOINTS = _write_endpoints()


class Unexercised(AssertionError):
    """No request of the rule changed anything: its audit is unproven."""


def _params() -> list[Any]:
    # Only "unexercised" is expected of an XFAIL rule: a write without an audit row fails.
    return [
        pytest.param(e, marks=pytest.mark.xfail(strict=True, raises=Unexercised, reason=XFAIL[e]))
        if e in XFAIL
        else e
        for e in ENDPOINTS
        if e not in ALLOW and e not in COVERED_ELSEWHERE
    ]


# -- watching the statements ---------------------------------------------------------------

_STATEMENT = re.compile(r'^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"?(\w+)"?', re.IGNORECASE)


@dataclass
class Watch:
    """Tables written by the statements run since :meth:`reset`."""

    tables: list[str] = field(default_factory=list)

    def reset(self) -> None:
        self.tables.clear()

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        found = _STATEMENT.match(statement)
        if found:
            self.tables.append(found.group(1).lower())

    @property
    def changed(self) -> list[str]:
        return sorted({t for t in self.tables if t != "audit_log"})

    @property
    def audited(self) -> bool:
        return "audit_log" in self.tables


@dataclass
class World:
    app: Any
    company_id: int
    admin_id: int
    secret: str
    forms: dict[str, list[tuple[str, dict[str, str], dict[str, str]]]]
    watch: Watch
    ids: dict[str, str] = field(default_factory=dict)  # "<table>_id" -> one of the company's rows
    counts: dict[str, int] = field(default_factory=lambda: {"requests": 0, "changes": 0})


class _TypedPage(_Page):
    """A page's links and forms, plus each form field's input type."""

    def __init__(self) -> None:
        super().__init__()
        self.types: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if a.get("name") and tag in ("input", "textarea", "select"):
            self.types.setdefault(a["name"], a.get("type", tag) if tag == "input" else tag)
        super().handle_starttag(tag, attrs)


#: Pages that show no form (files, the API's JSON, reports and charts): not crawled.
SKIP = ("/static", "/api/", "/reports/")


def _crawl(app: Any, user_id: int, company_id: int) -> dict[str, list[Any]]:
    """Per write endpoint: (action URL, fields, field types) of the forms the company's pages
    show, from a visit of every page without parameters and up to two of each linked page."""
    adapter = app.url_map.bind("localhost")
    client = app.test_client()
    _login(client, user_id, company_id)
    queue = [r.rule for r in app.url_map.iter_rules() if not r.arguments and "GET" in r.methods]
    seen: set[str] = set()
    per_endpoint: dict[str, int] = {}
    forms: dict[str, list[Any]] = {}
    while queue:
        url = queue.pop(0)
        if url in seen or url.startswith(SKIP) or "export" in url:
            continue
        seen.add(url)
        resp = client.get(url)
        if resp.status_code != 200 or "html" not in resp.content_type:
            continue
        page = _TypedPage()
        page.feed(resp.get_data(as_text=True))
        for link in page.links:
            found = _match(adapter, link, "GET")
            if found and found[1] and per_endpoint.get(found[0], 0) < PER_ENDPOINT:
                per_endpoint[found[0]] = per_endpoint.get(found[0], 0) + 1
                queue.append(urlsplit(link).path)
        for action, method, fields in page.forms:
            found = _match(adapter, action or url, "POST") if method == "POST" else None
            if found is not None and len(forms.setdefault(found[0], [])) < FORMS:
                forms[found[0]].append(
                    (urlsplit(action or url).path, fields, dict(page.types), url)
                )
    return forms


def _fresh(client: Any, page_url: str, action: str, fields: dict[str, str]) -> dict[str, str]:
    """The fields of the form posting to ``action`` as ``page_url`` shows it now: an earlier
    rule may have changed the record since the crawl (its ``version``, its state)."""
    resp = client.get(page_url)
    if resp.status_code != 200 or "html" not in resp.content_type:
        return fields
    page = _TypedPage()
    page.feed(resp.get_data(as_text=True))
    for form_action, _method, now in page.forms:
        if urlsplit(form_action or page_url).path == action and now.keys() == fields.keys():
            return now
    return fields


@pytest.fixture(scope="module")
def world(_guanxi_schema: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from sqlalchemy import event

    from core import tokens
    from core.app import create_app
    from core.db import db
    from core.models import User
    from core.tenancy import company_scope
    from core.testing import _client_class, _config, _wipe

    started = time.monotonic()
    app = create_app(
        _config(_guanxi_schema, tmp_path_factory.mktemp("audit"), API_RATE_LIMIT="1000000/minute")
    )
    app.test_client_class = _client_class()
    with app.app_context(), pytest.MonkeyPatch.context() as patch:
        import plugins.property.demo as property_demo

        patch.setattr(property_demo, "WEEKS", 2)
        patch.setattr(property_demo, "RESIDENTS", 24)
        company = _seed(db, CODE, "boss@audit-co.test", full=True)
        admin = db.session.scalar(sa.select(User).where(User.email == f"admin@{CODE}.demo"))
        with company_scope(company.id):
            secret = tokens.issue(admin, company.id, "audit coverage")[1]
            db.session.commit()
        seeded = time.monotonic()
        forms = _crawl(app, admin.id, company.id)
        crawled = time.monotonic() - seeded
        print(f"\naudit: seeded in {seeded - started:.1f}s, crawled in {crawled:.1f}s")
        watch = Watch()
        w = World(app, company.id, admin.id, secret, forms, watch, _first_ids(db, company.id))
        event.listen(db.engine, "before_cursor_execute", watch)
        print(f"\naudit world ready in {time.monotonic() - started:.1f}s")
        try:
            yield w
        finally:
            event.remove(db.engine, "before_cursor_execute", watch)
            print(f"\naudit coverage: {w.counts}")
            db.session.rollback()
            db.session.remove()
            _wipe(db.engine)
            db.engine.dispose()


# -- requests --------------------------------------------------------------------------------

NUMBERS = re.compile(
    r"amount|points|price|premium|probability|days|minutes|hours|count|quantity|score|rate|"
    r"sequence|target|value|quota|percent|threshold|limit|weight|min|max|budget|sum"
)
TEXTS = re.compile(
    r"name|subject|title|label|description|notes?$|comment|text|reason|resolution|summary|"
    r"message|body|content|answer|question"
)


def _value(name: str, kind: str, n: int) -> str | None:
    """A plausible value for an empty field named ``name`` of input type ``kind``."""
    low = name.lower()
    if kind == "email" or "email" in low:
        return f"audit{n}@example.com"
    if kind == "tel" or "phone" in low or "mobile" in low:
        return f"139{n:08d}"
    if kind == "date" or re.search(r"date|_on$|until|since|^day$|month", low):
        return company_today().isoformat()
    if kind == "datetime-local" or low.endswith("_at"):
        return f"{company_today().isoformat()}T10:00"
    if kind == "number" or NUMBERS.search(low):
        return "10"
    if kind == "textarea" or TEXTS.search(low) or "code" in low:
        return f"审计{n}"
    return None


def _first_ids(db: Any, company_id: int) -> dict[str, str]:
    """``{"customer_id": "<id>", ...}``: a row of the company in each tenant table, for empty
    ``<table>_id`` fields (pickers typed into, not chosen from a list). Ids are the company's own:
    on PostgreSQL they are far from 1, since sequences are not reset between tests."""
    existing = set(sa.inspect(db.engine).get_table_names())
    ids = {}
    with db.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            if table.name in existing and {"id", "company_id"} <= set(table.c.keys()):
                first = conn.scalar(
                    sa.select(sa.func.min(table.c.id)).where(table.c.company_id == company_id)
                )
                if first is not None:
                    ids[f"{table.name}_id"] = str(first)
    return ids


def _filled(
    fields: dict[str, str], types: dict[str, str], edit: bool, n: int, ids: dict[str, str]
) -> dict[str, str]:
    """``fields`` with empty ones given values; with ``edit`` the text fields changed too."""
    out = dict(fields)
    for name, value in fields.items():
        kind = types.get(name, "text")
        if kind in ("hidden", "checkbox", "radio", "select"):
            continue
        if not value and name in ids:
            out[name] = ids[name]
        elif not value:
            out[name] = _value(name, kind, n) or value
        elif edit and (kind in ("text", "textarea", "search") and TEXTS.search(name.lower())):
            out[name] = f"{value}·改{n}"[:60]
    return out


def _send(w: World, client: Any, method: str, url: str, **kw: Any) -> tuple[Any, list[str]]:
    """One request; returns (response or None, tables changed) and checks the audit row."""
    from core.db import db

    w.watch.reset()
    w.counts["requests"] += 1
    try:
        resp = client.open(url, method=method, **kw)
        resp.get_data()
        resp.close()
    except Exception:  # noqa: BLE001 - a crash is not this test's subject; nothing changed
        db.session.rollback()
        return None, []
    if resp.status_code >= 400:
        return resp, []
    return resp, w.watch.changed if not w.watch.audited else ["(audited)", *w.watch.changed]


def _web(w: World, endpoint: str) -> Iterator[tuple[str, list[str]]]:
    """(request, tables changed) of each submission of the company's forms for ``endpoint``."""
    client = w.app.test_client()
    forms = w.forms.get(endpoint, [])
    if endpoint in DERIVED:
        source, old, new = DERIVED[endpoint]
        forms = [(u.replace(old, new), f, t, p) for u, f, t, p in w.forms.get(source, [])]
    for n, (url, fields, types, page_url) in enumerate(forms):
        for edit in (False, True):
            _login(client, w.admin_id, w.company_id)
            if endpoint not in DERIVED:
                fields = _fresh(client, page_url, url, fields)
            body = _filled(fields, types, edit, n + (10 if edit else 0), w.ids)
            _resp, changed = _send(w, client, "POST", url, data=body)
            yield f"POST {url} {body}"[:300], changed
            if changed:
                return  # one change is the proof; more would only disturb later rules


def _api(w: World, endpoint: str) -> Iterator[tuple[str, list[str]]]:
    """(request, tables changed) of the API writes of ``endpoint`` (bearer token)."""
    client = w.app.test_client()
    auth = {"Authorization": f"Bearer {w.secret}"}
    rule = next(r for r in w.app.url_map.iter_rules(endpoint))
    name, kind = rule.defaults["resource"], endpoint.rsplit("_", 1)[1]
    listed = client.get(f"/api/v1/{name}?limit={TRANSITION_RECORDS}", headers=auth)
    records = listed.get_json().get("data", []) if listed.status_code == 200 else []
    if kind == "transition":
        for record in records:
            base = f"/api/v1/{name}/{record['id']}/transitions"
            offered = client.get(base, headers=auth).get_json() or {}
            for step in offered.get("transitions", []):
                body = {"comment": "审计"} | {
                    i: _value(i, "text", 1) or "1" for i in step["inputs"]
                }
                url = f"{base}/{step['name']}"
                _resp, changed = _send(w, client, "POST", url, json=body, headers=auth)
                yield f"POST {url} {body}", changed
                if changed:
                    return
        return
    for n, record in enumerate(records[:2]):
        copy = {
            k: (f"{v}-审计{n}" if isinstance(v, str) and TEXTS.search(k) or k == "code" else v)
            for k, v in record.items()
            if k not in ("id", "created_at", "updated_at", "version", "state") and v is not None
        }
        if kind == "update":
            url, method = f"/api/v1/{name}/{record['id']}", "PATCH"
            body: Any = {k: v for k, v in copy.items() if v != record.get(k)} or copy
        elif kind == "bulk":
            url, method, body = f"/api/v1/{name}/bulk", "POST", {"items": [copy]}
        else:
            url, method, body = f"/api/v1/{name}", "POST", copy
        for _attempt in range(3):
            resp, changed = _send(w, client, method, url, json=body, headers=auth)
            yield f"{method} {url} -> {getattr(resp, 'status_code', None)} {body}"[:300], changed
            if changed:
                return
            if resp is None or resp.status_code != 422:
                break
            # Drop the fields the API refuses (read-only, computed) and try again.
            refused = set((resp.get_json() or {}).get("error", {}).get("fields") or {})
            items = body["items"] if kind == "bulk" else None
            if items is not None:
                refused = {k for v in refused_items(resp) for k in v}
                body = {"items": [{k: v for k, v in items[0].items() if k not in refused}]}
            else:
                body = {k: v for k, v in body.items() if k not in refused}
            if not refused:
                break


def refused_items(resp: Any) -> list[dict[str, Any]]:
    """The per-item field errors of a bulk answer (``{"items": {"0": {field: [...]}}}``)."""
    fields = (resp.get_json() or {}).get("error", {}).get("fields") or {}
    items = fields.get("items")
    return [v for v in items.values() if isinstance(v, dict)] if isinstance(items, dict) else []


@pytest.mark.parametrize("endpoint", _params())
def test_write_is_audited(world: World, endpoint: str) -> None:
    """Every request of ``endpoint`` that changed rows wrote an audit row in the same request,
    and at least one of its requests changed rows."""
    tries = _api(world, endpoint) if endpoint.startswith("api_v1.") else _web(world, endpoint)
    silent, changed_once, sent = [], False, []
    for request, changed in tries:
        sent.append(request)
        if not changed:
            continue
        changed_once = True
        world.counts["changes"] += 1
        if changed[0] != "(audited)":
            silent.append(f"{request}\n    changed {changed} without an audit row")
    assert not silent, "\n".join(silent)
    if not changed_once:
        raise Unexercised(
            f"{endpoint}: no request changed anything, so its audit is unproven; make one of "
            f"the company's pages show a valid form for it, or add it to ALLOW with the reason. "
            f"Tried: {sent or 'no form of the company posts to it'}"
        )


def test_every_write_rule_is_covered(world: World) -> None:
    """Every write rule is tested or allowed with a reason; the lists name only real rules."""
    rules = {r.endpoint for r in world.app.url_map.iter_rules() if set(r.methods or ()) & WRITES}
    assert rules == set(ENDPOINTS)
    listed = (ALLOW, XFAIL, COVERED_ELSEWHERE)
    assert all(set(names) <= rules for names in listed)
    assert sum(len(names) for names in listed) == len(set().union(*listed)), "listed twice"
    assert len(world.forms) > 40, "the crawl found too few forms (not logged in?)"


def test_covered_elsewhere_names_real_tests() -> None:
    """Each rule of :data:`COVERED_ELSEWHERE` names a test function that exists in its file (a
    renamed or removed test must not leave a rule unproven)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    defined: dict[str, set[str]] = {}
    for endpoint, target in COVERED_ELSEWHERE.items():
        path, _sep, name = target.partition("::")
        if path not in defined:
            tree = ast.parse((root / path).read_text(encoding="utf-8"))
            defined[path] = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert name.startswith("test_") and name in defined[path], f"{endpoint}: no {target}"
    assert set(COVERED_ELSEWHERE) <= set(ENDPOINTS), set(COVERED_ELSEWHERE) - set(ENDPOINTS)
