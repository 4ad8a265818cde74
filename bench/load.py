"""Load run: 50 concurrent users reading and writing against ``guanxi serve`` (gunicorn).

    .venv/bin/python bench/load.py --database sqlite|postgresql [--users 50] [--seconds 60]
        [--workers 4] [--writes 0.2] [--customers 5000]

1. A scratch database (a temporary SQLite file, or a PostgreSQL database created here and
   dropped at the end; bench/scratch.py) gets every migration and the demo company
   ``demo-pharma`` exactly as ``guanxi demo`` builds it (core/demo.py: users of every role,
   customers, contacts, interactions, tickets with SLA clocks, the pharma and marketing
   plugins' demo data), plus ``--customers`` generated customers imported through
   ``core.importer`` (so lists and searches are not toy-sized), and one login (admin, manager
   or service agent, in turn) with a personal API token per virtual user.
2. ``guanxi serve --workers N`` (gunicorn, sync workers) starts on a free port of 127.0.0.1.
   Four sync workers on the two cores: the pages are CPU-bound (templates, SQLAlchemy), and
   two per core let one worker's waits on the database (SQLite's write lock, a PostgreSQL round
   trip, a commit's fsync) overlap another's work; more only adds memory and switching.
3. ``--users`` threads (bench/load_users.py) log in through the login form and, for
   ``--seconds``, repeat weighted actions without pause: about 80 % reads (lists, search,
   detail pages, API reads) and 20 % writes (interactions, customers and tickets through the
   web forms with their CSRF token, interactions and customer changes through the API).

It prints, per kind of request, the requests, errors, requests per second and the 50th, 95th
and 99th percentile latencies; scans the server's log for "database is locked", tracebacks,
worker timeouts and 5xx answers; stops the server and drops the scratch database whatever
happens (Ctrl-C included), and exits 1 when there was any error. Then, as every benchmark
here, it measures a baseline in the same run: a bare Flask JSON endpoint
(bench/load_baseline.py) under the same gunicorn, workers and users for
``--baseline-seconds``, and prints the ratio. Results: docs/benchmarks.md and
docs/security.md.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from load_users import READS, WRITES, BaselineUser, Stats, Target, User  # noqa: E402
from scratch import GUANXI, Scratch, free_port, interruptible, scratch_database  # noqa: E402

PASSWORD = "load-test-1"
ROLES = ("admin", "manager", "service_agent")
LOG_PATTERNS = {
    "database is locked": re.compile(r"database is locked"),
    "tracebacks": re.compile(r"^Traceback \(most recent call last\)", re.M),
    "worker timeouts": re.compile(r"WORKER TIMEOUT"),
    "5xx answers": re.compile(r'" 5\d\d '),
}


#: A line of gunicorn's access log (``"GET /path HTTP/1.1" 200 …``).
ACCESS_LINE = re.compile(r'^.*"[A-Z]+ \S+ HTTP/[\d.]+" \d{3} ', re.M)


def seed(scratch: Scratch, users: int, customers: int) -> Target:
    """The demo company, the extra customers and a login with a token per user."""
    from faker import Faker
    from sqlalchemy import select

    from core import clocks, demo, tokens
    from core.app import create_app
    from core.db import db
    from core.migrations import upgrade
    from core.models import Company, Customer, Membership, ServiceTicket
    from core.models import User as UserRow
    from core.plugins import current
    from core.tenancy import company_scope, unscoped

    app = create_app({"SQLALCHEMY_DATABASE_URI": scratch.url, "INSTANCE_PATH": str(scratch.folder)})
    with app.app_context():
        upgrade()
        # core.demo.create(), for its first company only (the three take minutes).
        manager = current()
        fake = Faker("zh_CN")
        fake.seed_instance(20261124)
        rng = random.Random(20261124)
        boss = demo._user("boss@guanxi.demo", "王总")
        code, name, slug, plugins = demo.COMPANIES[0]
        company = Company(code=code, name=name)
        db.session.add(company)
        db.session.flush()
        for plugin in plugins:
            manager.enable(company, plugin)
        with company_scope(company.id):
            demo._populate(company, slug, boss, fake, rng)
            enabled = manager.enabled(company.id)
            for plugin in manager.order:
                if plugin in enabled:
                    manager.hooks(frozenset({plugin})).guanxi_demo_data(company=company, fake=fake)
            db.session.commit()
            clocks.scan()
            db.session.commit()
            if customers:
                import_customers(scratch, customers)
            first = UserRow(email="load00@pharma.demo", name="压测00")
            first.set_password(PASSWORD)
            logins = []
            for i in range(users):
                user = first if i == 0 else UserRow(email=f"load{i:02d}@pharma.demo")
                user.name, user.password_hash = f"压测{i:02d}", first.password_hash
                db.session.add(user)
                db.session.flush()
                with unscoped():
                    db.session.add(
                        Membership(user_id=user.id, company_id=company.id, role=ROLES[i % 3])
                    )
                    db.session.flush()
                _token, secret = tokens.issue(user, company.id, "bench/load.py")
                logins.append((user.email, PASSWORD, secret))
            db.session.commit()
            customer_ids = list(db.session.scalars(select(Customer.id)))
            ticket_ids = list(db.session.scalars(select(ServiceTicket.id)))
            names = list(db.session.scalars(select(Customer.name).limit(2000)))
        db.engine.dispose()
    terms = sorted({n[:1] for n in names} | {n[:2] for n in names[:200]})
    return Target("127.0.0.1", 0, logins, customer_ids, ticket_ids, terms)


def import_customers(scratch: Scratch, count: int) -> None:
    """``count`` generated customers through the real import (bench/import_customers.py)."""
    import csv

    from import_customers import HEADER, generate

    from core import importer

    path = scratch.folder / "customers.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(generate(count, seed=3))
    outcome = importer.import_file(path, "customers", mode="atomic")
    if outcome.get("status") != "done" or outcome.get("created") != count:
        raise SystemExit(f"seeding the customers failed: {outcome.get('errors', [])[:3]}")


class Server:
    """``guanxi serve`` (or ``command``) in its own process group, its output in ``log``."""

    def __init__(
        self, scratch: Scratch, port: int, workers: int, command: list[str] | None = None
    ) -> None:
        self.log = scratch.folder / ("server.log" if command is None else "baseline.log")
        self.url = f"http://127.0.0.1:{port}"
        command = command or [GUANXI, "serve", "--port", str(port), "--workers", str(workers)]
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                command,
                env=scratch.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, path: str = "/login", timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited:\n{self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=5) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise SystemExit(f"guanxi serve did not answer within {timeout} s")

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        group = os.getpgid(self.process.pid)
        os.killpg(group, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)
            self.process.wait()


def drive(users: list[User]) -> tuple[Stats, float]:
    """Start ``users``, wait for them; their merged stats and the seconds they took."""
    started = time.monotonic()
    for user in users:
        user.start()
    for user in users:
        user.join()
    stats = Stats()
    for user in users:
        stats.merge(user.stats)
    return stats, time.monotonic() - started


def baseline(scratch: Scratch, args: argparse.Namespace) -> tuple[float, float, int]:
    """Requests per second, p95 (ms) and errors of a bare Flask endpoint under the same
    gunicorn, workers and number of users, for ``--baseline-seconds``."""
    port = free_port()
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    command = [
        gunicorn, "--chdir", str(Path(__file__).resolve().parent), "--workers",
        str(args.workers), "--bind", f"127.0.0.1:{port}", "load_baseline:app",
    ]  # fmt: skip
    server = Server(scratch, port, args.workers, command)
    try:
        server.wait_ready("/")
        target = Target("127.0.0.1", port, [("", "", "")], [], [], [])
        deadline = time.monotonic() + args.baseline_seconds
        stats, elapsed = drive([BaselineUser(i, target, deadline, 0) for i in range(args.users)])
    finally:
        server.stop()
    values = sorted(stats.latencies.get("baseline", []))
    return len(values) / elapsed, percentile(values, 0.95), sum(stats.errors.values())


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q`` percentile of sorted ``values`` (milliseconds)."""
    return values[min(len(values) - 1, int(q * len(values)))] * 1000 if values else 0.0


