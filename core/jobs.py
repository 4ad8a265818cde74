"""Scheduled jobs: declared by hook, run by ``guanxi jobs run-due`` from cron.

A :class:`Job` has a :class:`Schedule` that cuts time into periods (every N minutes, daily at a
time, monthly on a day). ``run_due`` runs each job whose current period has no run yet -- for
each company that enabled the job's plugin (``per_company=True``), or once for the deployment.
Before running, a process *claims* the period by inserting a :class:`~core.models.JobRun` row
under a unique constraint and committing; whoever loses the race skips. So any number of
machines may call ``run-due`` at once and each job still runs once per period and company.

A claim is a lease: a run still ``running`` after its job's ``timeout`` (the machine died, the
process was killed) is taken over by the next ``run-due`` with one conditional ``UPDATE``, so a
crash delays a period's run instead of losing it. A run that *failed* is not retried within its
period (a failing job would otherwise run every minute); the next period runs it again.

With Celery workers (``GUANXI_BROKER_URL``, :mod:`core.worker`) ``run_due`` only claims: each
claimed run is queued and a worker runs it (:func:`run_claimed`), so the runs of one minute
spread over the workers. A queued run that no worker picks up is taken over like a crashed one.
"""

from __future__ import annotations

import logging
import os
import socket
from calendar import monthrange
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from core.db import db, utcnow
from core.models import Company, JobRun
from core.tenancy import company_scope, unscoped

log = logging.getLogger("guanxi.jobs")


@dataclass(frozen=True)
class Schedule:
    """When a job is due. Build with :func:`every`, :func:`daily` or :func:`monthly`."""

    minutes: int | None = None
    at: str | None = None  # "HH:MM", local time of the company (or Asia/Shanghai)
    day: int | None = None  # day of month

    def period(self, now: datetime, timezone: str = "Asia/Shanghai") -> str | None:
        """The key of the period ``now`` falls in, or ``None`` before the first run time."""
        if self.minutes:
            slot = int(now.timestamp()) // (self.minutes * 60)
            return f"every{self.minutes}m:{slot}"
        local = now.astimezone(ZoneInfo(timezone))
        hour, minute = (int(x) for x in (self.at or "00:00").split(":"))
        if self.day is not None:
            # Day 31 means the month's last day in a shorter month (never a skipped month).
            day = min(self.day, monthrange(local.year, local.month)[1])
            if (local.day, local.hour, local.minute) < (day, hour, minute):
                return None
            return local.strftime("%Y-%m")
        if (local.hour, local.minute) < (hour, minute):
            local -= timedelta(days=1)
        return local.strftime("%Y-%m-%d")


def every(minutes: int) -> Schedule:
    """Due once in every ``minutes``-minute slot."""
    return Schedule(minutes=minutes)


def daily(at: str = "02:00") -> Schedule:
    """Due once a day, from ``at`` (company local time) on."""
    return Schedule(at=at)


def monthly(day: int = 1, at: str = "02:00") -> Schedule:
    """Due once a month, from day ``day`` at ``at`` on; a ``day`` past the end of a shorter
    month means its last day (``monthly(31)`` runs at each month's end)."""
    return Schedule(day=day, at=at)


@dataclass(frozen=True)
class Job:
    """A scheduled job. ``func(company)`` runs inside ``company_scope`` for per-company jobs and
    receives ``None`` otherwise; it may return a short message kept with the run."""

    name: str
    func: Callable[[Company | None], str | None]
    schedule: Schedule
    label: str = ""
    label_zh: str = ""
    per_company: bool = True
    plugin: str = ""
    #: How long a run may stay ``running`` before another process takes it over.
    timeout: timedelta = timedelta(minutes=30)


