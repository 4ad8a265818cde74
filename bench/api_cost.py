"""The fixed cost of one authenticated JSON API read, in process: SQL statements and CPU time.

    .venv/bin/python bench/api_cost.py --database sqlite|postgresql [--requests 500]
        [--customers 200] [--limit 20] [--profile 25] [--role admin|manager|service_agent]
        [--rate-limit 1000000/minute] [--dump FILE]

A scratch database (bench/scratch.py) is seeded as bench/api_read.py seeds it (the demo
company ``demo-pharma``, ``--customers`` imported customers, one API token per role). Then,
through Flask's test client (no server, no network), each read of bench/api_read.py is asked
with the token: once to warm the worker's caches, once with a SQLAlchemy
``before_cursor_execute`` listener that prints every statement it sends, then ``--requests``
times under a timer (ms per request, and the CPU time of the process: on a shared machine
the less noisy figure), and ``--requests`` times under cProfile, whose top
``--profile`` functions by cumulative time are printed for the customer list. Each request
runs in its own app context, so nothing cached in ``flask.g`` survives from one to the next,
as in a real server.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from load import ROLES, seed  # noqa: E402
from scratch import interruptible, scratch_database  # noqa: E402


def statements(engine: object, call: object) -> list[str]:
    """The SQL statements ``engine`` sends while ``call()`` runs."""
    from sqlalchemy import event

    sent: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        sent.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", count)
    try:
        call()  # type: ignore[operator]
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return sent


def run(args: argparse.Namespace) -> None:
    from core.app import create_app
    from core.db import db

    with scratch_database(args.database) as scratch:
        target = seed(scratch, len(ROLES), args.customers)
        secret = target.logins[ROLES.index(args.role)][2]
        app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": scratch.url,
                "INSTANCE_PATH": str(scratch.folder),
                # As bench/api_read.py: every request is still counted, none refused.
                "API_RATE_LIMIT": args.rate_limit,
            }
        )
        client = app.test_client()
        headers = {"Authorization": f"Bearer {secret}"}
        paths = {
            "customer list": f"/api/v1/customers?limit={args.limit}",
            "customer": f"/api/v1/customers/{target.customer_ids[0]}",
            "ticket list": f"/api/v1/tickets?limit={args.limit}",
            "ticket": f"/api/v1/tickets/{target.ticket_ids[0]}",
        }

        def get(path: str) -> None:
            answer = client.get(path, headers=headers)
            assert answer.status_code == 200, (path, answer.status_code, answer.data[:300])

        with app.app_context():
            engine = db.engine
        print(f"{args.database}, role {args.role}, {args.requests} requests each")
        for kind, path in paths.items():
            get(path)  # warm: imports, the plugin registry's caches, the token's stamp
            sent = statements(engine, lambda p=path: get(p))
            t0, cpu0 = time.perf_counter(), time.process_time()
            for _ in range(args.requests):
                get(path)
            ms = (time.perf_counter() - t0) * 1000 / args.requests
            cpu = (time.process_time() - cpu0) * 1000 / args.requests
            print(
                f"\n{kind}: GET {path}: {len(sent)} statements, {ms:.2f} ms per request "
                f"({cpu:.2f} ms of this process's CPU)"
            )
            for sql in sent:
                print(f"  {sql[:240]}")
        profile = cProfile.Profile()
        path = paths["customer list"]
        profile.enable()
        for _ in range(args.requests):
            get(path)
        profile.disable()
        print(f"\ncProfile, {args.requests} × GET {path}, by cumulative time:")
        pstats.Stats(profile).sort_stats("cumulative").print_stats(args.profile)
        print("by own time:")
        pstats.Stats(profile).sort_stats("tottime").print_stats(args.profile)
        if args.dump:
            profile.dump_stats(args.dump)
        with app.app_context():
            db.engine.dispose()


def main() -> None:
    interruptible()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--requests", type=int, default=500, help="timed requests per read")
    parser.add_argument("--customers", type=int, default=200, help="extra imported customers")
    parser.add_argument("--limit", type=int, default=20, help="rows per list page")
    parser.add_argument("--profile", type=int, default=25, help="profile lines printed")
    parser.add_argument("--role", choices=ROLES, default="admin")
    parser.add_argument("--dump", help="also write the profile to this file (pstats)")
    parser.add_argument("--rate-limit", default="1000000/minute", help="the app's API limit")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
