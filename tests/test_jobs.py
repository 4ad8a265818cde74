"""Scheduled jobs: periods, per-company runs for the companies that enabled the plugin, one run
per period however many times (and from however many processes) ``run-due`` is called."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from core import jobs
from core.cli import main
from core.db import utcnow
from core.jobs import daily, every, monthly
from core.models import AuditLog, JobRun
from core.tenancy import company_scope
from tests import jobs_plugin

ROOT = Path(__file__).resolve().parent.parent
SHANGHAI = ZoneInfo("Asia/Shanghai")
PLUGIN = "jobs_test"
COUNT, EXPLODE = "jobs_test.count", "jobs_test.explode"

with_jobs_plugin = pytest.mark.guanxi_plugins("tests.jobs_plugin")


def sh(*args: int) -> datetime:
    """A moment in Shanghai local time."""
    return datetime(*args, tzinfo=SHANGHAI)


def runs_of(db, company, action=jobs_plugin.COUNT_ACTION):
    """How many times the counting job left its trace in ``company``."""
    with company_scope(company.id):
        return db.session.scalar(
            select(func.count()).select_from(AuditLog).where(AuditLog.action == action)
        )


def job_runs(db, job=None):
    query = select(JobRun).order_by(JobRun.id)
    if job:
        query = query.where(JobRun.job == job)
    return db.session.scalars(query).all()


# -- schedules ----------------------------------------------------------------------------------


def test_every_cuts_time_into_fixed_slots():
    schedule = every(15)
    start = datetime(2024, 3, 8, 10, 0, tzinfo=UTC)
    assert schedule.period(start) == schedule.period(start + timedelta(minutes=14, seconds=59))
    assert schedule.period(start) != schedule.period(start + timedelta(minutes=15))
    # Slots are absolute moments: the zone of the caller does not change them.
    assert schedule.period(start) == schedule.period(start.astimezone(SHANGHAI), "Europe/Berlin")


def test_daily_period_starts_at_the_local_run_time():
    schedule = daily("02:00")
    assert schedule.period(sh(2024, 3, 5, 1, 59)) == "2024-03-04"  # still yesterday's run
    assert schedule.period(sh(2024, 3, 5, 2, 0)) == "2024-03-05"
    assert schedule.period(sh(2024, 3, 5, 23, 59)) == "2024-03-05"
    # 20:00 UTC is 04:00 the next day in Shanghai but 21:00 the same day in Berlin.
    moment = datetime(2024, 3, 4, 20, tzinfo=UTC)
    assert schedule.period(moment, "Asia/Shanghai") == "2024-03-05"
    assert schedule.period(moment, "Europe/Berlin") == "2024-03-04"


def test_monthly_is_due_from_its_day_to_the_end_of_the_month():
    schedule = monthly(day=25, at="09:00")
    assert schedule.period(sh(2024, 3, 25, 8, 59)) is None  # not yet due this month
    assert schedule.period(sh(2024, 3, 25, 9, 0)) == "2024-03"
    assert schedule.period(sh(2024, 3, 31, 23, 59)) == "2024-03"
    assert schedule.period(sh(2024, 4, 1, 12)) is None


def test_monthly_on_the_31st_runs_at_the_end_of_shorter_months():
    schedule = monthly(day=31, at="18:00")
    assert schedule.period(sh(2024, 2, 29, 17, 59)) is None
    assert schedule.period(sh(2024, 2, 29, 18)) == "2024-02"
    assert schedule.period(sh(2024, 4, 30, 18)) == "2024-04"
    assert schedule.period(sh(2024, 5, 30, 18)) is None
    assert schedule.period(sh(2024, 5, 31, 18)) == "2024-05"


# -- run_due ------------------------------------------------------------------------------------


@with_jobs_plugin
def test_a_per_company_job_runs_only_for_companies_that_enabled_its_plugin(app, db, company):
    on = company(plugins=(PLUGIN,))
    off = company()
    done = jobs.run_due(sh(2024, 3, 8, 10), only=COUNT)
    assert done == [(COUNT, f"company:{on.id}", "done")]
    assert (runs_of(db, on), runs_of(db, off)) == (1, 0)
    (run,) = job_runs(db, COUNT)
    assert (run.scope, run.period, run.status) == (f"company:{on.id}", "2024-03", "done")
    assert run.message == f"counted {on.code}" and run.finished_at is not None

    # Disabled: the job stops for that company; what it wrote stays.
    app.extensions["guanxi.plugins"].disable(on, PLUGIN)
    db.session.commit()
    assert jobs.run_due(sh(2024, 4, 8, 10), only=COUNT) == []
    assert runs_of(db, on) == 1


@with_jobs_plugin
def test_run_due_twice_in_one_period_runs_once(app, db, company):
    acme = company(plugins=(PLUGIN,))
    assert jobs.run_due(sh(2024, 3, 8, 10), only=COUNT) == [(COUNT, f"company:{acme.id}", "done")]
    assert jobs.run_due(sh(2024, 3, 8, 10), only=COUNT) == []
    assert jobs.run_due(sh(2024, 3, 29, 23), only=COUNT) == []  # still March
    assert runs_of(db, acme) == 1
    # April is a new period.
    assert jobs.run_due(sh(2024, 4, 1, 0, 1), only=COUNT) == [(COUNT, f"company:{acme.id}", "done")]
    assert runs_of(db, acme) == 2
    assert [r.period for r in job_runs(db, COUNT)] == ["2024-03", "2024-04"]


@with_jobs_plugin
def test_a_run_left_running_by_a_dead_process_is_taken_over_after_its_timeout(app, db, company):
    acme = company(plugins=(PLUGIN,))
    scope = f"company:{acme.id}"
    db.session.add(
        JobRun(
            job=COUNT, scope=scope, period="2024-03", worker="dead:1", started_at=sh(2024, 3, 8, 9)
        )
    )
    db.session.commit()
    assert jobs.run_due(sh(2024, 3, 8, 9, 20), only=COUNT) == []  # still within its lease
    assert jobs.run_due(sh(2024, 3, 8, 10), only=COUNT) == [(COUNT, scope, "done")]
    run = job_runs(db, COUNT)[0]
    assert run.worker != "dead:1" and run.status == "done" and runs_of(db, acme) == 1
    assert jobs.run_due(sh(2024, 3, 8, 11), only=COUNT) == []  # done: not run again


@with_jobs_plugin
def test_periods_follow_each_companys_time_zone(app, db, company):
    shanghai = company(plugins=(PLUGIN,))
    berlin = company(plugins=(PLUGIN,))
    berlin.timezone = "Europe/Berlin"
    db.session.commit()
    jobs.run_due(sh(2024, 3, 15, 10), only=COUNT)
    # 31 March 20:00 UTC: already 1 April 04:00 in Shanghai, still March in Berlin.
    done = jobs.run_due(datetime(2024, 3, 31, 20, tzinfo=UTC), only=COUNT)
    assert done == [(COUNT, f"company:{shanghai.id}", "done")]
    assert (runs_of(db, shanghai), runs_of(db, berlin)) == (2, 1)


@with_jobs_plugin
def test_a_failing_job_is_recorded_and_does_not_stop_the_others(app, db, company):
    first, second = company(plugins=(PLUGIN,)), company(plugins=(PLUGIN,))
    done = jobs.run_due(sh(2024, 3, 8, 10))
    for co in (first, second):
        assert (EXPLODE, f"company:{co.id}", "failed") in done
        assert (COUNT, f"company:{co.id}", "done") in done
        assert runs_of(db, co) == 1
        assert runs_of(db, co, "job.explode") == 0  # the failed run's writes are rolled back
    assert ("clocks.scan", "global", "done") in done  # the core's own job ran too
    failed = job_runs(db, EXPLODE)
    assert [r.status for r in failed] == ["failed", "failed"]
    assert failed[0].message == f"RuntimeError: boom in {first.code}"
    assert all(r.finished_at is not None for r in failed)


@with_jobs_plugin
def test_jobs_run_due_command(app, db, company):
    acme = company(plugins=(PLUGIN,))
    runner = app.test_cli_runner()
    result = runner.invoke(main, ["jobs", "run-due", "--job", COUNT])
    assert result.exit_code == 0, result.output
    assert result.output == f"{COUNT} company:{acme.id} done\n"
    assert runner.invoke(main, ["jobs", "run-due", "--job", COUNT]).output == ""
    assert runs_of(db, acme) == 1


# -- two processes at once (the acceptance test) ------------------------------------------------


def _guanxi_command() -> list[str]:
    script = Path(sys.executable).with_name("guanxi")
    if script.exists():
        return [str(script), "jobs", "run-due"]
    return [sys.executable, "-c", "from core.cli import main; main()", "jobs", "run-due"]


@with_jobs_plugin
def test_run_due_started_twice_at_once_runs_a_due_job_once(app, db, company, tmp_path):
    enabled = [company(plugins=(PLUGIN,)) for _ in range(3)]
    bystander = company()
    db.session.commit()  # the processes see only committed rows
    env = {
        **os.environ,
        "GUANXI_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "GUANXI_PLUGINS": "tests.jobs_plugin",
        "GUANXI_INSTANCE_PATH": str(tmp_path / "instance"),
        "GUANXI_TEST_JOB_DELAY": "0.5",  # long enough for the two processes to overlap
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    period = jobs_plugin.MONTHLY.period(utcnow())
    processes = [
        subprocess.Popen(
            _guanxi_command(),
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        outputs.append(out)
    if jobs_plugin.MONTHLY.period(utcnow()) != period:
        pytest.skip("a new month began while the processes ran; the run counts are ambiguous")

    db.session.commit()  # read what the processes committed
    for co in enabled:
        assert runs_of(db, co) == 1, f"{co.code} was counted {runs_of(db, co)} times"
    assert runs_of(db, bystander) == 0
    # Between them the two processes report each run once.
    lines = sorted(line for out in outputs for line in out.splitlines() if "jobs_test" in line)
    assert lines == sorted(
        [f"{COUNT} company:{co.id} done" for co in enabled]
        + [f"{EXPLODE} company:{co.id} failed" for co in enabled]
    )
    assert [(r.scope, r.status) for r in job_runs(db, COUNT)] == [
        (f"company:{co.id}", "done") for co in enabled
    ]


def test_run_due_names_an_unknown_job(app):
    from core.cli import main as cli

    result = app.test_cli_runner().invoke(cli, ["jobs", "run-due", "--job", "nope"])
    assert result.exit_code != 0 and "no job named 'nope'" in result.output


def test_jobs_list_shows_schedules_and_the_latest_run(app):
    from core.cli import main as cli

    runner = app.test_cli_runner()
    before = runner.invoke(cli, ["jobs", "list"])
    assert before.exit_code == 0, before.output
    assert "clocks.scan" in before.output and "every 5 min" in before.output
    assert "never run" in before.output
    runner.invoke(cli, ["jobs", "run-due", "--job", "clocks.scan"])
    after = runner.invoke(cli, ["jobs", "list"]).output
    line = next(row for row in after.splitlines() if row.startswith("clocks.scan"))
    assert "global done" in line
