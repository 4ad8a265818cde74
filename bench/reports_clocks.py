"""Report queries over a million tickets and the deadline-clock scan over a million open
obligations, each next to the bare SQL of the same question.

    .venv/bin/python bench/reports_clocks.py --database sqlite|postgresql [--customers N]
        [--repeat 5] [--url URL] [--quick]

Targets (issue 12): each report (tickets by state, type and priority; SLA compliance) at most
**500 ms** of server time; the clock scan over 1M open obligations at most **1 s**.

1. Data: bench/generate.py's company on a scratch database (``--customers`` customers, as many
   tickets, 65 % of them open with their two clocks: about 0.95 × N obligations not met), or
   the database a previous ``bench/generate.py --keep`` left (``--url``; the scan changes its
   escalation levels and adds notifications).
2. Reports: the real pages, ``GET /reports/tickets?dimension=…`` and ``GET /reports/sla?…``
   over the three years the data spans, through the Flask test client as an admin of the
   company (server time: around the request, template and SVG chart included), one warm-up
   then ``--repeat`` timed runs. Next to each, the bare SQL that answers the same question
   (a ``GROUP BY`` over the company's tickets, or its obligations for SLA), run with the raw
   DB-API cursor.
3. Clock scan: ``core.clocks.scan(now)``, what the ``clocks.scan`` job runs every five minutes,
   as it finds the data (steady state: levels already where ``now`` puts them), then 30
   minutes later, then a day later (a wave: every obligation whose warn, due or escalate
   moment passed in that day is raised and its people notified). Next to it, the bare SQL
   count of the open obligations past their warning moment.

Prints one line per measure: the figure, the baseline, the ratio, and the target's verdict.
``--quick`` (2,000 customers, 2 repeats) is the CI smoke run. Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REPORTS = [
    ("tickets by state", "/reports/tickets?dimension=state", "state"),
    ("tickets by type", "/reports/tickets?dimension=type", "type"),
    ("tickets by priority", "/reports/tickets?dimension=priority", "priority"),
    ("SLA compliance", "/reports/sla", None),
]
REPORT_TARGET_MS = 500
SCAN_TARGET_MS = 1000


def _bare(raw: Any, sql: str) -> float:
    """Milliseconds of one run of ``sql`` on the raw connection, all rows fetched."""
    cur = raw.cursor()
    began = time.perf_counter()
    cur.execute(sql)
    cur.fetchall()
    spent = (time.perf_counter() - began) * 1000
    raw.commit()
    return spent


def _line(what: str, ms: float, base_ms: float, target_ms: float) -> None:
    verdict = "met" if ms <= target_ms else "MISSED"
    print(
        f"{what:<46} {ms:>9.1f} ms   bare SQL {base_ms:>8.1f} ms   ratio {ms / base_ms:>6.1f}   "
        f"target ≤ {target_ms:.0f} ms: {verdict}"
    )


def run(url: str, company_id: int, repeat: int) -> int:
    from sqlalchemy import func, select

    from core import clocks
    from core.app import create_app
    from core.db import db
    from core.models import Company, Membership, Obligation, User
    from core.tenancy import unscoped

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "INSTANCE_PATH": tempfile.mkdtemp(prefix="guanxi-reports-"),
            "SECRET_KEY": "bench",
            "WTF_CSRF_ENABLED": False,
        }
    )
    missed = 0
    with app.app_context(), unscoped():
        company = db.session.get(Company, company_id)
        admin = User(email="report-admin@bench.test", name="报表管理员")
        admin.set_password("bench-12345")
        db.session.add(admin)
        db.session.flush()
        db.session.add(Membership(user_id=admin.id, company_id=company.id, role="admin"))
        db.session.commit()
        admin_id = admin.id
        open_count = db.session.scalar(
            select(func.count())
            .select_from(Obligation)
            .where(Obligation.company_id == company_id, Obligation.met_at.is_(None))
        )
        tickets = db.session.scalar(
            select(func.count()).select_from(db.metadata.tables["service_ticket"])
        )
        print(f"company {company.code}: {tickets:,} tickets, {open_count:,} open obligations")
        db.session.remove()

    span_start = (datetime.now(UTC) - timedelta(days=3 * 365 + 2)).date().isoformat()
    end = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = str(admin_id)
        session["_fresh"] = True
        session["company_id"] = company_id
    with app.app_context():
        raw = db.engine.raw_connection()
    try:
        for label, path, column in REPORTS:
            url_ = f"{path}{'&' if '?' in path else '?'}start={span_start}&end={end}"
            answer = client.get(url_)
            if answer.status_code != 200:
                print(f"{label}: HTTP {answer.status_code}")
                return 1
            spent = []
            for _ in range(repeat):
                began = time.perf_counter()
                answer = client.get(url_)
                spent.append((time.perf_counter() - began) * 1000)
                assert answer.status_code == 200
            if column:
                sql = (
                    f"SELECT {column}, count(*) FROM service_ticket WHERE company_id = "
                    f"{company_id} GROUP BY {column}"
                )
            else:
                sql = (
                    "SELECT kind, count(*), sum(CASE WHEN met_at <= due_at THEN 1 ELSE 0 END) "
                    f"FROM obligation WHERE company_id = {company_id} GROUP BY kind"
                )
            base = statistics.median(_bare(raw, sql) for _ in range(repeat))
            ms = statistics.median(spent)
            _line(f"report: {label} (median)", ms, base, REPORT_TARGET_MS)
            missed += ms > REPORT_TARGET_MS

        now = datetime.now(UTC)
        for label, at in (
            ("clock scan, steady state", now),
            ("clock scan, 30 minutes later", now + timedelta(minutes=30)),
            ("clock scan, a day later (a wave)", now + timedelta(days=1)),
        ):
            stamp = at.replace(tzinfo=None).isoformat(sep=" ")
            base = _bare(
                raw,
                "SELECT count(*) FROM obligation WHERE met_at IS NULL AND paused_at IS NULL "
                f"AND warn_at <= '{stamp}'",
            )
            with app.app_context():
                began = time.perf_counter()
                raised = clocks.scan(at)
                ms = (time.perf_counter() - began) * 1000
                db.session.remove()
            _line(f"{label} ({raised:,} raised)", ms, base, SCAN_TARGET_MS)
            missed += ms > SCAN_TARGET_MS
    finally:
        raw.close()
        with app.app_context():
            db.engine.dispose()
    return missed


def main() -> None:
    from generate import QUICK_CUSTOMERS, generate
    from scratch import interruptible, scratch_database

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--url", help="a database bench/generate.py --keep left (not rebuilt)")
    parser.add_argument("--company", type=int, help="with --url: the company id (default: 1)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, seconds: CI runs it so the script never rots",
    )
    args = parser.parse_args()
    if args.quick:
        args.customers, args.repeat = QUICK_CUSTOMERS, 2
    interruptible()
    if args.url:
        run(args.url, args.company or 1, args.repeat)
        return
    with scratch_database(args.database) as scratch:
        began = time.perf_counter()
        made = generate(scratch.url, customers=args.customers, instance=str(scratch.folder))
        print(f"generated {args.customers:,} customers in {time.perf_counter() - began:.0f} s")
        run(scratch.url, made["company_id"], args.repeat)


if __name__ == "__main__":
    main()
