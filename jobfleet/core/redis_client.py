"""One way to open a Redis client: bounded timeouts and health checks, so an outage fails fast."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from jobfleet.core.errors import ConfigError
from jobfleet.core.settings import Settings


def make_client(settings: Settings, *, timeout: float | None = None, retries: int = 1) -> redis.Redis:
    """A client for ``settings.effective_redis_url`` whose calls fail within the configured timeout; ``retries``
    re-sends of a command that lost its connection (0 for clients whose calls must never run twice unasked)."""
    seconds = settings.redis_timeout_seconds if timeout is None else timeout
    url = settings.effective_redis_url
    extra: dict[str, Any] = {}
    if settings.redis_password_file:
        # A password in a file (a mounted secret) keeps it out of REDIS_URL, process listings and env dumps;
        # the user (ACL) still comes from the URL: rediss://jobfleet@redis:6380/0.
        try:
            extra["password"] = Path(settings.redis_password_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"JOBFLEET_REDIS_PASSWORD_FILE cannot be read: {exc.strerror}") from None
    if url.startswith("rediss://"):
        extra["ssl_cert_reqs"] = "required"  # verify the server's certificate (and its name) against the CAs
        if settings.redis_ca_file:
            extra["ssl_ca_certs"] = settings.redis_ca_file
    return redis.Redis.from_url(
        url,
        socket_timeout=seconds,
        socket_connect_timeout=seconds,
        health_check_interval=15,
        retry_on_timeout=False,
        # redis-py's default retries with backoff up to 10 s would stretch an outage into hanging requests;
        # one quick retry absorbs a dropped connection, callers decide the rest.
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=retries),
        **extra,
    )
