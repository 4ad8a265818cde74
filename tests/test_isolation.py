"""The proof of company isolation (docs/security.md, "Company isolation").

Two companies, A and B, with every built-in plugin enabled, are filled by the demo code; then
every name-like text column of B's rows (``name``, ``subject``, ``title``, ``label``, ``code``…,
found from the table metadata) is rewritten to contain :data:`MARKER`. The test enumerates every
URL rule the app registers and, for every role of A:

* reads -- every GET rule, with its ``any(…)`` options, with the string values and query
  strings that A's own pages link to, with ``?q=`` a search that matches B's rows, and with
  B's ids in every ``…_id`` query parameter: :data:`MARKER` never appears in the answer (CSV,
  JSON, HTML, and the XML inside XLSX/ZIP files included); with B's ids in its integer path
  parameters the answer is never a success;
* writes -- every POST/PATCH/PUT/DELETE rule with B's ids in its path and in every ``…_id``
  form field (the fields of A's own form for that rule when a page of A shows one): no row of
  B changes (a checksum of all B's tenant rows, compared at the end);
* public pages (``/p/<company>/…``): B's links (read from B's own staff pages) answer under
  A's code with 404, and A's public pages show nothing of B;
* the API: every operation of ``/api/v1/openapi.json`` is a URL rule swept as above, with a
  bearer token of A's user.

A new route is swept without editing this file; only a route that answers 2xx for any id on
purpose needs an entry in :data:`ALLOW`.
"""

from __future__ import annotations

import html
import io
import random
import re
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from itertools import product
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import sqlalchemy as sa
from faker import Faker
from werkzeug.routing import Rule

#: Written into B's rows; must never reach a response to A's users.
MARKER = "QZXJB"
#: What searches send: matches B's marked rows, but an echoed search box is not the marker.
SEARCH = MARKER[:-1]
A_CODE, B_CODE = "iso-a", "iso-b"
ROLES = ("admin", "manager", "sales_rep", "service_agent", "viewer")
#: Column names whose values are rewritten to carry the marker.
NAMELIKE = re.compile(r"(^|_)(name|subject|title|label|code|number)(_|$)")
#: Samples per endpoint when crawling and when filling ids.
PER_ENDPOINT = 2

#: Endpoints that answer 2xx whatever id or value they are given, with the reason.
ALLOW: dict[str, str] = {
    "static": "the core's vendored CSS/JS files: the same for every company",
    "sales.static": "the sales plugin's static files: the same for every company",
}

#: Routes of plugins still being written that leak (strict: they fail once fixed).
XFAIL: dict[str, str] = {}


def _rule_endpoints() -> list[tuple[str, str]]:
    """(kind, endpoint) of every rule, read from an app built for collection only."""
    from core.app import create_app
    from core.web.public import PREFIX

    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "SECRET_KEY": "collect"})
    found: set[tuple[str, str]] = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ALLOW:
            continue
        if rule.rule.startswith(f"{PREFIX}/"):
            found.add(("public", rule.endpoint))
            continue
        if "GET" in (rule.methods or ()):
            found.add(("read", rule.endpoint))
        if set(rule.methods or ()) & {"POST", "PUT", "PATCH", "DELETE"}:
            found.add(("write", rule.endpoint))
    return sorted(found)


ENDPOINTS = _rule_endpoints()


def _params(kind: str) -> list[Any]:
    return [
        pytest.param(e, marks=pytest.mark.xfail(strict=True, reason=XFAIL[e])) if e in XFAIL else e
        for k, e in ENDPOINTS
        if k == kind
    ]


# -- the world: two seeded companies, B marked ---------------------------------------------


@dataclass(frozen=True)
class Co:
    id: int
    code: str


