"""Background tasks: long work (imports, recomputes) run outside the request, with progress.

A task is a row (:class:`~core.models.BackgroundTask`) naming a module-level function
(``target``, e.g. ``core.importer:run``) and its JSON keyword arguments (``params``), so the row
alone says what to run. :func:`submit` writes the row and hands it to a *runner*;
:func:`execute` is what a runner calls, in any process: it enters the company's scope (and the
language of the user who started the task), marks the row running, calls
``function(progress, **params)`` and records the result or the error.

Runners
    Without ``GUANXI_BROKER_URL`` the task runs in a local thread of the process that submitted
    it. With a broker, :mod:`core.worker` installs a dispatcher as
    ``app.extensions["guanxi.task_runner"]``: a callable ``runner(task_id)`` that queues the id
    for a Celery worker (``guanxi worker``), which calls :func:`execute` inside an app context.
    That callable is the whole seam: another queue could be installed the same way.

Progress
    The function returns a JSON-able dict, stored as the row's ``result``; one with
    ``"status": "failed"`` (and an ``"error"``) marks the task failed without an exception
    (an all-or-nothing import refused for its errors). It receives a :class:`Progress`:
    ``progress.advance(done, total)`` as it goes (cheap: the row is written at most every
    :data:`PROGRESS_INTERVAL` seconds, on its own short transaction, never in the work's
    transaction) and ``progress.checkpoint(**state)`` to record, durably and at once, what a
    resume needs (e.g. the last committed batch). On SQLite a progress write that would wait
    for the work's own open write transaction is skipped rather than waited for; the process
    that runs the task also keeps the latest figures in memory, and :func:`snapshot` prefers
    them.

A process that dies while it runs a task (SIGKILL, out of memory) leaves the row ``running``.
The row names its runner (``result["runner"]``, ``host:pid``); :func:`get` marks a running task
whose runner was a process of this machine that no longer exists ``failed``, so it can be
resumed from its checkpoint like any stopped task (``guanxi import … --resume``, the page's
"Resume" button). A task run on another machine is not judged from here; a Celery worker, when
it starts, marks those of its own machine (:func:`reap`).
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, has_request_context
from flask_login import current_user
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from core.db import db, utcnow
from core.models import BackgroundTask, Company, User
from core.tenancy import company_scope, require_company, unscoped

log = logging.getLogger("guanxi.tasks")

#: Seconds between two progress writes of one task (at most about four per second).
PROGRESS_INTERVAL = 0.25
#: Longest error text kept on the row.
ERROR_MAX = 4000

#: Latest progress of the tasks running in this process: id → {"done", "total", "status"}.
_live: dict[int, dict[str, Any]] = {}
_live_lock = threading.Lock()


class Progress:
    """What a task's function is given to report progress and keep its checkpoint."""

    def __init__(
        self,
        task: BackgroundTask,
        *,
        listener: Callable[[int, int | None], None] | None = None,
    ) -> None:
        self.task_id = task.id
        self.company_id = task.company_id
        self.user_id = task.user_id
        self.kind = task.kind
        self.params: dict[str, Any] = dict(task.params or {})
        #: The checkpoint of a previous run (``result`` of the row when it started).
        self.previous: dict[str, Any] = dict(task.result or {})
        self.done = task.done or 0
        self.total = task.total
        self._listener = listener
        self._written = 0.0
        self._state: dict[str, Any] = dict(self.previous)

    def advance(self, done: int, total: int | None = None) -> None:
        """Set how much of ``total`` is done; written to the row at most every
        :data:`PROGRESS_INTERVAL` seconds (and always kept in this process)."""
        self.done = done
        if total is not None:
            self.total = total
        _remember(self.task_id, done=self.done, total=self.total)
        if self._listener is not None:
            self._listener(self.done, self.total)
        now = time.monotonic()
        if now - self._written >= PROGRESS_INTERVAL:
            self._written = now
            _write(self.task_id, {"done": self.done, "total": self.total}, wait=False)

    def checkpoint(self, **state: Any) -> None:
        """Record ``state`` in the row's ``result`` now (merged with what was recorded), with
        the current progress: what a resume reads back as :attr:`previous`."""
        self._state.update(state)
        self._written = time.monotonic()
        _write(
            self.task_id,
            {"done": self.done, "total": self.total, "result": dict(self._state)},
            wait=True,
        )

    @property
    def state(self) -> dict[str, Any]:
        """Everything checkpointed so far (this run and the previous ones)."""
        return dict(self._state)


def _remember(task_id: int, **values: Any) -> None:
    with _live_lock:
        _live.setdefault(task_id, {}).update(values)


def _forget(task_id: int) -> None:
    with _live_lock:
        _live.pop(task_id, None)