def _claim(job: Job, scope: str, period: str, worker: str, now: datetime) -> JobRun | None:
    run = JobRun(job=job.name, scope=scope, period=period, worker=worker, started_at=now)
    db.session.add(run)
    try:
        db.session.commit()
        return run
    except IntegrityError:
        db.session.rollback()
    taken = db.session.execute(
        update(JobRun)
        .where(
            JobRun.job == job.name,
            JobRun.scope == scope,
            JobRun.period == period,
            JobRun.status == "running",
            JobRun.started_at < now - job.timeout,
        )
        .values(
            worker=worker,
            started_at=now,
            message=f"taken over after {job.timeout} without an end",
        )
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    if taken.rowcount != 1:
        return None
    log.warning("job %s (%s, %s) taken over by %s", job.name, scope, period, worker)
    return db.session.scalar(
        select(JobRun).where(JobRun.job == job.name, JobRun.scope == scope, JobRun.period == period)
    )


def run_job(job: Job, company: Company | None, run: JobRun) -> None:
    """Run one claimed job and record how it ended."""
    try:
        if company is not None:
            with company_scope(company.id):
                message = job.func(company)
                db.session.commit()
        else:
            message = job.func(None)
            db.session.commit()
        run.status, run.message = "done", message
    except Exception as exc:  # a failing job must not stop the others
        db.session.rollback()
        log.exception("job %s failed", job.name)
        run = db.session.merge(run)
        run.status, run.message = "failed", f"{type(exc).__name__}: {exc}"
    run.finished_at = utcnow()
    db.session.commit()


def run_due(
    now: datetime | None = None, *, only: str | None = None, inline: bool = False
) -> list[tuple[str, str, str]]:
    """Run every due job once; returns ``(job, scope, status)`` of the runs this call made.

    With a job runner installed (``app.extensions["guanxi.job_runner"]``: the Celery workers of
    :mod:`core.worker`) each claimed run is queued for a worker and reported ``queued``, unless
    ``inline``; otherwise it runs here."""
    from core.plugins import current

    manager = current()
    send = None if inline else current_app.extensions.get("guanxi.job_runner")
    now = now or utcnow()
    worker = _worker()
    done: list[tuple[str, str, str]] = []
    with unscoped():
        companies = list(db.session.scalars(select(Company).order_by(Company.id)))
    for job in manager.registry.jobs.values():
        if only and job.name != only:
            continue
        targets: list[Any] = [None]
        if job.per_company:
            targets = [c for c in companies if job.plugin in manager.enabled(c.id)]
        for company in targets:
            scope = f"company:{company.id}" if company else "global"
            period = job.schedule.period(now, company.timezone if company else "Asia/Shanghai")
            if period is None:
                continue
            with unscoped():
                run = _claim(job, scope, period, worker, now)
            if run is None:
                continue
            if send is not None:
                send(run.id)
                done.append((job.name, scope, "queued"))
                continue
            run_job(job, company, run)
            done.append((job.name, scope, run.status))
    return done


def run_claimed(run_id: int) -> str | None:
    """Run the claimed job run ``run_id`` here (what a worker does with a queued run); returns
    how it ended, or ``None`` when it is no longer this process's to run (already ended, or
    taken over after its timeout by another process)."""
    from core.plugins import current

    with unscoped():
        run = db.session.get(JobRun, run_id)
        if run is None or run.status != "running":
            return None
        company = None
        if run.scope.startswith("company:"):
            company = db.session.get(Company, int(run.scope.partition(":")[2]))
    job = current().registry.jobs.get(run.job)
    if job is None or (run.scope != "global" and company is None):
        run.status, run.finished_at = "failed", utcnow()
        run.message = f"job {run.job!r} or its scope {run.scope!r} is unknown to {_worker()}"
        db.session.commit()
        return run.status
    run.worker = _worker()
    db.session.commit()
    run_job(job, company, run)
    return run.status


def _worker() -> str:
    """``host:pid`` of this process, as recorded on the runs it makes."""
    return f"{socket.gethostname()}:{os.getpid()}"