@dataclass
class World:
    app: Any
    a: Co
    b: Co
    users: dict[str, int]  # id of A's user of each role
    secrets: dict[str, str]  # A's API token of each role
    b_ids: dict[str, list[int]]  # table name -> ids of B's rows
    a_ids: dict[str, list[int]]  # table name -> ids of A's rows
    links: dict[str, list[tuple[dict[str, Any], str]]] = field(default_factory=dict)
    forms: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    b_public: list[str] = field(default_factory=list)
    checksum: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("requests", "reads", "reads with B's ids", "writes"), 0
        )
    )
    errors: list[str] = field(default_factory=list)
    b_writes: list[str] = field(default_factory=list)


def _seed(db: Any, code: str, boss_email: str, full: bool) -> Any:
    """A company with every plugin, filled by the demo code (fewer rows than the demo's)."""
    from core import demo
    from core.models import Company
    from core.plugins import current
    from core.tenancy import company_scope

    manager = current()
    fake = Faker("zh_CN")
    fake.seed_instance(len(code) + (7 if full else 3))
    company = Company(code=code, name=f"隔离测试{code}")
    db.session.add(company)
    db.session.flush()
    for plugin in manager.manifests:
        manager.enable(company, plugin)
    boss = demo._user(boss_email, "老板")
    with company_scope(company.id):
        demo._populate(company, code, boss, fake, random.Random(code), 12, 10)
        enabled = manager.enabled(company.id)
        # A gets the plugins' cheaper demo rows, B all of them (B's rows are what must not
        # leak; A's are what A's pages link to).
        cheap = {"marketing", "surveys"}
        for name in manager.order:
            if name in enabled and (full or name in cheap):
                manager.hooks(frozenset({name})).guanxi_demo_data(company=company, fake=fake)
        db.session.commit()
    return company


def _tenant_tables(db: Any) -> list[sa.Table]:
    """The tenant tables of this database (the metadata also holds tables of test-only models
    that other test modules declared and this app never created)."""
    existing = set(sa.inspect(db.engine).get_table_names())
    return [
        t
        for t in db.metadata.sorted_tables
        if t.name in existing and "company_id" in t.c and "id" in t.c
    ]


def _mark(db: Any, company: Co) -> int:
    """Rewrite B's name-like text columns to carry the marker; returns the columns marked."""
    from core.models import Company, Membership, User
    from core.tenancy import unscoped

    marked = 0
    conn = db.session.connection()
    for table in _tenant_tables(db):
        for column in table.c:
            kind = column.type
            if (
                not NAMELIKE.search(column.name)
                or not isinstance(kind, sa.String)
                or isinstance(kind, sa.Enum)
                or column.foreign_keys
                or column.primary_key
            ):
                continue
            length = kind.length or 200
            if length < len(MARKER) + 2:
                continue
            rows = conn.execute(
                sa.select(table.c.id, column).where(
                    table.c.company_id == company.id, column.is_not(None), column != ""
                )
            ).all()
            if not rows:
                continue
            values = []
            for row_id, value in rows:
                new = f"{MARKER}{value}"
                if len(new) > length:
                    new = f"{MARKER}{row_id}-{value}"[:length]
                values.append({"_id": row_id, "_v": new})
            nested = conn.begin_nested()
            try:
                conn.execute(
                    table.update()
                    .where(table.c.id == sa.bindparam("_id"))
                    .values({column.name: sa.bindparam("_v")}),
                    values,
                )
                nested.commit()
                marked += 1
            except sa.exc.DBAPIError:
                nested.rollback()
    with unscoped():
        only_b = db.session.scalars(
            sa.select(Membership.user_id).where(Membership.company_id == company.id)
        ).all()
        for user in db.session.scalars(sa.select(User).where(User.id.in_(only_b))):
            user.name = f"{MARKER}{user.name}"
        row = db.session.get(Company, company.id)
        row.name = f"{MARKER}{row.name}"
        db.session.commit()
    return marked


