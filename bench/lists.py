"""Benchmark: server time of the customer list and search pages on a million customers, next
to the bare SQL of the same queries.

    .venv/bin/python bench/lists.py --database sqlite|postgresql [--customers N] [--quick]
        [--url URL] [--repeat 200] [--budget 40] [--min-samples 20] [--explain]

1. Data: bench/generate.py fills company ``bench`` of a scratch database (default 1,000,000
   customers, 3,000,000 interactions, 1,000,000 tickets and their clocks; ``--quick``: 2,000
   customers). ``--url`` reuses a database kept by ``bench/generate.py --keep`` instead.
2. A manager of the company is made by the command the CLI offers, ``guanxi users create
   --role manager``, and logged in to Flask's test client as ``core.testing.login_as`` does
   (session cookie); a sales rep of one team too, for the record-rule case.
3. Cases — the real routes, each cycling over varied URLs: ``/customers/`` first page (newest
   first), a keyset "next" page deep in the list (cursors at 10 … 90 % of it), the first page
   sorted by name, search by a name fragment (two characters: surname and given name), by a
   phone fragment (5 digits) and a whole number typed with dashes, filtered by owner, by value
   tier, by owner and tier, and a sales rep's first page (the ``own_or_team`` record rule).
4. Server time is the time around ``client.get`` (the whole request: session, rule, the page's
   queries, the template), repeated ``--repeat`` times per case (at most ``--budget`` seconds
   per case, at least ``--min-samples``). The bare SQL is the page's own customer ``SELECT`` s
   — the capped count and the page of rows, captured from the request with a
   ``before_cursor_execute`` listener — run with their parameters on the raw DBAPI
   connection, as often.
5. Plugins: the first page with every built-in plugin enabled for the company and with none
   (``PluginManager.enable`` / ``disable``, the code behind ``guanxi plugins enable``),
   alternating blocks, compared by p95.

Prints p50 / p95 of the page and of its bare SQL per case, their ratio and the queries per
page, next to the targets (p95 ≤ 50 ms, ≤ 3× the bare SQL; plugins ≤ 1.15×). It reports and
exits 0; ``--quick`` exits 1 on any HTTP answer other than 200. ``--explain`` prints the
query plan of each case's SQL. Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generate import CODE, PASSWORD, QUICK_CUSTOMERS, generate  # noqa: E402

TARGET_MS = 50.0
TARGET_RATIO = 3.0
TARGET_PLUGINS = 1.15
MIN_SAMPLES = [20]  # --min-samples


@dataclass
class Case:
    """A page measured over several URLs, and what it measured."""

    name: str
    urls: list[str]
    rep: bool = False
    page_ms: list[float] = field(default_factory=list)
    bare_ms: list[float] = field(default_factory=list)
    queries: list[int] = field(default_factory=list)
    sql: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (0–1) of ``values``, nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Recorder:
    """Statements sent to the database while ``capture`` is on (a ``before_cursor_execute``
    listener on the app's engine)."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.on = False
        self.seen: list[tuple[str, Any]] = []
        event.listen(engine, "before_cursor_execute", self._before)

    def _before(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if self.on:
            self.seen.append((statement, parameters))

    @contextmanager
    def capture(self) -> Iterator[list[tuple[str, Any]]]:
        self.seen, self.on = [], True
        try:
            yield self.seen
        finally:
            self.on = False


def customer_selects(statements: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The page's own customer queries: the capped count and the page of rows."""
    picked = []
    for statement, parameters in statements:
        flat = " ".join(statement.split())
        if "FROM customer" not in flat or not flat.startswith("SELECT"):
            continue
        if "count(*)" in flat or ("ORDER BY" in flat and "LIMIT" in flat):
            picked.append((statement, parameters))
    return picked


def make_app(url: str) -> Any:
    from core.app import create_app

    folder = tempfile.mkdtemp(prefix="guanxi-lists-")
    return create_app(
        {"SQLALCHEMY_DATABASE_URI": url, "INSTANCE_PATH": folder, "SECRET_KEY": "bench-lists"}
    )


def login(app: Any, role: str, team: str | None = None) -> tuple[Any, int]:
    """A new member of company ``bench`` with ``role`` (made by ``guanxi users create``; put in
    ``team`` when given) and a test client logged in as them."""
    import secrets

    from sqlalchemy import select

    from core.cli import main as cli
    from core.db import db
    from core.models import Company, Membership, Team, User
    from core.tenancy import company_scope

    email = f"lists-{role}-{secrets.token_hex(3)}@bench.test"
    args = ["users", "create", "--email", email, "--name", "列表测试", "--company", CODE]
    result = app.test_cli_runner().invoke(cli, [*args, "--role", role, "--password", PASSWORD])
    if result.exit_code != 0:
        raise RuntimeError(f"guanxi users create: {result.output}")
    user_id = db.session.scalar(select(User.id).where(User.email == email))
    company_id = db.session.scalar(select(Company.id).where(Company.code == CODE))
    if team is not None:
        with company_scope(company_id):
            member = db.session.scalar(select(Membership).where(Membership.user_id == user_id))
            member.team_id = db.session.scalar(select(Team.id).where(Team.name == team))
            db.session.commit()
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = str(user_id)
        session["_fresh"] = True
        session["company_id"] = company_id
    return client, company_id


def build_cases(app: Any, company_id: int) -> list[Case]:
    """The cases and their URLs, from the data (names, phones, owners, cursors) in the company."""
    from sqlalchemy import func, select

    from core import keyset
    from core.db import db
    from core.models import Customer, Membership, User
    from core.tenancy import company_scope

    with company_scope(company_id):
        total = db.session.scalar(select(func.count(Customer.id))) or 0
        step = max(1, total // 40)
        sample = db.session.execute(
            select(Customer.name, Customer.phone)
            .where(Customer.kind == "consumer", Customer.id % step == 7 % step)
            .limit(40)
        ).all()
        cursors = []
        for share in (0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9):
            row = db.session.execute(
                select(Customer.created_at, Customer.id)
                .order_by(Customer.created_at.desc(), Customer.id.desc())
                .offset(int(total * share))
                .limit(1)
            ).first()
            if row is not None:
                cursors.append(keyset.encode(row.created_at, row.id))
        reps = db.session.scalars(
            select(User.id)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.role == "sales_rep")
            .order_by(User.id)
        ).all()
    names = list(dict.fromkeys(name[:2] for name, _phone in sample))[:20]
    whole_names = list(dict.fromkeys(name for name, _phone in sample))[:20]
    phones = [phone for _name, phone in sample if phone][:20]
    owners = list(reps[::3])[:10] or [0]

    def q(**params: Any) -> str:
        return "/customers/?" + urlencode(params, doseq=True)

    return [
        Case("list, first page (newest)", ["/customers/"]),
        Case("list, deep keyset page", [q(after=c) for c in cursors]),
        Case("list, first page by name", [q(sort="name")]),
        Case("search, name fragment", [q(q=n) for n in names]),
        Case("search, surname", [q(q=n[:1]) for n in names]),
        Case("search, whole name", [q(q=name) for name in whole_names]),
        Case("search, phone fragment", [q(q=p[3:8]) for p in phones]),
        Case("search, last four digits", [q(q=p[-4:]) for p in phones]),
        Case("search, whole phone with dashes", [q(q=f"{p[:3]}-{p[3:7]}-{p[7:]}") for p in phones]),
        Case("filter, owner", [q(owner_id=o) for o in owners]),
        Case("filter, value tier", [q(value_tier=t) for t in ("A", "B", "A", "C")]),
        Case("filter, owner + tier", [q(owner_id=o, value_tier="A") for o in owners]),
        Case("sales rep, first page (team rule)", ["/customers/"], rep=True),
    ]


def bare(raw: Any, statements: list[tuple[str, Any]]) -> float:
    """Milliseconds to run ``statements`` on the raw DBAPI connection and fetch every row."""
    started = time.perf_counter()
    cur = raw.cursor()
    for statement, parameters in statements:
        cur.execute(statement, parameters)
        cur.fetchall()
    cur.close()
    raw.commit()
    return (time.perf_counter() - started) * 1000


def measure(
    case: Case, client: Any, recorder: Recorder, raw: Any, repeat: int, budget: float
) -> None:
    """Capture each URL's SQL once, then time pages and bare SQL alternately."""
    for url in case.urls:
        with recorder.capture() as seen:
            response = client.get(url)
        if response.status_code != 200:
            case.errors.append(f"{url}: HTTP {response.status_code}")
        case.queries.append(len(seen))
        case.sql[url] = customer_selects(seen)
    began = time.perf_counter()
    for i in range(repeat):
        if i >= MIN_SAMPLES[0] and time.perf_counter() - began > budget:
            break
        url = case.urls[i % len(case.urls)]
        started = time.perf_counter()
        response = client.get(url)
        case.page_ms.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            case.errors.append(f"{url}: HTTP {response.status_code}")
        case.bare_ms.append(bare(raw, case.sql[url]))


def explain(raw: Any, pg: bool, case: Case) -> None:
    url = case.urls[0]
    cur = raw.cursor()
    for statement, parameters in case.sql.get(url, []):
        prefix = "EXPLAIN (ANALYZE, BUFFERS) " if pg else "EXPLAIN QUERY PLAN "
        cur.execute(prefix + statement, parameters)
        print(f"\n-- {case.name}: {url}\n{' '.join(statement.split())}")
        for row in cur.fetchall():
            print("   ", " | ".join(str(v) for v in row))
    cur.close()
    raw.commit()


def plugins_case(
    app: Any, client: Any, company_id: int, raw: Any, repeat: int, budget: float
) -> tuple[Case, Case, list[str]]:
    """The first page with every built-in plugin enabled, and with none: alternating blocks."""
    from core.db import db
    from core.models import Company

    manager = app.extensions["guanxi.plugins"]
    names = [n for n in manager.order if n != "core"]

    def switch(on: bool) -> None:
        with app.app_context():
            company = db.session.get(Company, company_id)
            for name in names if on else reversed(names):
                enabled = name in manager.enabled(company_id)
                if on and not enabled:
                    manager.enable(company, name)
                elif not on and enabled:
                    manager.disable(company, name)
                db.session.commit()

    none = Case("first page, no plugin", ["/customers/"])
    every = Case("first page, all plugins", ["/customers/"])
    recorder = app.extensions["bench.recorder"]
    for block in range(4):
        switch(on=block % 2 == 1)
        target = every if block % 2 else none
        part = Case(target.name, target.urls)
        measure(part, client, recorder, raw, max(MIN_SAMPLES[0], repeat // 2), budget / 2)
        target.page_ms += part.page_ms
        target.bare_ms += part.bare_ms
        target.queries += part.queries
        target.errors += part.errors
        target.sql.update(part.sql)
    switch(on=False)
    return none, every, names


def table(cases: list[Case]) -> None:
    head = (
        f"{'case':<36} {'n':>4} {'page p50':>9} {'page p95':>9} {'SQL p50':>8} {'SQL p95':>8} "
        f"{'ratio':>6} {'queries':>7}  targets (p95 ≤ {TARGET_MS:.0f} ms, ≤ {TARGET_RATIO:.0f}×)"
    )
    print(head)
    print("-" * len(head))
    for c in cases:
        p95, b95 = pct(c.page_ms, 0.95), pct(c.bare_ms, 0.95)
        ratio = p95 / b95 if b95 else float("inf")
        verdict = ", ".join(
            [
                "ok" if p95 <= TARGET_MS else "MISSED ms",
                "ok" if ratio <= TARGET_RATIO else "MISSED ratio",
            ]
        )
        queries = f"{min(c.queries)}-{max(c.queries)}" if c.queries else "-"
        errors = f"  {len(c.errors)} errors" if c.errors else ""
        print(
            f"{c.name:<36} {len(c.page_ms):>4} {pct(c.page_ms, 0.5):>9.1f} {p95:>9.1f} "
            f"{pct(c.bare_ms, 0.5):>8.1f} {b95:>8.1f} {ratio:>6.1f} {queries:>7}  {verdict}{errors}"
        )


def run(url: str, args: argparse.Namespace) -> int:
    from core.db import db

    app = make_app(url)
    errors: list[str] = []
    with app.app_context():
        engine = db.engine
        recorder = Recorder(engine)
        app.extensions["bench.recorder"] = recorder
        manager_client, company_id = login(app, "manager")
        # A rep of the first sales team: the record rule widens to the team's customers.
        rep_client, _ = login(app, "sales_rep", team="销售一部")
        cases = [
            case
            for case in build_cases(app, company_id)
            if not args.only or any(part in case.name for part in args.only)
        ]
        db.session.remove()
    # Requests run outside any app context of ours: each gets its own (and its own ``g``).
    raw = engine.raw_connection()
    pg = engine.dialect.name == "postgresql"
    try:
        for case in cases:
            client = rep_client if case.rep else manager_client
            measure(case, client, recorder, raw, args.repeat, args.budget)
            print(f"# {case.name}: {pct(case.page_ms, 0.95):.1f} ms p95", file=sys.stderr)
            errors += case.errors
        plugins = not args.only or any(part in "all plugins vs none" for part in args.only)
        if plugins:
            none, every, names = plugins_case(
                app, manager_client, company_id, raw, args.repeat, args.budget
            )
            errors += none.errors + every.errors
        if args.explain:
            for case in cases:
                explain(raw, pg, case)
            print()
    finally:
        raw.close()
    print(f"database: {url.split('://')[0]}, cpus {os.cpu_count()}, load {os.getloadavg()[0]:.1f}")
    table(cases)
    if plugins:
        print()
        table([none, every])
        ratio = pct(every.page_ms, 0.95) / pct(none.page_ms, 0.95)
        verdict = "ok" if ratio <= TARGET_PLUGINS else "MISSED"
        print(
            f"all plugins ({', '.join(names)}) vs none, first page p95: {ratio:.2f}× "
            f"(target ≤ {TARGET_PLUGINS}×: {verdict})"
        )
    for line in errors[:20]:
        print(f"error: {line}", file=sys.stderr)
    if errors and args.quick:
        return 1
    return 0


def main() -> None:
    from scratch import interruptible, scratch_database

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_CUSTOMERS:,} customers")
    parser.add_argument("--url", help="a database made by bench/generate.py --keep")
    parser.add_argument("--repeat", type=int, default=200, help="requests per case")
    parser.add_argument("--budget", type=float, default=40.0, help="seconds per case at most")
    parser.add_argument("--min-samples", type=int, default=20, help="requests per case at least")
    parser.add_argument("--explain", action="store_true", help="print the query plans")
    parser.add_argument(
        "--only", action="append", default=[], help="cases whose name contains this (repeatable)"
    )
    args = parser.parse_args()
    MIN_SAMPLES[0] = args.min_samples
    interruptible()
    scratch: Callable[[], Any] = (
        nullcontext if args.url else (lambda: scratch_database(args.database))
    )
    with scratch() as made:
        url = args.url
        if url is None:
            customers = QUICK_CUSTOMERS if args.quick else args.customers
            print(f"# generating {customers:,} customers on {args.database}", file=sys.stderr)
            started = time.perf_counter()
            generate(made.url, customers=customers, instance=str(made.folder))
            print(f"# generated in {time.perf_counter() - started:.0f} s", file=sys.stderr)
            url = made.url
        code = run(url, args)
    sys.exit(code)


if __name__ == "__main__":
    main()