def report(stats: Stats, seconds: float, log_text: str) -> tuple[int, dict[str, int]]:
    """Print the table; the number of errors and of log findings."""
    order = ["login", "form page", *READS, *WRITES]
    print(f"{'kind':<22} {'requests':>8} {'errors':>6} {'req/s':>7} {'p50 ms':>7} "
          f"{'p95 ms':>7} {'p99 ms':>7}")  # fmt: skip
    every: list[float] = []
    for kind in order:
        values = sorted(stats.latencies.get(kind, []))
        every.extend(values)
        print(
            f"{kind:<22} {len(values):>8} {stats.errors.get(kind, 0):>6} "
            f"{len(values) / seconds:>7.1f} {percentile(values, 0.5):>7.0f} "
            f"{percentile(values, 0.95):>7.0f} {percentile(values, 0.99):>7.0f}"
        )
    every.sort()
    errors = sum(stats.errors.values())
    reads = sum(len(stats.latencies.get(k, [])) for k in (*READS, "form page"))
    writes = sum(len(stats.latencies.get(k, [])) for k in WRITES)
    print(
        f"{'all':<22} {len(every):>8} {errors:>6} {len(every) / seconds:>7.1f} "
        f"{percentile(every, 0.5):>7.0f} {percentile(every, 0.95):>7.0f} "
        f"{percentile(every, 0.99):>7.0f}"
    )
    print(f"reads {reads} (form pages included), writes {writes}, in {seconds:.1f} s")
    found = {name: len(p.findall(log_text)) for name, p in LOG_PATTERNS.items()}
    answered = len(ACCESS_LINE.findall(log_text)) - 1  # the readiness probe
    print(
        f"server log: {answered} requests answered; "
        + ", ".join(f"{name} {n}" for name, n in found.items())
    )
    for sample in stats.samples[:10]:
        print(f"  error: {sample[:200]}")
    return errors, found


