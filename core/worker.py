"""Celery workers: background tasks and scheduled jobs on other processes and machines.

Without ``GUANXI_BROKER_URL`` nothing here is used: a background task runs in a thread of the
process that started it and ``guanxi jobs run-due`` (from cron) runs the due jobs itself. With a
broker (Redis, e.g. ``redis://127.0.0.1:6379/0``), :func:`install` -- called by
:func:`core.app.create_app` -- builds the app's Celery instance and installs two dispatchers the
core's engines look for:

``app.extensions["guanxi.task_runner"]``
    ``runner(task_id)`` queues a :mod:`core.tasks` row; a worker runs
    :func:`core.tasks.execute` on it (imports and other long work).
``app.extensions["guanxi.job_runner"]``
    ``runner(run_id)`` queues a claimed :class:`~core.models.JobRun`; a worker runs
    :func:`core.jobs.run_claimed` on it. ``guanxi jobs run-due`` then only claims and queues, so
    the runs spread over every worker.

``guanxi worker`` starts a worker (``--beat`` adds the scheduler that calls ``run-due`` every
minute, in place of cron). Each task pushes an app context of its own; the database rows stay
the one source of truth (no result backend): the row of a task or a job run says who ran it
(``host:pid``), how far it got and how it ended, whichever machine ran it.

A message that cannot be published (the broker is down) is not lost work: the task runs in a
local thread instead and the job run is run in the calling process, with a warning in the log.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask

log = logging.getLogger("guanxi.worker")

#: Seconds between two ``run-due`` calls of the scheduler of ``guanxi worker --beat``.
BEAT_INTERVAL = 60.0


def install(app: Flask) -> Any:
    """Build the Celery instance of ``app`` (from ``BROKER_URL`` and ``BROKER_QUEUE``), register
    Guanxi's tasks on it and install the dispatchers; returns the Celery instance."""
    try:
        from celery import Celery, Task
        from celery.signals import worker_process_init, worker_ready
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise RuntimeError(
            "GUANXI_BROKER_URL is set but Celery is not installed: "
            "pip install 'guanxi[worker]' (or unset GUANXI_BROKER_URL to run work in-process)"
        ) from exc

    class AppTask(Task):
        """Runs every task inside an app context of ``app`` (and removes its session after)."""

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    queue = app.config.get("BROKER_QUEUE") or "guanxi"
    celery = Celery(app.import_name, task_cls=AppTask)
    celery.conf.update(
        broker_url=app.config["BROKER_URL"],
        broker_connection_retry_on_startup=True,
        # A publish that fails quickly falls back to in-process work instead of hanging a request.
        broker_transport_options={"socket_connect_timeout": 2, "socket_timeout": 5},
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5},
        task_default_queue=queue,
        task_ignore_result=True,
        # Tasks are long (an import of a million rows): take one at a time.
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        beat_schedule={
            "guanxi-run-due": {"task": "guanxi.run_due", "schedule": BEAT_INTERVAL},
        },
        beat_schedule_filename=str(Path(app.instance_path) / "celerybeat-schedule"),
    )

    @celery.task(name="guanxi.run_task")
    def run_task(task_id: int) -> None:
        from core import tasks

        tasks.execute(task_id)

    @celery.task(name="guanxi.run_job")
    def run_job(run_id: int) -> None:
        from core import jobs

        jobs.run_claimed(run_id)

    @celery.task(name="guanxi.run_due")
    def run_due() -> None:
        from core import jobs

        for name, scope, status in jobs.run_due():
            log.info("job %s %s %s", name, scope, status)

    def task_runner(task_id: int) -> None:
        try:
            run_task.apply_async((task_id,))
        except Exception:
            log.exception("could not queue task %s on %s; running it here", task_id, queue)
            from core import tasks

            tasks.start_here(task_id)

    def job_runner(run_id: int) -> None:
        try:
            run_job.apply_async((run_id,))
        except Exception:
            log.exception("could not queue job run %s on %s; running it here", run_id, queue)
            from core import jobs

            jobs.run_claimed(run_id)

    def fresh_connections(**_kwargs: Any) -> None:
        # A forked pool process must not share the parent's pooled database connections.
        with app.app_context():
            from core.db import db

            db.engine.dispose(close=False)

    def reap_dead(**_kwargs: Any) -> None:
        # Tasks left "running" by a worker of this machine that died become resumable.
        from core import tasks

        with app.app_context():
            if count := tasks.reap():
                log.warning("marked %s task(s) of dead processes on this machine failed", count)

    worker_process_init.connect(fresh_connections, weak=False)
    worker_ready.connect(reap_dead, weak=False)
    app.extensions["celery"] = celery
    app.extensions["guanxi.task_runner"] = task_runner
    app.extensions["guanxi.job_runner"] = job_runner
    return celery


def argv(app: Flask, *, beat: bool, extra: tuple[str, ...] = ()) -> list[str]:
    """The ``celery worker`` arguments of ``guanxi worker``: the app's queue, INFO logging, the
    scheduler when ``beat``, then ``extra`` (any ``celery worker`` option, e.g. ``-c 4``)."""
    queue = app.config.get("BROKER_QUEUE") or "guanxi"
    # Mingle and gossip share revocations and clock ticks between workers; Guanxi uses neither.
    args = ["worker", "--loglevel=INFO", "-Q", queue, "--without-mingle", "--without-gossip"]
    if beat:
        args.append("--beat")
    return [*args, *extra]
