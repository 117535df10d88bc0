"""Put on PYTHONPATH by FakeTime.env (tests/faults/toolkit.py) for Python children under a libfaketime that breaks
time.sleep: with FAKETIME_DONT_FAKE_MONOTONIC=1, libfaketime 0.9.10 rewrites the absolute CLOCK_MONOTONIC deadline
that time.sleep passes to clock_nanosleep since Python 3.11 into a negative one (EINVAL; wolfcw/libfaketime#426, fixed
in 0.9.11). Here time.sleep waits in select() instead, whose relative timeout libfaketime leaves alone. Like any
sitecustomize, it runs at interpreter start, before the child's own code."""

import os
import select
import time


def _sleep(seconds: float) -> None:
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    select.select([], [], [], seconds)  # retried with the remaining time after a signal (PEP 475), like time.sleep


if os.environ.get("FAKETIME"):
    time.sleep = _sleep