def run(args: argparse.Namespace) -> int:
    with scratch_database(args.database) as scratch:
        t0 = time.monotonic()
        target = seed(scratch, args.users, args.customers)
        print(
            f"{args.database}: demo-pharma with {len(target.customer_ids):,} customers and "
            f"{len(target.ticket_ids)} tickets, {args.users} logins; set-up "
            f"{time.monotonic() - t0:.0f} s"
        )
        port = free_port()
        server = Server(scratch, port, args.workers)
        try:
            server.wait_ready()
            target.port = port
            print(f"guanxi serve on {server.url}, {args.workers} sync workers; {args.users} "
                  f"users for {args.seconds} s, {args.writes:.0%} writes")  # fmt: skip
            deadline = time.monotonic() + args.seconds
            stats, elapsed = drive(
                [User(i, target, deadline, args.seed, args.writes) for i in range(args.users)]
            )
        finally:
            server.stop()
        errors, found = report(stats, elapsed, server.log.read_text(errors="replace"))
        if args.keep_log:
            Path(args.keep_log).write_text(server.log.read_text(errors="replace"))
        if args.baseline_seconds:
            rate, p95, failed = baseline(scratch, args)
            total = sum(len(v) for v in stats.latencies.values())
            print(
                f"baseline, a bare Flask JSON endpoint, same gunicorn and users, "
                f"{args.baseline_seconds:.0f} s: {rate:.0f} req/s, p95 {p95:.0f} ms, "
                f"errors {failed}; Guanxi's mix / baseline = {total / elapsed / rate:.3f}"
            )
    bad = errors or any(found.values())
    print("FAILED" if bad else "no errors")
    return 1 if bad else 0


def main() -> None:
    interruptible()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument("--customers", type=int, default=5000, help="extra imported customers")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--writes", type=float, default=0.2, help="share of write actions")
    parser.add_argument(
        "--baseline-seconds", type=float, default=10, help="bare Flask run afterwards (0: none)"
    )
    parser.add_argument("--keep-log", help="copy the server's log to this file")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, seconds: CI runs it so the script never rots",
    )
    args = parser.parse_args()
    if args.quick:
        args.users, args.seconds, args.customers = 4, 3.0, 200
        args.baseline_seconds = 2.0
    try:
        sys.exit(run(args))
    except KeyboardInterrupt:
        print("interrupted: what was started is stopped, the scratch database is gone")
        sys.exit(130)


if __name__ == "__main__":
    main()
