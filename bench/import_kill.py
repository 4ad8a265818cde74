"""Fault run: ``guanxi import`` killed with SIGKILL half-way, then resumed.

    .venv/bin/python bench/import_kill.py --database sqlite|postgresql [--rows 200000]
        [--batch 10000] [--kill-at 0.4]

On a scratch database (a temporary SQLite file, or a PostgreSQL database created and dropped
here, see bench/scratch.py) with a company ``kill`` (pharma plugin) and its admin, the script
writes ``--rows`` customers into a CSV (bench/import_customers.py's generator: Chinese names,
unique mobiles and codes, two pharma fields), starts

    guanxi import customers FILE --company kill --batch N --user admin@kill.test

as a subprocess, and once ``--kill-at`` of the rows are committed it waits a fraction of a
batch more (so the kill lands inside a batch) and sends SIGKILL. It then checks, on its own
connection:

* no half batch: the customers are exactly the rows the task's checkpoint says were
  committed (``rows_committed``, a multiple of the batch), no code twice, every pharma side
  row belongs to a committed customer and every committed customer that should have one has;
* the task row tells a resume what it needs (``rows_committed``) and says the process that
  ran it is gone.

Then it resumes with the documented command (``guanxi import … --resume TASK_ID``) and checks
the end: exactly the file's rows, each code and each phone once, the pharma rows of every
customer, the task ``done`` and one ``done`` audit row (a killed process writes none). Prints
what it found; exits 1 on any inconsistency. Results: docs/benchmarks.md, docs/security.md.
"""

from __future__ import annotations

import argparse
import csv
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from import_customers import HEADER, generate  # noqa: E402
from scratch import GUANXI, Scratch, interruptible, scratch_database  # noqa: E402

COMPANY = "kill"
ADMIN = "admin@kill.test"


