"""Benchmark: recompute every doctor's tier for a whole company on SQLite, beside a per-row ORM
loop doing the same work.

    .venv/bin/python bench/pharma_tiering.py [--doctors 100000] [--visits 1000000]
                                             [--orders 200000] [--sample 2000] [--keep]

Builds a fresh SQLite database with every migration of the app, a company with the pharma plugin
enabled (its default scheme is seeded: prescription potential 35, adoption 20, academic
influence 15, visits in 90 days 15, orders of 12 months 15; tiers A/B/C/D by score), then writes
with plain ``sqlite3`` ``executemany``: N doctors with their archive fields
(``pharma_customer_ext``), M visits (interactions of kind ``visit``) over the last year and K
orders over the last two years, spread over the doctors. Then times
:func:`plugins.pharma.tiering.recompute` twice -- the first fills the empty tier table (every
doctor gets a first tier and a history row), the second rewrites it as the nightly job does --
and prints both, ``tier recompute: X.XX s`` being the nightly one, and the statements each run
took (counted by a SQLAlchemy event listener).

In the same run, as the baseline, a per-row ORM loop computes the same tiers for a sample of
doctors the way a naive implementation would (load the doctor and its fields, count its visits,
sum its orders, score in Python, read and write its tier row, add a history row when the tier
moves) and its time is scaled up to the number of doctors: ``per-row ORM (scaled): Y s``.
The loop's work is rolled back. Target: recompute ≤ 2 s for 100,000 doctors and 1,000,000
visits. Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def fresh_app(folder: Path):  # noqa: ANN201 - a Flask app
    """An app on a new SQLite file with every migration run and a company with pharma."""
    from core.app import create_app
    from core.db import db
    from core.migrations import upgrade
    from core.models import Company

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'guanxi.db'}",
            "INSTANCE_PATH": str(folder),
            "SECRET_KEY": "bench",
            "LOAD_ENTRY_POINTS": False,
        }
    )
    with app.app_context():
        upgrade()
        company = Company(code="bench", name="基准测试医药公司")
        db.session.add(company)
        db.session.commit()
        app.extensions["guanxi.plugins"].enable(company, "pharma")  # seeds the default scheme
        db.session.commit()
        company_id = company.id
        db.engine.dispose()
    return app, company_id


def fill(path: Path, company_id: int, doctors: int, visits: int, orders: int) -> None:
    """Doctors, their archive fields, visits and orders, written with plain sqlite3."""
    rng = random.Random(11)
    moment = datetime.now(UTC).replace(tzinfo=None)
    now = moment.isoformat(sep=" ", timespec="microseconds")
    today = date.today()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")
    first = (conn.execute("SELECT coalesce(max(id), 0) FROM customer").fetchone()[0]) + 1
    ids = range(first, first + doctors)
    conn.executemany(
        "INSERT INTO customer (id, company_id, name, kind, is_organization, status, created_at, "
        "updated_at, version) VALUES (?, ?, ?, 'doctor', 0, 'existing', ?, ?, 1)",
        ((i, company_id, f"医生{i}", now, now) for i in ids),
    )
    departments = ["心内科", "肿瘤科", "内分泌科", "呼吸科"]
    conn.executemany(
        "INSERT INTO pharma_customer_ext (id, department, prescription_potential, "
        "academic_influence, adoption) VALUES (?, ?, ?, ?, ?)",
        (
            (i, rng.choice(departments), rng.randint(0, 100), rng.randint(0, 100),
             rng.randint(0, 100) if i % 7 else None)
            for i in ids
        ),
    )  # fmt: skip

    def visit_rows():  # noqa: ANN202
        seconds = sorted((rng.randint(0, 365 * 86400) for _ in range(visits)), reverse=True)
        for n, ago in enumerate(seconds, start=1):
            at = (moment - timedelta(seconds=ago)).isoformat(sep=" ", timespec="microseconds")
            yield (n, company_id, rng.choice(ids), "visit", at, 30)

    conn.executemany(
        "INSERT INTO interaction (id, company_id, customer_id, kind, occurred_at, "
        "duration_minutes, version) VALUES (?, ?, ?, ?, ?, ?, 1)",
        visit_rows(),
    )

    def order_rows():  # noqa: ANN202
        days = sorted((rng.randint(0, 2 * 365) for _ in range(orders)), reverse=True)
        for n, ago in enumerate(days, start=1):
            amount = rng.randint(1, 100) * 500
            state = "cancelled" if rng.random() < 0.03 else "open"
            on = (today - timedelta(days=ago)).isoformat()
            yield (n, company_id, f"SO-{n:08d}", rng.choice(ids), on, amount, state, now)

    conn.executemany(
        "INSERT INTO sales_order (id, company_id, number, customer_id, ordered_on, amount, cost, "
        "paid, state, created_at, version) VALUES (?, ?, ?, ?, ?, ?, 0, 0, ?, ?, 1)",
        order_rows(),
    )
    conn.commit()
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def per_row(sample: int) -> float:
    """Seconds a naive per-doctor ORM loop takes for ``sample`` doctors (rolled back)."""
    from sqlalchemy import func, select

    from core import fields as ext
    from core.db import db, utcnow
    from core.models import Customer, Interaction
    from core.plugins import current
    from core.reports import today as company_today
    from plugins.pharma import tiering
    from plugins.pharma.models import DoctorTier, TierHistory
    from plugins.sales.models import Order

    version = tiering.active_version()
    config = tiering.load_config(version)
    declared = current().registry.fields_for("customer", ["pharma"])
    today, now = company_today(), utcnow()
    started = time.perf_counter()
    doctors = db.session.scalars(
        select(Customer).where(Customer.kind == "doctor").order_by(Customer.id).limit(sample)
    ).all()
    for doctor in doctors:
        values = ext.load(declared, [doctor.id])[doctor.id]
        normalised = []
        for c in config.criteria:
            if c.source == "field":
                raw = float(values.get(c.field) or 0)
            elif c.source == "visits":
                raw = db.session.scalar(
                    select(func.count()).where(
                        Interaction.customer_id == doctor.id,
                        Interaction.kind == "visit",
                        Interaction.occurred_at >= now - timedelta(days=c.days),
                    )
                )
            else:
                raw = float(
                    db.session.scalar(
                        select(func.coalesce(func.sum(Order.amount), 0)).where(
                            Order.customer_id == doctor.id,
                            Order.state != "cancelled",
                            Order.ordered_on > today - timedelta(days=c.days),
                        )
                    )
                )
            normalised.append(round(max(0.0, min(100.0, raw * 100 / c.cap)), 2))
        score = round(
            sum(c.weight * n for c, n in zip(config.criteria, normalised, strict=True))
            / config.total_weight,
            2,
        )
        tier = next((t.name for t in config.tiers if score >= t.bound), config.tiers[-1].name)
        row = db.session.scalar(select(DoctorTier).where(DoctorTier.customer_id == doctor.id))
        if row is None:
            row = DoctorTier(customer_id=doctor.id)
            db.session.add(row)
        if row.locked_until and row.locked_until >= today:
            continue
        if row.tier != tier:
            db.session.add(
                TierHistory(customer_id=doctor.id, old_tier=row.tier, new_tier=tier, score=score)
            )
        row.tier, row.score, row.computed_at = tier, score, now
        db.session.flush()
    elapsed = time.perf_counter() - started
    db.session.rollback()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--doctors", type=int, default=100_000)
    parser.add_argument("--visits", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--sample", type=int, default=2_000)
    parser.add_argument("--keep", action="store_true", help="keep the database and print where")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, seconds: CI runs it so the script never rots",
    )
    args = parser.parse_args()
    if args.quick:
        args.doctors, args.visits, args.orders, args.sample = 500, 5_000, 1_000, 100

    from sqlalchemy import event

    from core.db import db
    from core.tenancy import company_scope
    from plugins.pharma import tiering

    folder = Path(tempfile.mkdtemp(prefix="guanxi-tiering-"))
    try:
        app, company_id = fresh_app(folder)
        started = time.perf_counter()
        fill(folder / "guanxi.db", company_id, args.doctors, args.visits, args.orders)
        print(f"(data written in {time.perf_counter() - started:.1f} s)", file=sys.stderr)
        runs = []
        statements: list[str] = []

        def count(conn, cursor, statement, *rest) -> None:  # noqa: ANN001
            statements.append(statement)

        for _ in range(2):  # the first fills the tier table, the second rewrites it (nightly)
            statements.clear()
            with app.app_context(), company_scope(company_id):
                db.session.execute(db.text("SELECT 1"))  # connect (pragmas) before timing
                event.listen(db.engine, "before_cursor_execute", count)
                started = time.perf_counter()
                counts = tiering.recompute()
                db.session.commit()
                runs.append((time.perf_counter() - started, len(statements), counts))
                event.remove(db.engine, "before_cursor_execute", count)
                db.engine.dispose()
        with app.app_context(), company_scope(company_id):
            loop = per_row(args.sample)
            db.engine.dispose()
        scaled = loop * args.doctors / args.sample
        size = f"{args.doctors} doctors, {args.visits} visits and {args.orders} orders"
        print(f"tier recompute, first (empty tier table): {runs[0][0]:.2f} s for {size}")
        print(f"tier recompute: {runs[1][0]:.2f} s")
        print(f"statements: {runs[0][1]}, {runs[1][1]}")
        print(
            f"per-row ORM (scaled): {scaled:.0f} s "
            f"({loop:.2f} s for {args.sample} doctors × {args.doctors / args.sample:g})"
        )
        print(f"(counts: {runs[0][2]}, {runs[1][2]})", file=sys.stderr)
        if args.keep:
            print(f"(database kept in {folder})", file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