def _write(task_id: int, values: dict[str, Any], *, wait: bool) -> bool:
    """Update the task row on a connection of its own (committed at once).

    ``wait=False`` gives up at once when SQLite is locked by another writer (the work's own
    transaction, typically): progress is best effort, the work must not stall for it."""
    engine = db.engine
    table = BackgroundTask.__table__
    sqlite = engine.dialect.name == "sqlite"
    try:
        with engine.connect() as conn:
            if sqlite and not wait:
                conn.exec_driver_sql("PRAGMA busy_timeout=20")
            try:
                conn.execute(update(table).where(table.c.id == task_id).values(**values))
                conn.commit()
            finally:
                if sqlite and not wait:
                    conn.rollback()
                    conn.exec_driver_sql("PRAGMA busy_timeout=10000")
    except OperationalError:
        if wait:
            raise
        return False
    return True


# -- creating and running ---------------------------------------------------------------------


def target_of(func: Callable[..., Any]) -> str:
    """The dotted path ``module:qualname`` of a module-level function."""
    name = f"{func.__module__}:{func.__qualname__}"
    if "<" in name or resolve(name) is not func:
        raise ValueError(f"{name} is not a module-level function; a worker could not find it")
    return name


def resolve(target: str) -> Callable[..., Any]:
    """The function named by ``module:qualname``."""
    module_name, _sep, qualname = target.partition(":")
    found: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def create(
    kind: str, func: Callable[..., Any], /, *, user_id: int | None = None, **params: Any
) -> BackgroundTask:
    """Write a queued task of the company in scope (committed) without starting it.

    ``params`` must be JSON values: they are stored and given back to ``func`` as keyword
    arguments. ``user_id`` defaults to the user logged in."""
    require_company()
    if user_id is None and has_request_context() and current_user.is_authenticated:
        user_id = current_user.id
    task = BackgroundTask(
        kind=kind, target=target_of(func), params=params, user_id=user_id, status="queued"
    )
    db.session.add(task)
    db.session.commit()
    return task


def submit(
    kind: str, func: Callable[..., Any], /, *, user_id: int | None = None, **params: Any
) -> BackgroundTask:
    """Create a task (:func:`create`) and start it in the background; returns the row at once.

    ``func(progress, **params)`` runs in a local thread, or through the runner a deployment
    installed for its broker (see the module documentation)."""
    task = create(kind, func, user_id=user_id, **params)
    start(task.id)
    return task


def start(task_id: int) -> None:
    """Run the queued task ``task_id`` in the background (the runner or a local thread)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    runner = app.extensions.get("guanxi.task_runner")
    if runner is not None:
        runner(task_id)
        return
    start_here(task_id)


def start_here(task_id: int) -> None:
    """Run the queued task ``task_id`` in a local thread of this process."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    _remember(task_id, status="queued")
    thread = threading.Thread(
        target=_thread_main, args=(app, task_id), name=f"guanxi-task-{task_id}", daemon=True
    )
    thread.start()
    _threads[task_id] = thread


#: Local threads by task id (tests join them; nothing else needs them).
_threads: dict[int, threading.Thread] = {}


def _thread_main(app: Flask, task_id: int) -> None:
    with app.app_context():
        try:
            execute(task_id)
        except Exception:  # execute records failures; this only keeps the thread quiet
            log.exception("task %s failed", task_id)
        finally:
            db.session.remove()
            _threads.pop(task_id, None)


def wait(task_id: int, timeout: float = 60.0) -> None:
    """Block until the local thread of ``task_id`` ends (tests, the CLI)."""
    thread = _threads.get(task_id)
    if thread is not None:
        thread.join(timeout)
        if not thread.is_alive():
            _threads.pop(task_id, None)


