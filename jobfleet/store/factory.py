"""Open the job store for a process: the one place that turns settings into a JobStore."""

from __future__ import annotations

import redis

from jobfleet.core.redis_client import make_client
from jobfleet.core.settings import Settings
from jobfleet.store.jobs import JobStore, Retention
from jobfleet.store.keys import Keys


def keys_for(settings: Settings) -> Keys:
    """The key schema of ``settings``' namespace and partitions."""
    return Keys(settings.namespace, settings.queue_partitions)


def open_store(settings: Settings, client: redis.Redis | None = None) -> JobStore:
    """The job store for ``settings`` over ``client`` (a new client with bounded timeouts when None)."""
    return JobStore(
        client or make_client(settings),
        keys_for(settings),
        retention=Retention(
            succeeded=settings.succeeded_retention_seconds,
            ended=settings.job_retention_seconds,
            dead=settings.dlq_retention_seconds,
            keep_succeeded_payload=settings.keep_succeeded_payload,
        ),
    )
