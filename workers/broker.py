"""Build the broker with its complete middleware list — the one place that does it, before any actor exists."""

from __future__ import annotations

import dramatiq
from dramatiq.middleware import TimeLimit
from opentelemetry.trace import TracerProvider

from jobfleet.broker.recovery import RecoveryMiddleware
from jobfleet.broker.redis_broker import JobfleetRedisBroker
from jobfleet.core.redis_client import make_client
from jobfleet.core.settings import Settings
from jobfleet.core.telemetry import serve_worker_metrics
from jobfleet.middleware.attempt_started import AttemptStarted
from jobfleet.middleware.lifecycle import JobLifecycle
from jobfleet.middleware.retry_policy import RetryPolicy
from jobfleet.middleware.tracing import Tracing
from jobfleet.middleware.worker_metrics import WorkerMetrics
from jobfleet.store.factory import open_store


def build_broker(settings: Settings, *, tracer_provider: TracerProvider | None = None) -> JobfleetRedisBroker:
    """A Redis broker with jobfleet's middleware chain, in order (``before_*`` hooks run top to bottom,
    ``after_*`` bottom to top). ``tracer_provider`` defaults to the process's global one."""
    # Workers poll Redis; a generous socket timeout avoids false outages under load but stays bounded.
    client = make_client(settings, timeout=max(settings.redis_timeout_seconds, 5.0))
    store = open_store(settings, client)
    heartbeat_ms = int(settings.heartbeat_timeout_seconds * 1000)
    tracing = Tracing(tracer_provider=tracer_provider)
    metrics = WorkerMetrics(multiprocess_dir=settings.prometheus_multiproc_dir, exposition=serve_worker_metrics)
    middleware = [
        RecoveryMiddleware(interval_seconds=max(1.0, settings.heartbeat_timeout_seconds / 3)),
        # Tracing and metrics wrap JobLifecycle: their after_* hooks run after it and read its Outcome.
        tracing,
        metrics,
        JobLifecycle(
            store=store,
            policy=RetryPolicy(
                max_retries=settings.max_retries,
                min_backoff_seconds=settings.min_backoff_seconds,
                max_backoff_seconds=settings.max_backoff_seconds,
            ),
            heartbeat_timeout_ms=heartbeat_ms,
            max_interruptions=settings.max_crash_redeliveries,
        ),
        AttemptStarted(metrics.attempt_started, tracing.attempt_started),
        TimeLimit(),
    ]
    broker = JobfleetRedisBroker(
        client=client,
        namespace=settings.namespace,
        heartbeat_timeout=heartbeat_ms,
        dead_message_ttl=settings.dlq_retention_seconds * 1000,
        middleware=middleware,
    )
    broker.jobfleet_store = store
    return broker


def install(settings: Settings, *, tracer_provider: TracerProvider | None = None) -> JobfleetRedisBroker:
    """Build the broker, make it Dramatiq's global broker and declare the actors on it."""
    from jobfleet.workers.actors import declare_actors

    broker = build_broker(settings, tracer_provider=tracer_provider)
    dramatiq.set_broker(broker)
    declare_actors(broker, settings)
    return broker
