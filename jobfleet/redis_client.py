"""One way to open a Redis client: bounded timeouts and health checks, so an outage fails fast."""

from __future__ import annotations

import redis

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
    )