def execute(
    task_id: int, *, listener: Callable[[int, int | None], None] | None = None
) -> BackgroundTask:
    """Run task ``task_id`` here and now (the entry point of every runner).

    Needs an app context; sets the company scope and the language of the task's user itself.
    A task that is already running or done is left alone. Returns the row as it ended."""
    from flask_babel import force_locale

    with unscoped():
        task = db.session.get(BackgroundTask, task_id)
        if task is None:
            raise LookupError(f"no background task {task_id}")
        if task.status not in ("queued", "failed"):
            return task
        user = db.session.get(User, task.user_id) if task.user_id else None
        company = db.session.get(Company, task.company_id)
    locale = (user.locale if user is not None else None) or (company.locale if company else None)
    progress = Progress(task, listener=listener)
    progress._state["runner"] = runner()
    # Known here before the row says "running": abandoned() must not take it for dead.
    _remember(task_id, status="running", done=progress.done, total=progress.total)
    _write(
        task_id,
        {
            "status": "running",
            "started_at": utcnow(),
            "finished_at": None,
            "error": None,
            "result": progress.state,
        },
        wait=True,
    )
    func = resolve(task.target)
    try:
        with company_scope(task.company_id), force_locale(locale or "zh_CN"):
            result = func(progress, **progress.params)
        db.session.commit()
    except Exception as exc:
        db.session.rollback()
        # The first line: SQLAlchemy appends the statement and a link on the next ones.
        detail = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        log.error("task %s (%s) failed: %s\n%s", task_id, task.kind, detail, traceback.format_exc())
        _write(
            task_id,
            {
                "status": "failed",
                "error": detail[:ERROR_MAX],
                "finished_at": utcnow(),
                "done": progress.done,
                "total": progress.total,
                "result": progress.state or None,
            },
            wait=True,
        )
    else:
        outcome = result if isinstance(result, dict) else {"value": result}
        failed = outcome.get("status") == "failed"
        _write(
            task_id,
            {
                "status": "failed" if failed else "done",
                "error": str(outcome.get("error"))[:ERROR_MAX] if failed else None,
                "finished_at": utcnow(),
                "done": progress.done,
                "total": progress.total,
                "result": {**progress.state, **outcome},
            },
            wait=True,
        )
    finally:
        _forget(task_id)
    db.session.expire_all()
    with unscoped():
        return db.session.get(BackgroundTask, task_id)  # type: ignore[return-value]


# -- reading ----------------------------------------------------------------------------------


def get(task_id: int, kind: str | None = None) -> BackgroundTask | None:
    """Task ``task_id`` of the company in scope (of ``kind`` when given), fresh from the
    database, or ``None``."""
    if not 0 < task_id < 2**31:
        return None
    stmt = select(BackgroundTask).where(BackgroundTask.id == task_id)
    if kind is not None:
        stmt = stmt.where(BackgroundTask.kind == kind)
    stmt = stmt.execution_options(populate_existing=True)
    task = db.session.scalar(stmt)
    if task is not None and abandoned(task):
        table = BackgroundTask.__table__
        _write_where(
            table.c.status == "running",
            task_id,
            {
                "status": "failed",
                "finished_at": utcnow(),
                "error": f"the process running it stopped ({task.result['runner']})",
            },
        )
        task = db.session.scalar(stmt)
    return task


def reap() -> int:
    """Mark ``failed`` every running task (of any company) whose runner was a process of this
    machine that no longer exists; returns how many. A worker calls it when it starts, so a
    task whose worker machine died and restarted is resumable without anyone opening it."""
    table = BackgroundTask.__table__
    with unscoped():
        running = list(
            db.session.scalars(select(BackgroundTask).where(table.c.status == "running"))
        )
    count = 0
    for task in running:
        if abandoned(task):
            _write_where(
                table.c.status == "running",
                task.id,
                {
                    "status": "failed",
                    "finished_at": utcnow(),
                    "error": f"the process running it stopped ({task.result['runner']})",
                },
            )
            count += 1
    return count


def runner() -> str:
    """Who runs a task started here: ``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def abandoned(task: BackgroundTask) -> bool:
    """Whether ``task`` is ``running`` but its runner, a process of this machine, is gone
    (killed with SIGKILL, out of memory). ``False`` when it cannot tell: a runner on
    another machine, a row written before runners were recorded."""
    if task.status != "running":
        return False
    host, _sep, pid = str((task.result or {}).get("runner") or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        with _live_lock:
            return task.id not in _live
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists, as another user's process
        return False
    return False


def _write_where(condition: Any, task_id: int, values: dict[str, Any]) -> None:
    """Update the task row on a connection of its own when ``condition`` holds."""
    table = BackgroundTask.__table__
    with db.engine.connect() as conn:
        conn.execute(update(table).where(table.c.id == task_id, condition).values(**values))
        conn.commit()


def snapshot(task: BackgroundTask) -> dict[str, Any]:
    """The task's state as JSON: ``status``, ``done``, ``total``, ``percent`` (``None`` while
    the total is unknown), ``finished`` and ``error``. Figures of a task running in this
    process come from memory (fresher than the row)."""
    with _live_lock:
        live = dict(_live.get(task.id, {}))
    status = task.status
    done = task.done or 0
    total = task.total
    if live and status in ("queued", "running"):
        done = live.get("done", done)
        total = live.get("total", total)
        status = live.get("status", status) if status == "queued" else status
    percent = None
    if total:
        percent = min(100, int(done * 100 / total))
    if status == "done":
        percent = 100
    return {
        "id": task.id,
        "kind": task.kind,
        "status": status,
        "done": done,
        "total": total,
        "percent": percent,
        "finished": status in ("done", "failed"),
        "error": task.error,
    }
