"""Scale-out: a real ``guanxi worker`` (Celery) on the machine's Redis runs an import and a job.

Needs Redis (``GUANXI_TEST_REDIS_URL``, default ``redis://127.0.0.1:6379/15``). Without it the
tests skip with a message, except in CI, which sets ``GUANXI_REQUIRE_REDIS=1`` and must run them.
Each test uses a queue of its own, so suites running side by side never take each other's work.
"""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core import importer, jobs, tasks
from core.db import db as handle
from core.models import Customer, JobRun
from core.tenancy import company_scope

REDIS_URL = os.environ.get("GUANXI_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _children(pid: int) -> set[int]:
    """Ids of the processes ``pid`` started (Celery's pool processes)."""
    found: set[int] = set()
    for tid in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (tid / "children").read_text().split()}
    return found


@pytest.fixture
def broker():
    """The Redis URL and a fresh queue name; the queue is deleted afterwards."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("GUANXI_REQUIRE_REDIS") == "1":
            pytest.fail(f"Redis unreachable at {REDIS_URL} (GUANXI_REQUIRE_REDIS=1): {exc}")
        pytest.skip(f"start Redis to run the worker tests ({REDIS_URL}): {exc}")
    queue = f"guanxi-test-{uuid.uuid4().hex[:12]}"
    yield REDIS_URL, queue
    client.delete(queue)
    client.close()


@pytest.fixture
def worker(app, make_app, broker, tmp_path):
    """A ``guanxi worker`` process (two pool processes) on the test database and the queue;
    yields ``(broker_app, process)``; the worker is stopped (its log printed) afterwards."""
    url, queue = broker
    broker_app = make_app(BROKER_URL=url, BROKER_QUEUE=queue)
    env = {
        **os.environ,
        "GUANXI_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "GUANXI_INSTANCE_PATH": str(tmp_path / "worker-instance"),
        "GUANXI_SECRET_KEY": "test-secret",
        "GUANXI_BROKER_URL": url,
        "GUANXI_BROKER_QUEUE": queue,
    }
    log = tmp_path / "worker.log"
    command = [str(Path(sys.executable).parent / "guanxi"), "worker", "-c", "2"]
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield broker_app, process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        print(log.read_text())


def _until(check, what: str, process: subprocess.Popen, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        assert process.poll() is None, f"the worker exited ({process.returncode}) before {what}"
        time.sleep(0.2)
    raise AssertionError(f"no worker finished {what} within {timeout:.0f} s")


def _ran_on_worker(runner: str, process: subprocess.Popen) -> None:
    host, _sep, pid = runner.rpartition(":")
    assert host == socket.gethostname()
    assert int(pid) != os.getpid()
    assert int(pid) in _children(process.pid) | {process.pid}


def test_an_import_started_here_runs_and_finishes_on_the_worker(
    company, make_user, worker, tmp_path
):
    broker_app, process = worker
    co = company()
    user = make_user("admin", co)
    path = tmp_path / "客户.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        rows = [("名称", "电话")] + [(f"华东客户{i:03d}", f"1380000{i:04d}") for i in range(250)]
        csv.writer(out).writerows(rows)

    with broker_app.app_context(), company_scope(co.id):
        task = importer.start(
            path,
            "customers",
            mapping=None,
            on_duplicate="skip",
            mode="batched",
            batch=100,
            filename=path.name,
            user_id=user.id,
        )
        assert task.status == "queued" and task.id not in tasks._threads  # not run here

        def finished():
            row = tasks.get(task.id)
            return row if row.status in ("done", "failed") else None

        done = _until(finished, "the import", process)
        assert done.status == "done", done.error
        assert (done.done, done.total) == (250, 250)
        _ran_on_worker(done.result["runner"], process)
        handle.session.rollback()
        count = handle.session.scalar(select(func.count()).select_from(Customer))
        assert count == 250


def test_due_jobs_are_queued_and_a_worker_runs_them(company, make_user, worker):
    broker_app, process = worker
    co = company()
    with company_scope(co.id):
        handle.session.add(Customer(name="浦东物业客户", kind="company"))
        handle.session.commit()

    with broker_app.app_context():
        queued = jobs.run_due(only="customers.classify")
        assert queued == [("customers.classify", f"company:{co.id}", "queued")]
        # The period is claimed: a second run-due (another machine's cron) queues nothing.
        assert jobs.run_due(only="customers.classify") == []

        def finished():
            handle.session.rollback()
            run = handle.session.scalar(select(JobRun).where(JobRun.job == "customers.classify"))
            return run if run.status != "running" else None

        run = _until(finished, "the customers.classify job", process)
        assert run.status == "done", run.message
        assert run.finished_at is not None and "changed" in (run.message or "")
        _ran_on_worker(run.worker, process)


def _count(progress, steps: int) -> dict:
    progress.advance(steps, steps)
    return {"steps": steps}


def test_a_broker_that_is_down_does_not_lose_the_work(app, make_app, company, caplog):
    down = make_app(BROKER_URL="redis://127.0.0.1:9/0", BROKER_QUEUE="nobody-listens")
    co = company()
    with down.app_context(), company_scope(co.id):
        task = tasks.submit("demo", _count, steps=3)
        tasks.wait(task.id)
        done = tasks.get(task.id)
        assert (done.status, done.result["steps"]) == ("done", 3)
        assert done.result["runner"] == tasks.runner()  # ran here, in a thread
    assert "could not queue task" in caplog.text


def test_without_a_broker_the_worker_command_says_what_to_set(app):
    from core.cli import main

    result = app.test_cli_runner().invoke(main, ["worker"])
    assert result.exit_code != 0 and "GUANXI_BROKER_URL" in result.output