def guanxi(scratch: Scratch, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``guanxi ARGS`` on the scratch database; stop the run when it fails."""
    done = subprocess.run(
        [GUANXI, *args], env=scratch.env(), capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise SystemExit(f"guanxi {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def prepare(scratch: Scratch, rows: int) -> Path:
    """Schema, company ``kill`` with the pharma plugin, its admin; the CSV of ``rows``."""
    guanxi(scratch, "db", "upgrade")
    guanxi(scratch, "companies", "create", COMPANY, "断点续传测试公司", "--plugin", "pharma")
    guanxi(
        scratch, "users", "create", "--email", ADMIN, "--name", "管理员",
        "--password", "kill-test", "--company", COMPANY, "--role", "admin",
    )  # fmt: skip
    path = scratch.folder / "客户.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(generate(rows))
    return path


class Database:
    """The checks, on a connection of this process (SQLAlchemy Core, no app)."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        self.sa = sa
        self.engine = sa.create_engine(url)

    def value(self, sql: str, **params: object) -> object:
        with self.engine.connect() as conn:
            return conn.execute(self.sa.text(sql), params).scalar()

    def rows(self, sql: str, **params: object) -> list:
        with self.engine.connect() as conn:
            return list(conn.execute(self.sa.text(sql), params))

    def customers(self) -> int:
        return int(self.value("SELECT count(*) FROM customer") or 0)

    def task(self) -> dict:
        """The newest import task: id, status, done and its checkpoint (``result``)."""
        import json

        found = self.rows(
            "SELECT id, status, done, result FROM background_task "
            "WHERE kind = 'import' ORDER BY id DESC LIMIT 1"
        )
        if not found:
            return {}
        task_id, status, done, result = found[0]
        if isinstance(result, str):
            result = json.loads(result)
        return {"id": task_id, "status": status, "done": done, "result": result or {}}

    def duplicates(self, column: str) -> int:
        return len(
            self.rows(f"SELECT {column} FROM customer GROUP BY {column} HAVING count(*) > 1")
        )

    def ext_rows(self) -> int:
        return int(self.value("SELECT count(*) FROM pharma_customer_ext") or 0)

    def codes_with_ext(self) -> set[str]:
        return {
            code
            for (code,) in self.rows(
                "SELECT c.code FROM customer c JOIN pharma_customer_ext e ON e.id = c.id"
            )
        }

    def audits(self) -> list[str]:
        """The outcome of every import audit row, oldest first."""
        import json

        out = []
        for (data,) in self.rows("SELECT data FROM audit_log WHERE action = 'import' ORDER BY id"):
            data = json.loads(data) if isinstance(data, str) else data or {}
            out.append(str(data.get("status", "?")))
        return out


def kill_midway(scratch: Scratch, db: Database, path: Path, args: argparse.Namespace) -> dict:
    """Start the import, SIGKILL it inside a batch after ``kill_at`` of the rows; what was
    seen at the kill."""
    log = (scratch.folder / "import-1.log").open("w")
    command = [
        GUANXI, "import", "customers", str(path), "--company", COMPANY,
        "--batch", str(args.batch), "--user", ADMIN,
    ]  # fmt: skip
    started = time.monotonic()
    process = subprocess.Popen(command, env=scratch.env(), stdout=log, stderr=subprocess.STDOUT)
    target = int(args.rows * args.kill_at)
    try:
        batch_seconds, last, last_at = None, 0, None
        while process.poll() is None and time.monotonic() - started < args.timeout:
            count = db.customers()
            if count != last:
                now = time.monotonic()
                if last_at is not None and last:
                    batch_seconds = (now - last_at) / max(1, (count - last) // args.batch)
                last, last_at = count, now
            if count >= target:
                # Into the next batch: a random point of the time one batch takes.
                time.sleep(random.Random(args.seed).uniform(0.2, 0.8) * (batch_seconds or 0.5))
                break
            time.sleep(0.02)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait()
        log.close()
    return {
        "returncode": process.returncode,
        "seconds": round(time.monotonic() - started, 2),
        "customers": db.customers(),
        "task": db.task(),
    }


def check(problems: list[str], ok: bool, message: str) -> None:
    print(("ok    " if ok else "FAIL  ") + message)
    if not ok:
        problems.append(message)


def run(args: argparse.Namespace) -> int:
    problems: list[str] = []
    with scratch_database(args.database) as scratch:
        t0 = time.monotonic()
        path = prepare(scratch, args.rows)
        db = Database(scratch.url)
        print(f"{args.database}: {args.rows:,} rows in {path.name}, batches of {args.batch:,}")
        print(f"set-up {time.monotonic() - t0:.1f} s")

        seen = kill_midway(scratch, db, path, args)
        task = seen["task"]
        committed = int(task.get("result", {}).get("rows_committed") or 0)
        print(
            f"killed after {seen['seconds']} s (exit {seen['returncode']}): "
            f"{seen['customers']:,} customers, task {task.get('id')} {task.get('status')!r}, "
            f"checkpoint rows_committed={committed:,}"
        )
        check(problems, seen["returncode"] == -signal.SIGKILL, "the import died of SIGKILL")
        check(problems, 0 < committed < args.rows, "the kill came mid-way (some, not all, rows)")
        check(
            problems,
            seen["customers"] == committed and committed % args.batch == 0,
            f"no half batch: customers {seen['customers']:,} = rows_committed {committed:,}, "
            f"a multiple of {args.batch:,}",
        )
        check(problems, db.duplicates("code") == 0, "no customer code twice")
        codes_at_kill = {c for (c,) in db.rows("SELECT code FROM customer")}
        ext_at_kill = db.codes_with_ext()
        check(problems, ext_at_kill <= codes_at_kill, "every pharma row belongs to a customer")
        check(
            problems,
            codes_at_kill == {f"C{i + 1:07d}" for i in range(committed)},
            "the committed customers are exactly the first rows_committed rows of the file",
        )

        t1 = time.monotonic()
        resumed = subprocess.run(
            [
                GUANXI, "import", "customers", str(path), "--company", COMPANY,
                "--batch", str(args.batch), "--user", ADMIN, "--resume", str(task.get("id")),
            ],
            env=scratch.env(), capture_output=True, text=True, timeout=args.timeout,
        )  # fmt: skip
        print(f"resume: exit {resumed.returncode} in {time.monotonic() - t1:.1f} s")
        for line in (resumed.stdout + resumed.stderr).splitlines()[-4:]:
            print(f"  | {line[-160:]}")
        final = db.task()
        total = db.customers()
        print(f"after resume: {total:,} customers, task {final.get('status')!r}")
        check(problems, resumed.returncode == 0, "the documented resume command succeeds")
        check(problems, total == args.rows, f"customers = the file's rows ({args.rows:,})")
        check(problems, db.duplicates("code") == 0, "no customer code twice")
        check(problems, db.duplicates("phone") == 0, "no phone number twice")
        check(problems, final.get("status") == "done", "the task is done")
        result = final.get("result", {})
        check(
            problems,
            result.get("created") == args.rows and result.get("rows") == args.rows,
            f"the task counts every row once (rows {result.get('rows')}, "
            f"created {result.get('created')})",
        )
        ext_final = db.codes_with_ext()
        check(
            problems,
            ext_final & codes_at_kill == ext_at_kill,
            f"the pharma rows of the committed batches were complete at the kill "
            f"({len(ext_at_kill):,}), none added twice ({db.ext_rows():,} in all)",
        )
        audits = db.audits()
        check(
            problems,
            audits.count("done") == 1,
            f"one audit row of the finished import (import audits: {audits})",
        )
    print("consistent and resumed" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


def main() -> None:
    interruptible()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--kill-at", type=float, default=0.4, help="share of rows, then kill")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--timeout", type=float, default=300, help="seconds per import run")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, seconds: CI runs it so the script never rots",
    )
    args = parser.parse_args()
    if args.quick:
        args.rows, args.batch = min(args.rows, 6_000), min(args.batch, 500)
    try:
        sys.exit(run(args))
    except KeyboardInterrupt:
        print("interrupted: what was started is stopped, the scratch database is gone")
        sys.exit(130)


if __name__ == "__main__":
    main()
