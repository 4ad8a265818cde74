"""Benchmark: recompute customer value (RFM, LTV, ABC, quadrant, revenue and value tiers) for a
whole company on SQLite.

    .venv/bin/python bench/value_recompute.py [--customers 100000] [--orders 1000000] [--keep]

Builds a fresh SQLite database with every migration of the app (the real schema and indexes),
a company with the sales plugin enabled, then writes with plain ``sqlite3`` ``executemany``:
N customers (a quarter of them prospects without orders), their purchase potential and share
of wallet (``sales_customer_ext``, four in five customers), and M orders over the last three
years (about 3 % cancelled) spread over the customers with orders. Then times
:func:`plugins.sales.value.recompute` for the company (it writes every value row, feeds
revenue and runs the core's classification) and commits.

Runs the recompute twice -- the first fills the empty value table, the second rewrites every
row as the nightly job does -- and prints both times, ``statements: K, K`` (the SQL statements
each ran, counted by a SQLAlchemy event listener) and, as the baseline of the same run,
the time plain ``sqlite3`` takes for one ``GROUP BY`` pass over the orders (the least any
recompute must read). Target: ≤ 5 s with 100,000 customers and 1,000,000 orders. Results:
docs/benchmarks.md.
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
    """An app on a new SQLite file with every migration run and a company with sales."""
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
        company = Company(code="bench", name="基准测试公司")
        db.session.add(company)
        db.session.commit()
        app.extensions["guanxi.plugins"].enable(company, "sales")
        db.session.commit()
        company_id = company.id
        db.engine.dispose()
    return app, company_id


def fill(path: Path, company_id: int, customers: int, orders: int, today: date) -> None:
    """Customers, their sales fields and orders, written with plain sqlite3."""
    rng = random.Random(7)
    moment = datetime.now(UTC).replace(tzinfo=None)
    now = moment.isoformat(sep=" ", timespec="microseconds")

    def created(i: int) -> str:  # customers of the last three years
        return (moment - timedelta(days=i % 1100)).isoformat(sep=" ", timespec="microseconds")

    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")
    first = (conn.execute("SELECT coalesce(max(id), 0) FROM customer").fetchone()[0]) + 1
    ids = range(first, first + customers)
    statuses = ["existing", "existing", "existing", "potential"]
    conn.executemany(
        "INSERT INTO customer (id, company_id, name, kind, is_organization, status, created_at, "
        "updated_at, version) VALUES (?, ?, ?, 'business', 1, ?, ?, ?, 1)",
        ((i, company_id, f"客户{i}", statuses[i % 4], created(i), now) for i in ids),
    )
    conn.executemany(
        "INSERT INTO sales_customer_ext (id, purchase_potential, share_of_wallet) VALUES (?, ?, ?)",
        (
            (i, rng.choice([50_000, 200_000, 1_000_000, 5_000_000]), rng.randint(0, 100))
            for i in ids
            if i % 5
        ),
    )
    buyers = [i for i in ids if i % 4 != 3]
    states = ["open"] * 60 + ["paid"] * 37 + ["cancelled"] * 3

    def rows():  # noqa: ANN202
        # In the order they were taken (by date), as a real order table fills up.
        days = sorted((rng.randint(0, 3 * 365) for _ in range(orders)), reverse=True)
        for n, days_ago in enumerate(days, start=1):
            amount = rng.randint(1, 200) * 500
            yield (
                n,
                company_id,
                f"SO-{n:08d}",
                rng.choice(buyers),
                (today - timedelta(days=days_ago)).isoformat(),
                amount,
                amount * rng.randint(50, 90) // 100,
                amount if rng.random() < 0.5 else 0,
                rng.choice(states),
                now,
            )

    conn.executemany(
        "INSERT INTO sales_order (id, company_id, number, customer_id, ordered_on, amount, cost, "
        "paid, state, created_at, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
        rows(),
    )
    conn.commit()
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # as a database at rest is
    conn.close()


BASELINE = (
    "SELECT customer_id, min(ordered_on), max(ordered_on), count(*), sum(amount), "
    "sum(amount - cost) FROM sales_order WHERE +company_id = ? AND state != 'cancelled' "
    "GROUP BY customer_id"
)


def baseline(path: Path, company_id: int) -> float:
    """Seconds of the least any recompute must do: one GROUP BY pass over the orders, read
    with plain sqlite3 (nothing written)."""
    conn = sqlite3.connect(path)
    started = time.perf_counter()
    conn.execute(BASELINE, (company_id,)).fetchall()
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the database and print where")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, seconds: CI runs it so the script never rots",
    )
    args = parser.parse_args()
    if args.quick:
        args.customers, args.orders = 1_000, 10_000

    from sqlalchemy import event

    from core.db import db
    from core.tenancy import company_scope
    from plugins.sales import value

    folder = Path(tempfile.mkdtemp(prefix="guanxi-value-"))
    try:
        app, company_id = fresh_app(folder)
        today = date.today()
        started = time.perf_counter()
        fill(folder / "guanxi.db", company_id, args.customers, args.orders, today)
        print(f"(data written in {time.perf_counter() - started:.1f} s)", file=sys.stderr)
        runs = []
        statements: list[str] = []

        def count(conn, cursor, statement, *rest) -> None:  # noqa: ANN001
            statements.append(statement)

        for _ in range(2):  # the first fills the value table, the second rewrites it (nightly)
            statements.clear()
            with app.app_context(), company_scope(company_id):
                db.session.execute(db.text("SELECT 1"))  # connect (pragmas) before timing
                event.listen(db.engine, "before_cursor_execute", count)
                started = time.perf_counter()
                counts = value.recompute(today=today)
                db.session.commit()
                runs.append((time.perf_counter() - started, len(statements), counts))
                event.remove(db.engine, "before_cursor_execute", count)
                db.engine.dispose()
        floor = baseline(folder / "guanxi.db", company_id)
        size = f"{args.customers} customers and {args.orders} orders"
        print(f"recompute, first (empty value table): {runs[0][0]:.2f} s for {size}")
        print(f"recompute, again (as every night): {runs[1][0]:.2f} s")
        print(f"statements: {runs[0][1]}, {runs[1][1]}")
        print(f"baseline, one GROUP BY over the orders in sqlite3: {floor:.2f} s")
        print(f"(changes: {runs[0][2]})", file=sys.stderr)
        if args.keep:
            print(f"(database kept in {folder})", file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
