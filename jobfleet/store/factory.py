"""Open the job store for a process: the one place that turns settings into a JobStore."""

from __future__ import annotations

import redis

from jobfleet.core.redis_client import make_client
from jobfleet.core.settings import Settings
from jobfleet.store.jobs import JobStore
from jobfleet.store.keys import Keys


def open_store(settings: Settings, client: redis.Redis | None = None) -> JobStore:
    """The job store for ``settings`` over ``client`` (a new client with bounded timeouts when None)."""
    return JobStore(
        client or make_client(settings),
        Keys(settings.namespace),
        job_ttl_seconds=settings.job_retention_seconds,
        dlq_ttl_seconds=settings.dlq_retention_seconds,
        ledger_ttl_seconds=settings.idempotency_window_seconds,
    )
