"""A plugin for the job tests: a per-company job that leaves a trace, and one that fails.

Each run of ``jobs_test.count`` writes an audit row (action ``job.count``) in its company, so a
test counts runs by counting rows, also when the run happened in another process. Set
``GUANXI_TEST_JOB_DELAY`` (seconds) to make it slow, so that concurrent runs overlap.
"""

from __future__ import annotations

import os
import time
from typing import Any

from core import audit
from core.extend import Job, Manifest, hookimpl, monthly

manifest = Manifest(
    name="jobs_test",
    label="Job tests",
    label_zh="任务测试",
    version="1.0.0",
    description="Scheduled jobs for the tests of core.jobs.",
)

COUNT_ACTION = "job.count"
#: Due from the first moment of each month: always due, and two processes started together
#: fall in the same period except in the very first seconds of a month.
MONTHLY = monthly(day=1, at="00:00")


def count(company: Any) -> str:
    audit.record(COUNT_ACTION, "company", company.id, {"code": company.code})
    time.sleep(float(os.environ.get("GUANXI_TEST_JOB_DELAY") or 0))
    return f"counted {company.code}"


def explode(company: Any) -> str:
    audit.record("job.explode", "company", company.id)  # rolled back with the failure
    raise RuntimeError(f"boom in {company.code}")


@hookimpl
def guanxi_jobs() -> list[Job]:
    return [
        Job("jobs_test.explode", explode, MONTHLY, "Always fails", "总是失败"),
        Job("jobs_test.count", count, MONTHLY, "Count runs", "计数"),
    ]
