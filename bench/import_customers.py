"""Benchmark: import generated customers through the real import path, next to raw sqlite3.

    .venv/bin/python bench/import_customers.py [--rows N] [--mode atomic|batched] [--keep]

Generates N customers (Chinese names from Faker's zh_CN data, unique mobile numbers, kinds,
regions, revenue, and two fields of the pharma plugin: beds and professional title) into a
UTF-8 CSV, then on a fresh SQLite database (every migration run, a company with the pharma
plugin enabled, one admin):

1. ``guanxi import`` -- :func:`core.importer.import_file`, the function ``guanxi import`` and
   the web's background task call: reads and checks the file, looks for duplicates, writes the
   customers and their pharma fields, classifies them, commits, writes the audit row;
2. ``raw sqlite3 executemany`` -- the same rows, already as tuples in memory, written with
   plain ``sqlite3`` ``executemany`` into an equivalent database (the same tables, indexes,
   foreign keys and pragmas: WAL, synchronous=NORMAL, foreign_keys=ON, the 64 MB page cache
   an import sets), then committed.

Prints exactly two lines, ``guanxi import: N rows/s`` then ``raw sqlite3 executemany: N
rows/s``; the ratio and a timing breakdown go to stderr. Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

HEADER = ["编号", "客户名称", "手机", "类型", "地区", "状态", "收入", "床位数", "职称"]


def generate(rows: int, seed: int = 7) -> list[list[str]]:
    """``rows`` customers as CSV rows (text cells, as a spreadsheet holds them)."""
    from faker.providers.address.zh_CN import Provider as Address
    from faker.providers.person.zh_CN import Provider as Person
    from faker.providers.phone_number.zh_CN import Provider as Phone

    rng = random.Random(seed)
    surnames = list(Person.last_names)
    weights = list(Person.last_names.values())
    given = list(Person.first_names)
    prefixes = [str(p) for p in Phone.phonenumber_prefixes]
    provinces = list(Address.provinces)
    kinds = ["consumer", "business", "hospital", "doctor", "医生", "医院"]
    titles = ["chief", "associate", "attending", "resident", "主任医师", ""]
    numbers = rng.sample(range(10**8), rows)
    last = rng.choices(surnames, weights, k=rows)
    out = []
    for i in range(rows):
        name = last[i] + rng.choice(given) + (rng.choice(given) if i % 3 else "")
        out.append(
            [
                f"C{i + 1:07d}",
                name,
                f"{rng.choice(prefixes)}{numbers[i]:08d}",
                kinds[i % len(kinds)],
                provinces[i % len(provinces)],
                "existing" if i % 4 else "potential",
                f"{rng.randint(0, 3_000_000)}.{i % 100:02d}",
                str(rng.choice([0, 100, 500, 1200])) if i % 2 else "",
                titles[i % len(titles)],
            ]
        )
    return out


def fresh_app(folder: Path):  # noqa: ANN201 - a Flask app
    from core.app import create_app
    from core.db import db
    from core.migrations import upgrade
    from core.models import Company, Membership, User
    from core.tenancy import unscoped

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
        app.extensions["guanxi.plugins"].enable(company, "pharma")
        user = User(email="admin@bench.test", name="管理员")
        user.set_password("bench")
        db.session.add(user)
        db.session.flush()
        with unscoped():
            db.session.add(Membership(user_id=user.id, company_id=company.id, role="admin"))
            db.session.commit()
        ids = company.id, user.id
    return app, ids


def import_guanxi(app, company_id: int, user_id: int, path: Path) -> tuple[float, dict]:  # noqa: ANN001
    from core import importer
    from core.tenancy import company_scope

    with app.app_context(), company_scope(company_id):
        started = time.perf_counter()
        outcome = importer.import_file(path, "customers", user_id=user_id, mode=MODE)
        elapsed = time.perf_counter() - started
    return elapsed, outcome


def raw_rows(app, company_id: int, user_id: int, rows: list[list[str]]):  # noqa: ANN001, ANN201
    """The rows exactly as the import stores them (values the driver receives), with the
    classification a new customer gets under the default rules."""
    from datetime import UTC, datetime

    now = datetime.now(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    kinds = {"医生": "doctor", "医院": "hospital"}
    titles = {"主任医师": "chief"}
    customers, ext = [], []
    for i, r in enumerate(rows, start=1):
        revenue = float(r[6])
        tier = "A" if revenue >= 1e6 else "B" if revenue >= 2e5 else "C" if revenue >= 2e4 else "D"
        customers.append(
            (
                i,
                company_id,
                r[0],
                r[1],
                r[2],
                kinds.get(r[3], r[3]),
                r[4],
                r[5],
                revenue,
                0,
                user_id,
                now,
                now,
                1,
                tier,
                None if r[5] == "potential" else "new",
                "acquisition",
            )
        )
        if r[7] or r[8]:
            ext.append((i, int(r[7]) if r[7] else None, titles.get(r[8], r[8]) or None))
    return customers, ext


def raw_sqlite(source: Path, target: Path, customers: list, ext: list) -> float:
    """Plain sqlite3 into a database with the same tables as Guanxi's (DDL copied) and the
    same connection settings as an import's."""
    from core.bulkload import BULK_CACHE_KB

    # customer_search: the search index (core.search) that customer's triggers keep.
    names = ("company", "user", "channel", "customer", "customer_search", "pharma_customer_ext")
    with sqlite3.connect(source) as src:
        ddl = [
            sql
            for (sql,) in src.execute(
                f"SELECT sql FROM sqlite_master WHERE tbl_name IN ({','.join('?' * len(names))})"
                " AND sql IS NOT NULL"
                " ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 ELSE 2 END",
                names,
            )
        ]
        company = src.execute("SELECT * FROM company").fetchall()
        users = src.execute("SELECT * FROM user").fetchall()
    conn = sqlite3.connect(target)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA cache_size={BULK_CACHE_KB}")  # what the import connection uses
    for sql in ddl:
        conn.execute(sql)
    conn.executemany(f"INSERT INTO company VALUES ({','.join('?' * len(company[0]))})", company)
    conn.executemany(f"INSERT INTO user VALUES ({','.join('?' * len(users[0]))})", users)
    conn.commit()
    started = time.perf_counter()
    conn.executemany(
        "INSERT INTO customer (id, company_id, code, name, phone, kind, region, status, revenue, "
        "is_organization, owner_id, created_at, updated_at, version, value_tier, loyalty, "
        "lifecycle_stage) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        customers,
    )
    conn.executemany(
        "INSERT INTO pharma_customer_ext (id, beds, title) VALUES (?,?,?)",
        ext,
    )
    conn.commit()
    elapsed = time.perf_counter() - started
    count = conn.execute("SELECT count(*) FROM customer").fetchone()[0]
    conn.close()
    assert count == len(customers), count
    return elapsed


