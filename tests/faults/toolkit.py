"""Fault-injection tools for fault tests, all against real processes: a proxy that loses, delays or withholds Redis's
replies (proxy.py). Fixtures: tests/faults/conftest.py; each tool is shown working in tests/faults/test_*.py."""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.faults.proxy import ReplyProxy, RespParser

__all__ = [
    "ReplyProxy",
    "RespParser",
    "no_retry_client",
]


def no_retry_client(url: str, socket_timeout: float = 5.0, **kwargs: Any) -> redis.Redis:
    """A client that never retries, so a fault surfaces once as an exception instead of a silent second attempt
    (redis-py retries 3 times by default, jobfleet's client once: a retried write may run twice)."""
    return redis.Redis.from_url(url, socket_timeout=socket_timeout, retry=Retry(NoBackoff(), 0), **kwargs)
