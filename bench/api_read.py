"""JSON API reads under ``guanxi serve`` (gunicorn, 2 workers) against a bare Flask endpoint,
and the memory of a worker afterwards.

    .venv/bin/python bench/api_read.py --database sqlite|postgresql [--users 8] [--seconds 30]
        [--workers 2] [--customers 5000] [--limit 20] [--pages 5] [--warmup 3] [--quick]

Targets (issue 12): API reads at least **0.5×** the requests per second of a bare Flask JSON
endpoint under the same gunicorn, driven the same way; one worker at most **150 MB** RSS after
the load.

1. A scratch database (bench/scratch.py: a temporary SQLite file, or a PostgreSQL database
   created here and dropped at the end) gets every migration, the demo company
   ``demo-pharma`` and ``--customers`` imported customers, built by bench/load.py's
   ``seed()``; one login with a personal API token per driver thread (admin, manager and
   service agent in turn). On PostgreSQL the database is then ``ANALYZE``d.
2. ``guanxi serve --workers 2`` (gunicorn, sync workers, access log on) starts on a free
   port of 127.0.0.1. The API's rate limit is raised to ``--rate-limit`` (one million a
   minute) for the server: Flask-Limiter still counts every request, as in production, but
   the driver's few tokens, each making hundreds of requests a minute, are not refused.
3. ``--users`` threads (bench/load_users.py's ``http.client`` driver, one keep-alive
   connection and bearer token each, no think time) make only JSON API reads, weighted:
   customer list pages (``GET /api/v1/customers?limit=20``, then following ``next_after``, the
   keyset cursor, up to ``--pages`` pages deep before starting again), one customer
   (``GET /api/v1/customers/<id>``), the ticket list and one ticket. First ``--warmup``
   seconds that are not counted (each worker imports and caches on its first requests), then
   ``--seconds`` measured. Each answer must be 200, and a list page must be JSON with
   ``data`` and ``next_after``.
4. After the load, before the server stops, it reads ``VmRSS`` and ``VmHWM`` (the peak) in
   ``/proc/<pid>/status`` and ``Pss`` in ``/proc/<pid>/smaps_rollup`` of each worker (the
   gunicorn master's children); RSS counts the pages a worker shares with the master since the
   fork, PSS charges each shared page to its sharers in part. The same is read when the server
   is ready, before any API request, for comparison.
5. The baseline, in the same run: bench/load_baseline.py's bare Flask JSON endpoint under
   gunicorn with the same settings (workers, sync, access log, request-line limit), the same
   driver and threads (``GET /``), the same warm-up and seconds; then its workers' memory.

It prints per kind of request the requests, errors, requests per second and the 50th, 95th
and 99th percentile latencies, the baseline's line, the ratio and each worker's memory, with
the load average (``/proc/loadavg``) at each phase -- the machine is shared, so the ratio,
measured under the same load a few seconds apart, is the figure to compare between runs. It
scans both servers' logs for tracebacks, worker timeouts and 5xx answers, stops every server
and drops the scratch database whatever happens (Ctrl-C included), and exits 1 on any request
error or log finding (``--strict``: also when a target is missed). ``--quick`` (3 s, 2
threads, 200 customers, 1 s warm-up) is the CI smoke run. Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from load import ACCESS_LINE, LOG_PATTERNS, Server, drive, percentile, seed  # noqa: E402
from load_users import BaselineUser, Stats, Target, User  # noqa: E402
from scratch import Scratch, free_port, interruptible, scratch_database  # noqa: E402

#: The reads and their weights.
ACTIONS = {
    "api customer list page": 40,
    "api customer": 35,
    "api ticket list": 15,
    "api ticket": 10,
}
RATIO_TARGET = 0.5
RSS_TARGET_MB = 150.0


class ApiReader(User):
    """A driver thread: only JSON API reads with its bearer token, until ``deadline``."""

    def __init__(
        self, number: int, target: Target, deadline: float, seed: int, limit: int, pages: int
    ) -> None:
        super().__init__(number, target, deadline, seed)
        self.limit, self.pages = limit, pages
        self.kinds = list(ACTIONS)
        self.kind_weights = list(ACTIONS.values())
        self.after: str | None = None  # the cursor of the next customer list page
        self.depth = 0

    def run(self) -> None:
        while time.monotonic() < self.deadline:
            kind = self.rng.choices(self.kinds, self.kind_weights)[0]
            if kind == "api customer list page":
                self.list_page(kind)
            elif kind == "api customer":
                self.request(kind, "GET", f"/api/v1/customers/{self.customer()}", api=True)
            elif kind == "api ticket list":
                self.request(kind, "GET", f"/api/v1/tickets?limit={self.limit}", api=True)
            else:
                ticket = self.rng.choice(self.target.ticket_ids)
                self.request(kind, "GET", f"/api/v1/tickets/{ticket}", api=True)

    def list_page(self, kind: str) -> None:
        """The next page of the customer list: the first, or the one after the cursor."""
        path = f"/api/v1/customers?limit={self.limit}"
        if self.after:
            path += f"&after={self.after}"
        status, body, _ = self.request(kind, "GET", path, api=True)
        self.after, self.depth = None, self.depth + 1
        if status != 200:
            return
        try:
            page = json.loads(body)
            rows, cursor = page["data"], page["next_after"]
        except (ValueError, KeyError, TypeError) as exc:
            self.stats.add(kind + " (body)", 0.0, f"GET {path}: not a list page: {exc}")
            return
        if len(rows) != self.limit and cursor is not None:
            self.stats.add(kind + " (body)", 0.0, f"GET {path}: {len(rows)} rows and a cursor")
        if cursor and self.depth < self.pages:
            self.after = cursor
        else:
            self.depth = 0


def analyze(scratch: Scratch) -> None:
    """PostgreSQL: ``ANALYZE`` the freshly seeded database, as autovacuum soon would on a live
    one (without statistics the planner takes the customer table for 25 rows)."""
    if scratch.kind != "postgresql":
        return
    import psycopg

    with psycopg.connect(scratch.url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("ANALYZE")


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (a gunicorn master's workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may hold spaces and parentheses.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def memory(pid: int) -> dict[str, float]:
    """``rss``, ``hwm`` (peak RSS) and ``pss`` of process ``pid`` in MB (0 when unreadable)."""
    out = {"rss": 0.0, "hwm": 0.0, "pss": 0.0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                out["rss" if line.startswith("VmRSS") else "hwm"] = int(line.split()[1]) / 1024
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                out["pss"] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return out


def workers_memory(server: Server) -> dict[int, dict[str, float]]:
    """Each worker of ``server`` (pid → its :func:`memory`)."""
    return {pid: memory(pid) for pid in children(server.process.pid)}


def show_memory(label: str, found: dict[int, dict[str, float]]) -> float:
    """Print one line per worker; the largest RSS (MB)."""
    for pid, m in found.items():
        print(
            f"  {label} worker {pid}: RSS {m['rss']:.1f} MB, peak {m['hwm']:.1f} MB, "
            f"PSS {m['pss']:.1f} MB"
        )
    return max((m["rss"] for m in found.values()), default=0.0)


def measure(
    server: Server, make: type[User] | None, target: Target, args: argparse.Namespace
) -> tuple[Stats, float]:
    """Warm ``server`` up for ``--warmup`` s (not counted), then drive it for ``--seconds``:
    API readers when ``make`` is None, else ``make`` (the baseline's user)."""

    def users(deadline: float) -> list[User]:
        if make is None:
            return [
                ApiReader(i, target, deadline, args.seed, args.limit, args.pages)
                for i in range(args.users)
            ]
        return [make(i, target, deadline, args.seed) for i in range(args.users)]

    if args.warmup:
        drive(users(time.monotonic() + args.warmup))
    print(f"  load average at the start: {loadavg()}")
    stats, elapsed = drive(users(time.monotonic() + args.seconds))
    print(f"  load average at the end:   {loadavg()}")
    return stats, elapsed


def table(stats: Stats, seconds: float) -> tuple[float, float, float, int]:
    """Print the per-kind table; all requests' (req/s, p50 ms, p95 ms, errors)."""
    print(
        f"  {'kind':<24} {'requests':>8} {'errors':>6} {'req/s':>7} {'p50 ms':>7} "
        f"{'p95 ms':>7} {'p99 ms':>7}"
    )
    every: list[float] = []
    kinds = [k for k in ACTIONS if k in stats.latencies] + [
        k for k in stats.latencies if k not in ACTIONS and not k.endswith("(body)")
    ]
    for kind in kinds:
        values = sorted(stats.latencies[kind])
        every.extend(values)
        print(
            f"  {kind:<24} {len(values):>8} {stats.errors.get(kind, 0):>6} "
            f"{len(values) / seconds:>7.1f} {percentile(values, 0.5):>7.1f} "
            f"{percentile(values, 0.95):>7.1f} {percentile(values, 0.99):>7.1f}"
        )
    every.sort()
    errors = sum(stats.errors.values())
    rate, p50, p95 = len(every) / seconds, percentile(every, 0.5), percentile(every, 0.95)
    print(
        f"  {'all':<24} {len(every):>8} {errors:>6} {rate:>7.1f} {p50:>7.1f} {p95:>7.1f} "
        f"{percentile(every, 0.99):>7.1f}"
    )
    for sample in stats.samples[:10]:
        print(f"    error: {sample[:200]}")
    return rate, p50, p95, errors


def scan_log(server: Server, requests: int, prefix: str) -> int:
    """Print what the server's log shows; the number of findings (tracebacks, 5xx, …)."""
    text = server.log.read_text(errors="replace")
    found = {name: len(p.findall(text)) for name, p in LOG_PATTERNS.items()}
    answered = sum(prefix in line for line in ACCESS_LINE.findall(text))
    print(
        f"  server log: {answered} {prefix}… requests answered (the driver counted {requests}, "
        "warm-up included in the log); " + ", ".join(f"{k} {n}" for k, n in found.items())
    )
    return sum(found.values())


def baseline_server(scratch: Scratch, workers: int) -> Server:
    """bench/load_baseline.py under gunicorn set as ``guanxi serve`` sets it (core/cli.py)."""
    port = free_port()
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    command = [
        gunicorn,
        "--chdir",
        str(Path(__file__).resolve().parent),
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--access-logfile",
        "-",
        "--limit-request-line",
        "8190",
        "load_baseline:app",
    ]
    return Server(scratch, port, workers, command)


def run(args: argparse.Namespace) -> int:
    with scratch_database(args.database) as scratch:
        t0 = time.monotonic()
        target = seed(scratch, args.users, args.customers)
        analyze(scratch)
        print(
            f"{args.database}: demo-pharma with {len(target.customer_ids):,} customers and "
            f"{len(target.ticket_ids)} tickets, {args.users} API tokens; set-up "
            f"{time.monotonic() - t0:.0f} s; load average {loadavg()}"
        )
        # scratch.env() copies os.environ: the servers get the raised limit.
        os.environ["GUANXI_API_RATE_LIMIT"] = args.rate_limit
        port = free_port()
        server = Server(scratch, port, args.workers)
        try:
            server.wait_ready()
            target.port = port
            print(
                f"guanxi serve on {server.url}, {args.workers} sync workers; {args.users} "
                f"threads of API reads, {args.warmup:g} s warm-up, {args.seconds:g} s"
            )
            idle = workers_memory(server)
            stats, elapsed = measure(server, None, target, args)
            loaded = workers_memory(server)
        finally:
            server.stop()
        rate, p50, p95, errors = table(stats, elapsed)
        findings = scan_log(server, sum(len(v) for v in stats.latencies.values()), "/api/v1/")
        show_memory("idle (ready, no API request yet)", idle)
        rss = show_memory("after the load", loaded)
        if len(loaded) != args.workers:
            print(f"  found {len(loaded)} workers, not {args.workers}")
        if args.keep_log:
            Path(args.keep_log).write_text(server.log.read_text(errors="replace"))

        bare = baseline_server(scratch, args.workers)
        try:
            bare.wait_ready("/")
            print(
                f"baseline: bench/load_baseline.py, same gunicorn settings, {args.users} "
                f"threads of GET /, {args.warmup:g} s warm-up, {args.seconds:g} s"
            )
            base_target = Target(
                "127.0.0.1", int(bare.url.rsplit(":", 1)[1]), [("", "", "")], [], [], []
            )
            base_stats, base_elapsed = measure(bare, BaselineUser, base_target, args)
            base_loaded = workers_memory(bare)
        finally:
            bare.stop()
        base_rate, base_p50, base_p95, base_errors = table(base_stats, base_elapsed)
        findings += scan_log(bare, sum(len(v) for v in base_stats.latencies.values()), "/ ")
        base_rss = show_memory("baseline after the load", base_loaded)

    ratio = rate / base_rate if base_rate else 0.0
    ratio_ok, rss_ok = ratio >= RATIO_TARGET, 0 < rss <= RSS_TARGET_MB
    print(
        f"API reads {rate:.1f} req/s (p50 {p50:.1f} ms, p95 {p95:.1f} ms, errors {errors}); "
        f"bare Flask {base_rate:.1f} req/s (p50 {base_p50:.1f} ms, p95 {base_p95:.1f} ms, "
        f"errors {base_errors})"
    )
    print(f"ratio {ratio:.3f} (target >= {RATIO_TARGET}): {'met' if ratio_ok else 'MISSED'}")
    print(
        f"largest worker RSS {rss:.1f} MB (target <= {RSS_TARGET_MB:.0f} MB): "
        f"{'met' if rss_ok else 'MISSED'}; bare Flask worker {base_rss:.1f} MB"
    )
    bad = errors or base_errors or findings
    print("FAILED: errors" if bad else "no errors")
    return 1 if bad or args.strict and not (ratio_ok and rss_ok) else 0


def main() -> None:
    interruptible()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--users", type=int, default=8, help="driver threads")
    parser.add_argument("--seconds", type=float, default=30, help="measured seconds per server")
    parser.add_argument("--warmup", type=float, default=3, help="seconds not counted")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--customers", type=int, default=5000, help="extra imported customers")
    parser.add_argument("--limit", type=int, default=20, help="rows per list page")
    parser.add_argument("--pages", type=int, default=5, help="list pages followed in a row")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate-limit", default="1000000/minute", help="the server's API limit")
    parser.add_argument("--strict", action="store_true", help="exit 1 on a missed target too")
    parser.add_argument(
        "--quick", action="store_true", help="CI: 3 s, 2 threads, 200 customers, 1 s warm-up"
    )
    parser.add_argument("--keep-log", help="copy Guanxi's server log to this file")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.users, args.customers, args.warmup = 3, 2, 200, 1
    try:
        sys.exit(run(args))
    except KeyboardInterrupt:
        print("interrupted: the servers are stopped, the scratch database is gone")
        sys.exit(130)


if __name__ == "__main__":
    main()
