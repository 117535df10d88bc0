"""Worker boots for fault tests (``dramatiq tests.faults.boots:<name>``): the production setup plus one actor."""

from __future__ import annotations

import os
import time

import dramatiq

from jobfleet.broker.broker import JobfleetBroker
from jobfleet.workers.boot import setup as production_setup


def newer() -> JobfleetBroker:
    """A newer release: one more actor on the reports queue (an older worker does not know it)."""
    broker = production_setup()

    def build_report_v2(rows: int = 1) -> dict[str, int]:
        return {"rows": rows, "version": 2}

    dramatiq.actor(build_report_v2, broker=broker, queue_name="reports", job_type="report_v2")
    return broker


def slow() -> JobfleetBroker:
    """The production setup plus ``slow_job``, which sleeps JOBFLEET_TEST_SLOW_SECONDS (a long report, say)."""
    broker = production_setup()
    seconds = float(os.environ.get("JOBFLEET_TEST_SLOW_SECONDS", "10"))

    def slow_job() -> dict[str, float]:
        time.sleep(seconds)
        return {"slept": seconds}

    dramatiq.actor(slow_job, broker=broker, queue_name="slow", job_type="slow", time_limit=600_000)
    return broker