def _ids(db: Any, company_id: int) -> dict[str, list[int]]:
    from core.models import Membership

    conn = db.session.connection()
    out = {}
    for table in _tenant_tables(db):
        ids = (
            conn.execute(
                sa.select(table.c.id).where(table.c.company_id == company_id).order_by(table.c.id)
            )
            .scalars()
            .all()
        )
        if ids:
            out[table.name] = list(ids)
    users = conn.execute(
        sa.select(Membership.user_id).where(Membership.company_id == company_id)
    ).scalars()
    out["user"] = sorted(set(users))
    out["company"] = [company_id]
    return out


def _checksum(db: Any, company_id: int) -> dict[str, str]:
    """A digest of B's rows per tenant table (read on the connection: nothing scopes it)."""
    import hashlib

    conn = db.session.connection()
    out = {}
    for table in _tenant_tables(db):
        rows = conn.execute(
            sa.select(table).where(table.c.company_id == company_id).order_by(table.c.id)
        ).all()
        out[table.name] = hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()
    return out


@pytest.fixture(scope="module")
def world(_guanxi_schema: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from core import tokens
    from core.app import create_app
    from core.db import db
    from core.models import User
    from core.testing import _client_class, _config, _wipe

    started = time.monotonic()
    app = create_app(
        _config(
            _guanxi_schema,
            tmp_path_factory.mktemp("isolation"),
            API_RATE_LIMIT="1000000/minute",
        )
    )
    app.test_client_class = _client_class()
    with app.app_context(), pytest.MonkeyPatch.context() as patch:
        import plugins.property.demo as property_demo

        # The property demo's quarter of complaints replayed step by step is most of its
        # time; two weeks and a few residents give every one of its tables rows.
        patch.setattr(property_demo, "WEEKS", 2)
        patch.setattr(property_demo, "RESIDENTS", 24)
        a = _seed(db, A_CODE, "boss@iso-a.test", full=False)
        b = _seed(db, B_CODE, "boss@iso-b.test", full=True)
        users = {
            role: db.session.scalar(sa.select(User).where(User.email == f"{role}@{A_CODE}.demo"))
            for role in ROLES
        }
        secrets = {}
        from core.tenancy import company_scope

        with company_scope(a.id):
            for role, user in users.items():
                secrets[role] = tokens.issue(user, a.id, f"isolation {role}")[1]
            db.session.commit()
        w = World(
            app,
            Co(a.id, a.code),
            Co(b.id, b.code),
            {role: user.id for role, user in users.items()},
            secrets,
            _ids(db, b.id),
            _ids(db, a.id),
        )
        _crawl(w)
        _mark(db, w.b)
        w.checksum = _checksum(db, w.b.id)

        def watch(session: Any, flush_context: Any) -> None:
            for obj in list(session.new) + list(session.dirty) + list(session.deleted):
                if getattr(obj, "company_id", None) == w.b.id:
                    w.b_writes.append(f"{type(obj).__name__} {getattr(obj, 'id', '')}")

        event.listen(Session, "after_flush", watch)
        print(f"\nB's public links: {w.b_public}")
        print(f"\nisolation world ready in {time.monotonic() - started:.1f}s")
        try:
            yield w
        finally:
            event.remove(Session, "after_flush", watch)
            print(f"\nisolation: {w.counts} ; server errors: {len(w.errors)}")
            for line in w.errors[:40]:
                print("  ", line)
            db.session.rollback()
            db.session.remove()
            _wipe(db.engine)
            db.engine.dispose()


# -- requests ------------------------------------------------------------------------------


def _client(w: World, role: str | None, company: Any = None) -> Any:
    """A test client logged in as A's ``role`` (anonymous when ``role`` is None)."""
    client = w.app.test_client()
    if role is not None:
        _login(client, w.users[role], (company or w.a).id)
    return client


def _login(client: Any, user_id: int, company_id: int) -> None:
    with client.session_transaction() as session:
        session["_user_id"] = str(user_id)
        session["_fresh"] = True
        session["company_id"] = company_id


def _body(resp: Any) -> bytes:
    """The answer's bytes; the members of a ZIP (XLSX) unpacked; plus Location."""
    data = resp.get_data()
    if data[:2] == b"PK":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                data = b"".join(archive.read(n) for n in archive.namelist())
        except zipfile.BadZipFile:
            pass
    location = resp.headers.get("Location", "")
    disposition = resp.headers.get("Content-Disposition", "")
    return data + location.encode() + disposition.encode()


def _send(w: World, client: Any, method: str, url: str, **kw: Any) -> Any:
    """One request; an exception in the view is recorded (a tenancy refusal raised as a 500
    is a refusal, not a leak) and answers ``None``."""
    from core.db import db
    from core.tenancy import TenancyError

    w.counts["requests"] += 1
    try:
        resp = client.open(url, method=method, **kw)
        resp.get_data()  # a streamed export runs to its end (and its context closes) here
        resp.close()
        return resp
    except TenancyError as exc:
        db.session.rollback()
        w.errors.append(f"{method} {url}: TenancyError {exc}")
    except Exception as exc:  # noqa: BLE001 - any crash is reported, the sweep goes on
        db.session.rollback()
        w.errors.append(f"{method} {url}: {type(exc).__name__} {exc}"[:300])
    return None


def _leaks(resp: Any) -> bool:
    return resp is not None and MARKER.encode() in _body(resp)


# -- crawling A's (and B's) pages for values, query strings and forms ----------------------


class _Page(HTMLParser):
    """Links (href/src/action) and forms (action, method, fields) of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.forms: list[tuple[str, str, dict[str, str]]] = []
        self._form: tuple[str, str, dict[str, str]] | None = None
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        for key in ("href", "src", "action"):
            if a.get(key):
                self.links.append(a[key])
        if tag == "form":
            self._form = (a.get("action", ""), a.get("method", "get").upper(), {})
            self.forms.append(self._form)
        elif self._form is not None and a.get("name"):
            fields = self._form[2]
            if tag == "input" and a.get("type") not in ("submit", "button", "file"):
                if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                    fields.setdefault(a["name"], a.get("value", "on"))
                else:
                    fields[a["name"]] = a.get("value", "")
            elif tag == "select":
                self._select = a["name"]
                fields.setdefault(a["name"], "")
            elif tag == "textarea":
                self._textarea = a["name"]
                fields[a["name"]] = "x"
        if tag == "option" and self._form is not None and self._select:
            fields = self._form[2]
            if not fields.get(self._select) and a.get("value"):
                fields[self._select] = a["value"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None


def _match(adapter: Any, url: str, method: str) -> tuple[str, dict[str, Any], str] | None:
    parts = urlsplit(html.unescape(url))
    if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        return None
    try:
        endpoint, values = adapter.match(parts.path, method=method)
    except Exception:  # noqa: BLE001 - not a route of the app, a redirect, a wrong method
        return None
    return endpoint, values, parts.query


def _b_admin(w: World) -> int:
    from core.db import db
    from core.models import Membership, User
    from core.tenancy import unscoped

    with unscoped():
        return db.session.scalar(
            sa.select(Membership.user_id)
            .join(User, User.id == Membership.user_id)
            .where(Membership.company_id == w.b.id, User.email == f"admin@{B_CODE}.demo")
        )


def _crawl(w: World) -> None:
    """Visit A's pages as A's admin (lists, then up to two of each linked page) and keep the
    values, query strings and forms they link to; visit B's pages as B's admin for the public
    links B hands out."""
    adapter = w.app.url_map.bind("localhost")
    starts = [
        r.rule
        for r in w.app.url_map.iter_rules()
        if not r.arguments and "GET" in (r.methods or ()) and r.endpoint not in ALLOW
    ]
    b_admin = _b_admin(w)
    for company, user_id in ((w.a, w.users["admin"]), (w.b, b_admin)):
        client = w.app.test_client()
        _login(client, user_id, company.id)
        seen: set[str] = set()
        queue = list(starts)
        per_endpoint: dict[str, int] = {}
        while queue:
            url = queue.pop(0)
            if url in seen:
                continue
            seen.add(url)
            resp = _send(w, client, "GET", url)
            if resp is None or resp.status_code != 200 or "html" not in resp.content_type:
                continue
            page = _Page()
            page.feed(resp.get_data(as_text=True))
            for link in page.links:
                if company is w.b:
                    path = urlsplit(html.unescape(link)).path
                    if path.startswith(f"/p/{B_CODE}/") and link not in w.b_public:
                        w.b_public.append(path)
                    continue
                found = _match(adapter, link, "GET")
                if found is None:
                    continue
                endpoint, values, query = found
                samples = w.links.setdefault(endpoint, [])
                if (values, query) not in samples and len(samples) < 6:
                    samples.append((values, query))
                if values and per_endpoint.get(endpoint, 0) < PER_ENDPOINT:
                    per_endpoint[endpoint] = per_endpoint.get(endpoint, 0) + 1
                    queue.append(urlsplit(html.unescape(link)).path)
            if company is w.b:
                # B's detail pages show the public links (tracking, one-time answers).
                for link in page.links:
                    found = _match(adapter, link, "GET")
                    if found and found[1] and per_endpoint.get(found[0], 0) < PER_ENDPOINT:
                        per_endpoint[found[0]] = per_endpoint.get(found[0], 0) + 1
                        queue.append(urlsplit(html.unescape(link)).path)
                continue
            for action, method, fields in page.forms:
                if method != "POST":
                    continue
                found = _match(adapter, action or url, "POST")
                if found is not None:
                    forms = w.forms.setdefault(found[0], [])
                    if len(forms) < 3:
                        forms.append({**{k: str(v) for k, v in found[1].items()}, **fields})
        w.counts[f"crawled {company.code}"] = len(seen)


# -- filling a rule with B's ids -----------------------------------------------------------


def _owner(w: World, endpoint: str) -> str:
    registry = w.app.extensions["guanxi.plugins"].registry
    return registry.blueprint_owner.get(endpoint.split(".")[0]) or "core"


def _tables_for(w: World, rule: Rule, param: str) -> list[str]:
    """B's tables whose ids fill integer path parameter ``param`` of ``rule``."""
    from core.migrations import table_owner

    registry = w.app.extensions["guanxi.plugins"].registry
    if param == "record_id" and rule.defaults and "resource" in rule.defaults:
        return [registry.api_resources[rule.defaults["resource"]].model.__table__.name]
    base = param.removesuffix("_id")
    if base in ("company", "user"):
        return [base]
    plugins = list(w.app.extensions["guanxi.plugins"].manifests)
    owner = _owner(w, rule.endpoint)
    names = [n for n in w.b_ids if n not in ("user", "company")]
    named = [n for n in names if n == base or n.endswith(f"_{base}")]
    own = [n for n in named if table_owner(n, plugins) == owner]
    core = [n for n in named if table_owner(n, plugins) == "core"]
    return own or core or named


def _unmapped(w: World, rule: Rule) -> list[str]:
    """Every B table of the rule's plugin (or the core's): ids of unknown meaning."""
    from core.migrations import table_owner

    plugins = list(w.app.extensions["guanxi.plugins"].manifests)
    owner = _owner(w, rule.endpoint)
    return [n for n in w.b_ids if table_owner(n, plugins) == owner and n not in ("user",)]


def _fill(w: World, rule: Rule) -> list[tuple[dict[str, Any], bool]]:
    """Path values for ``rule``: (values, strict) where strict means every integer
    parameter holds an id of a B row of the table it names (so success is a leak)."""
    converters = rule._converters  # noqa: SLF001 - werkzeug keeps them nowhere public
    ints = [p for p, c in converters.items() if type(c).__name__ == "IntegerConverter"]
    others: dict[str, list[str]] = {}
    for p, c in converters.items():
        if p in ints:
            continue
        items = getattr(c, "items", None)
        if items:
            others[p] = sorted(items)
        else:
            seen = [v[p] for v, _q in w.links.get(rule.endpoint, []) if p in v]
            seen += [f[p] for f in w.forms.get(rule.endpoint, []) if p in f]
            others[p] = sorted(set(map(str, seen)))[:4] or ["x"]
    string_choices = [dict(zip(others, combo, strict=True)) for combo in product(*others.values())]
    if not ints:
        return [(values, False) for values in string_choices]
    per_param: dict[str, list[int]] = {}
    strict = True
    for p in ints:
        tables = _tables_for(w, rule, p)
        ids = [i for t in tables for i in w.b_ids.get(t, [])[:PER_ENDPOINT]]
        if not tables or not ids:
            strict = False
            ids = [i for t in _unmapped(w, rule) for i in w.b_ids[t][:1]][:12]
        per_param[p] = ids or [10**9]
    out = []
    width = max(len(v) for v in per_param.values())
    for n in range(width):
        ints_values = {p: ids[n % len(ids)] for p, ids in per_param.items()}
        for values in string_choices[:3]:
            out.append(({**values, **ints_values}, strict))
    return out


def _b_query_variants(w: World, endpoint: str) -> list[str]:
    """Query strings: A's pages' own, ``q`` a search of B's marked rows, and B's ids in
    every ``…_id`` parameter A's pages use."""
    out = ["", urlencode({"q": SEARCH})]
    keys: set[str] = set()
    for _values, query in w.links.get(endpoint, []):
        if query and query not in out:
            out.append(query)
        keys.update(k for k, _v in parse_qsl(query))
    for key in sorted(keys):
        if key.endswith("_id"):
            for table in _tables_for_name(w, key):
                out.append(urlencode({key: w.b_ids[table][0]}))
    return out


def _tables_for_name(w: World, key: str) -> list[str]:
    base = key.removesuffix("_id")
    if base in ("owner", "assignee", "agent_user", "user"):
        return ["user"]
    return [n for n in w.b_ids if n == base or n.endswith(f"_{base}")][:2]


def _build(rule: Rule, values: dict[str, Any], query: str = "") -> str:
    from werkzeug.routing import Map

    adapter = _build.maps.setdefault(id(rule.map), rule.map.bind("localhost"))  # type: ignore[attr-defined]
    path = adapter.build(rule.endpoint, values, append_unknown=False)
    assert isinstance(path, str) and isinstance(rule.map, Map)
    return f"{path}?{query}" if query else path


_build.maps = {}  # type: ignore[attr-defined]


def _rules(w: World, endpoint: str, methods: set[str]) -> list[Rule]:
    return [r for r in w.app.url_map.iter_rules(endpoint) if set(r.methods or ()) & methods]


def _api(rule: Rule) -> bool:
    return rule.rule.startswith("/api/")


def _open_as(w: World, role: str, rule: Rule) -> tuple[Any, dict[str, Any]]:
    """A client and request options for A's ``role``: a bearer token on the API."""
    if _api(rule):
        return w.app.test_client(), {"headers": {"Authorization": f"Bearer {w.secrets[role]}"}}
    return _client(w, role), {}


# -- the tests -----------------------------------------------------------------------------

SUCCESS = range(200, 300)


@pytest.mark.parametrize("endpoint", _params("read"))
def test_read(world: World, endpoint: str) -> None:
    """Nothing of B is readable, listable, searchable, exportable or reportable by A."""
    found = []
    for rule in _rules(world, endpoint, {"GET"}):
        fills = _fill(world, rule)
        own = [(v, False) for v, _q in world.links.get(endpoint, []) if v][:PER_ENDPOINT]
        for role in ROLES:
            client, options = _open_as(world, role, rule)
            for n, (values, strict) in enumerate(fills + own):
                if n and role != "admin" and strict:
                    continue  # B's ids: every role once, the admin all of them
                queries = [""]
                if not strict:
                    # Every query string as the admin and the rep (whose record rule narrows
                    # lists); the plain page and the search as every role.
                    queries = _b_query_variants(world, endpoint)
                    if role not in ("admin", "sales_rep"):
                        queries = queries[:2]
                for query in queries:
                    url = _build(rule, values, query)
                    resp = _send(world, client, "GET", url, **options)
                    world.counts["reads with B's ids" if strict else "reads"] += 1
                    if resp is None:
                        continue
                    if _leaks(resp):
                        found.append(f"{role} GET {url} -> {resp.status_code} shows B's data")
                    elif strict and resp.status_code in SUCCESS:
                        found.append(f"{role} GET {url} (B's ids) -> {resp.status_code}")
    assert not found, "\n".join(found)


def _b_form(w: World, fields: dict[str, str]) -> dict[str, str]:
    """``fields`` with every ``…_id`` value replaced by an id of B's rows."""
    out = dict(fields)
    for key in fields:
        if key.endswith("_id") or key == "id":
            tables = _tables_for_name(w, key) if key != "id" else []
            if tables:
                out[key] = str(w.b_ids[tables[0]][0])
    return out


def _generic_form(w: World) -> dict[str, str]:
    """A body naming B's rows under every ``<table>_id`` a form might use."""
    out = {"name": SEARCH, "comment": SEARCH, "note": SEARCH, "csrf_token": ""}
    for table, ids in w.b_ids.items():
        short = table.split("_", 1)[1] if "_" in table else table
        out.setdefault(f"{table}_id", str(ids[0]))
        out.setdefault(f"{short}_id", str(ids[0]))
    for key in ("owner_id", "assignee_id", "user_id", "manager_id"):
        out[key] = str(w.b_ids["user"][0])
    return out


def _api_body(w: World, rule: Rule) -> dict[str, Any]:
    registry = w.app.extensions["guanxi.plugins"].registry
    resource = (rule.defaults or {}).get("resource")
    body: dict[str, Any] = {"name": SEARCH}
    if resource:
        for column in registry.api_resources[resource].model.__table__.c:
            for fk in column.foreign_keys:
                ids = w.b_ids.get(fk.column.table.name)
                if ids:
                    body[column.name] = ids[0]
    return body


@pytest.mark.parametrize("endpoint", _params("write"))
def test_write(world: World, endpoint: str) -> None:
    """Nothing of B is writable from A: B's ids in the path and in the form change no row
    of B (checked per request through the ORM, and for all of B's rows in test_b_unchanged)."""
    found = []
    methods = {"POST", "PUT", "PATCH", "DELETE"}
    for rule in _rules(world, endpoint, methods):
        fills = _fill(world, rule)
        for role in ROLES:
            client, options = _open_as(world, role, rule)
            for n, (values, _strict) in enumerate(fills):
                if n and role != "admin":
                    continue
                url = _build(rule, values)
                for method in sorted(set(rule.methods or ()) & methods):
                    if _api(rule):
                        bodies = [{"json": _api_body(world, rule)}]
                    else:
                        forms = [_b_form(world, f) for f in world.forms.get(endpoint, [])] or [
                            _generic_form(world)
                        ]
                        bodies = [{"data": f} for f in forms[:2]]
                    for body in bodies:
                        if not _api(rule):
                            _login(client, world.users[role], world.a.id)
                        before = len(world.b_writes)
                        world.counts["writes"] += 1
                        resp = _send(world, client, method, url, **options, **body)
                        if len(world.b_writes) > before:
                            found.append(
                                f"{role} {method} {url} wrote B's "
                                + ", ".join(world.b_writes[before:][:5])
                            )
                        if _leaks(resp):
                            found.append(f"{role} {method} {url} -> shows B's data")
    assert not found, "\n".join(found)


@pytest.mark.parametrize("endpoint", _params("public"))
def test_public(world: World, endpoint: str) -> None:
    """A's public pages show nothing of B; B's public links do not open under A's code."""
    found = []
    client = world.app.test_client()
    staff = _client(world, "admin")
    rules = _rules(world, endpoint, {"GET"})
    b_links = []
    for path in world.b_public:
        found_rule = _match(world.app.url_map.bind("localhost"), path, "GET")
        if found_rule and found_rule[0] == endpoint:
            b_links.append(path)
    for path in b_links:
        assert client.get(path).status_code == 200, f"B's own link {path} should open"
        if len(_match(world.app.url_map.bind("localhost"), path, "GET")[1]) < 2:  # type: ignore[index]
            continue  # a page of any company (a blank form): A's own is checked below
        under_a = path.replace(f"/p/{B_CODE}/", f"/p/{A_CODE}/", 1)
        for who in (client, staff):
            resp = _send(world, who, "GET", under_a)
            if resp is not None and (resp.status_code in SUCCESS or _leaks(resp)):
                found.append(f"GET {under_a} (B's link under A) -> {resp.status_code}")
            resp = _send(world, who, "POST", under_a, data={"csrf_token": ""})
            if resp is not None and (resp.status_code in SUCCESS or _leaks(resp)):
                found.append(f"POST {under_a} (B's link under A) -> {resp.status_code}")
    for rule in rules:
        if [a for a in rule.arguments if a != "company"]:
            continue
        for who in (client, staff):
            url = _build(rule, {"company": A_CODE})
            resp = _send(world, who, "GET", url)
            if _leaks(resp):
                found.append(f"GET {url} shows B's data")
    world.counts["public links of B"] = len(world.b_public)
    assert not found, "\n".join(found)


def test_b_unchanged(world: World) -> None:
    """After every sweep, not one row of B differs (Core SQL writes included)."""
    from core.db import db

    db.session.rollback()
    after = _checksum(db, world.b.id)
    changed = sorted(t for t, digest in after.items() if world.checksum.get(t) != digest)
    assert not changed, f"rows of B changed in: {changed}"


def test_every_rule_and_operation_is_swept(world: World) -> None:
    """Every URL rule is swept (or allowed with a reason); every OpenAPI operation is a rule;
    the sweep really saw A's pages (logged in) and B's public links."""
    rules = list(world.app.url_map.iter_rules())
    swept = {e for _k, e in ENDPOINTS}
    missing = [r.endpoint for r in rules if r.endpoint not in swept and r.endpoint not in ALLOW]
    assert not missing, f"rules not swept: {missing}"
    resp = _open_as(world, "admin", rules[0])[0].get(
        "/api/v1/openapi.json", headers={"Authorization": f"Bearer {world.secrets['admin']}"}
    )
    assert resp.status_code == 200
    adapter = world.app.url_map.bind("localhost")
    operations = 0
    for path, item in resp.get_json()["paths"].items():
        concrete = re.sub(
            r"\{[^}]+\}", "1", f"/api/v1{path}" if not path.startswith("/api") else path
        )
        for method in item:
            if method.upper() not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                continue
            operations += 1
            endpoint, _values = adapter.match(concrete, method=method.upper())
            assert endpoint in swept, f"{method} {path} is not swept"
    assert operations > 20
    assert len(world.links) > 40, "the crawl of A's pages found too few pages (not logged in?)"
    assert world.b_public, "no public link of B found on B's pages"
    world.counts["rules"] = len(rules)
    # The marker is there to be found: B's own admin sees it in B's customer search.
    b_admin = _b_admin(world)
    client = world.app.test_client()
    _login(client, b_admin, world.b.id)
    assert MARKER in client.get(f"/customers/?q={SEARCH}").get_data(as_text=True)
    world.counts["api operations"] = operations
