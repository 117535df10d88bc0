"""Worker boot for fault tests: the real broker and actors plus one actor that kills its own process
(what an OOM kill or a segfault looks like from the outside)."""

from __future__ import annotations

import os
import signal

import dramatiq

from jobfleet.broker.broker import JobfleetBroker
from jobfleet.workers.boot import setup as real_setup


def crash_worker() -> None:
    """Die at once, mid-job, without any cleanup."""
    os.kill(os.getpid(), signal.SIGKILL)


def setup() -> JobfleetBroker:
    """The production setup, plus the crashing actor on the ``crashes`` queue."""
    broker = real_setup()
    dramatiq.actor(crash_worker, broker=broker, queue_name="crashes", time_limit=60_000, job_type="crash")
    return broker
