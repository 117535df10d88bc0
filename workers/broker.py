"""Build the broker with its complete middleware list — the one place that does it, before any actor exists."""

from __future__ import annotations

import dramatiq
from dramatiq.middleware import AgeLimit, Callbacks, Pipelines, ShutdownNotifications, TimeLimit
from opentelemetry.trace import TracerProvider

from jobfleet.broker.broker import JobfleetBroker
from jobfleet.broker.deliveries import FleetTimings
from jobfleet.core.redis_client import make_client
from jobfleet.core.settings import Settings
from jobfleet.core.telemetry import serve_worker_metrics
from jobfleet.middleware.attempt_started import AttemptStarted
from jobfleet.middleware.lifecycle import JobLifecycle
from jobfleet.middleware.retry_policy import RetryPolicy
from jobfleet.middleware.tracing import Tracing
from jobfleet.middleware.worker_metrics import WorkerMetrics
from jobfleet.store.factory import open_store


def build_broker(settings: Settings, *, tracer_provider: TracerProvider | None = None) -> JobfleetBroker:
    """jobfleet's broker with its middleware chain, in order (``before_*`` hooks run top to bottom, ``after_*``
    bottom to top). ``tracer_provider`` defaults to the process's global one."""
    # Workers poll Redis; a generous socket timeout avoids false outages under load but stays bounded. No silent
    # re-sends: a fetch (or a finish that takes the next job) run twice would claim a job nobody hears of; the
    # store retries its idempotent calls itself and reconciles after the others.
    client = make_client(settings, timeout=max(settings.redis_timeout_seconds, 5.0), retries=0)
    store = open_store(settings, client)
    tracing = Tracing(tracer_provider=tracer_provider)
    metrics = WorkerMetrics(multiprocess_dir=settings.prometheus_multiproc_dir, exposition=serve_worker_metrics)
    middleware = [
        # Tracing and metrics wrap everything: their after_* hooks run last and read the outcome JobLifecycle left.
        tracing,
        metrics,
        # Dramatiq's defaults that teams rely on (its Retries is replaced by JobLifecycle's retry policy). They sit
        # before JobLifecycle so their after_* hooks run after it: Pipelines and Callbacks see message.failed.
        AgeLimit(),
        TimeLimit(),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        JobLifecycle(
            store=store,
            policy=RetryPolicy(
                max_retries=settings.max_retries,
                min_backoff_seconds=settings.min_backoff_seconds,
                max_backoff_seconds=settings.max_backoff_seconds,
            ),
        ),
        # Right after JobLifecycle: its before hook runs only for attempts JobLifecycle let through.
        AttemptStarted(metrics.attempt_started, tracing.attempt_started),
    ]
    timings = FleetTimings(
        heartbeat_timeout_ms=int(settings.heartbeat_timeout_seconds * 1000),
        max_interruptions=settings.max_crash_redeliveries,
        hold_ms=int(settings.unknown_actor_hold_seconds * 1000),
    )
    return JobfleetBroker(store=store, middleware=middleware, timings=timings)


def install(settings: Settings, *, tracer_provider: TracerProvider | None = None) -> JobfleetBroker:
    """Build the broker, make it Dramatiq's global broker and declare the actors on it."""
    # The one late import of the house: actors are declared only once the broker exists (house rule 7).
    from jobfleet.workers.actors import declare_actors

    broker = build_broker(settings, tracer_provider=tracer_provider)
    dramatiq.set_broker(broker)
    declare_actors(broker, settings)
    return broker
