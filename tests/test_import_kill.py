"""A batched ``guanxi import`` killed with SIGKILL half-way leaves whole batches only, and the
documented resume finishes it with every row once (the long version: bench/import_kill.py).

Also: a task whose runner process is gone is marked failed when read (so it can be resumed),
one whose runner lives is left alone; a starting worker marks its machine's dead ones (reap)."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import text

from core import tasks
from core.models import BackgroundTask
from core.tenancy import company_scope

GUANXI = str(Path(sys.executable).with_name("guanxi"))
ROWS = 24_000
BATCH = 1_000


def _write_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["编号", "客户名称", "手机"])
        for i in range(rows):
            writer.writerow([f"K{i + 1:06d}", f"客户{i + 1}", f"139{i + 1:08d}"])


def _count(db, sql: str, **params: object) -> int:  # noqa: ANN001
    with db.engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar() or 0)


def _task(db, company_id: int, **result: object) -> BackgroundTask:  # noqa: ANN001
    with company_scope(company_id):
        task = BackgroundTask(
            kind="import", target="core.importer:run", params={}, status="running", result=result
        )
        db.session.add(task)
        db.session.commit()
        return task


def test_a_task_whose_process_is_gone_is_marked_failed(app, db, company) -> None:  # noqa: ANN001
    co = company()
    dead = subprocess.Popen(["true"])
    dead.wait()
    host = socket.gethostname()
    orphan = _task(db, co.id, runner=f"{host}:{dead.pid}", rows_committed=1000)
    alive = _task(db, co.id, runner=f"{host}:{os.getppid()}")
    elsewhere = _task(db, co.id, runner=f"another-{host}:{dead.pid}")
    unknown = _task(db, co.id)
    with company_scope(co.id):
        found = tasks.get(orphan.id, kind="import")
        assert found.status == "failed"
        assert "stopped" in found.error and str(dead.pid) in found.error
        assert found.result["rows_committed"] == 1000  # what a resume needs is kept
        for task in (alive, elsewhere, unknown):
            assert tasks.get(task.id).status == "running"


def test_a_starting_worker_reaps_the_tasks_its_machine_left_running(app, db, company) -> None:  # noqa: ANN001
    first, second = company(), company()
    dead = subprocess.Popen(["true"])
    dead.wait()
    host = socket.gethostname()
    orphans = [_task(db, co.id, runner=f"{host}:{dead.pid}") for co in (first, second)]
    alive = _task(db, first.id, runner=f"{host}:{os.getppid()}")
    elsewhere = _task(db, second.id, runner=f"another-{host}:{dead.pid}")
    assert tasks.reap() == 2  # every company's, without anyone reading them
    db.session.expire_all()
    states = {}
    for task in (*orphans, alive, elsewhere):
        with company_scope(task.company_id):
            states[task.id] = db.session.get(BackgroundTask, task.id).status
    assert [states[t.id] for t in (*orphans, alive, elsewhere)] == [
        "failed", "failed", "running", "running"
    ]  # fmt: skip


def test_import_killed_midway_is_consistent_and_resumes(app, db, company, tmp_path) -> None:  # noqa: ANN001
    co = company()
    path = tmp_path / "客户.csv"
    _write_csv(path, ROWS)
    env = dict(
        os.environ,
        GUANXI_DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
        GUANXI_INSTANCE_PATH=str(tmp_path),
        GUANXI_SECRET_KEY="test-secret",
    )
    command = [GUANXI, "import", "customers", str(path), "--company", co.code]
    process = subprocess.Popen(
        [*command, "--batch", str(BATCH)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    count = "SELECT count(*) FROM customer WHERE company_id = :c"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if _count(db, count, c=co.id) >= ROWS // 3:
                break
            time.sleep(0.01)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL, "the import ended before it was killed"

    committed = _count(db, count, c=co.id)
    assert 0 < committed < ROWS
    with company_scope(co.id):
        task_id = _count(db, "SELECT max(id) FROM background_task WHERE kind = 'import'")
        task = tasks.get(task_id, kind="import")
        # Whole batches only, exactly as many as the task's checkpoint says; its status says
        # the process is gone, so the documented resume accepts it.
        assert committed % BATCH == 0
        assert task.result["rows_committed"] == committed
        assert task.status == "failed" and "stopped" in task.error
        assert (
            _count(db, "SELECT count(*) FROM customer WHERE code > :k", k=f"K{committed:06d}") == 0
        )

        resumed = tasks.execute(task_id)  # what `guanxi import … --resume TASK_ID` runs
    assert resumed.status == "done", resumed.error
    assert resumed.result["rows"] == ROWS and resumed.result["created"] == ROWS
    assert _count(db, count, c=co.id) == ROWS
    duplicates = (
        "SELECT count(*) FROM (SELECT code FROM customer GROUP BY code HAVING count(*) > 1) d"
    )
    assert _count(db, duplicates) == 0
