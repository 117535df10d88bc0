"""One way to open a Redis client: bounded timeouts and health checks, so an outage fails fast."""

from __future__ import annotations

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from jobfleet.settings import Settings


def make_client(settings: Settings, *, timeout: float | None = None) -> redis.Redis:
    """A client for ``settings.effective_redis_url`` whose calls fail within the configured timeout."""
    seconds = settings.redis_timeout_seconds if timeout is None else timeout
    return redis.Redis.from_url(
        settings.effective_redis_url,
        socket_timeout=seconds,
        socket_connect_timeout=seconds,
        health_check_interval=15,
        retry_on_timeout=False,
        # redis-py's default retries with backoff up to 10 s would stretch an outage into hanging requests;
        # one quick retry absorbs a dropped connection, callers decide the rest.
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=1),
    )