def same_rows(ours: Path, raw: Path) -> None:
    """Stop unless both databases hold the same customers and pharma fields."""
    columns = (
        "id, code, name, phone, kind, region, status, revenue, is_organization, owner_id, "
        "value_tier, loyalty, lifecycle_stage, version"
    )
    for sql in (
        f"SELECT {columns} FROM customer ORDER BY id",
        "SELECT id, beds, title FROM pharma_customer_ext ORDER BY id",
    ):
        with sqlite3.connect(ours) as a, sqlite3.connect(raw) as b:
            if a.execute(sql).fetchall() != b.execute(sql).fetchall():
                sys.exit(f"the import and the raw insert stored different rows: {sql}")


MODE = "atomic"


def main() -> None:
    global MODE
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--mode", choices=("atomic", "batched"), default="atomic")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--profile", help="write a cProfile of the import to this file")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, seconds: CI runs it so the script never rots",
    )
    args = parser.parse_args()
    if args.quick:
        args.rows = min(args.rows, 2_000)
    MODE = args.mode
    folder = Path(tempfile.mkdtemp(prefix="guanxi-bench-"))
    try:
        rows = generate(args.rows)
        path = folder / "customers.csv"
        with path.open("w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(HEADER)
            writer.writerows(rows)
        app, (company_id, user_id) = fresh_app(folder)
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        seconds, outcome = import_guanxi(app, company_id, user_id, path)
        if args.profile:
            profiler.disable()
            profiler.dump_stats(args.profile)
        if outcome["created"] != args.rows:
            sys.exit(f"import created {outcome['created']} of {args.rows}: {outcome['errors'][:3]}")
        customers, ext = raw_rows(app, company_id, user_id, rows)
        raw_seconds = raw_sqlite(folder / "guanxi.db", folder / "raw.db", customers, ext)
        same_rows(folder / "guanxi.db", folder / "raw.db")
        ours, raw = args.rows / seconds, args.rows / raw_seconds
        print(f"guanxi import: {ours:.0f} rows/s")
        print(f"raw sqlite3 executemany: {raw:.0f} rows/s")
        print(
            f"# {args.rows} rows, mode {args.mode}: import {seconds:.3f} s, "
            f"raw {raw_seconds:.3f} s, ratio {ours / raw:.2f}, cpus {os.cpu_count()}",
            file=sys.stderr,
        )
    finally:
        if args.keep:
            print(f"# kept {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
