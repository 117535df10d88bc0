"""WorkerMetrics: Prometheus counters, histograms and gauges for every attempt and final outcome (docs/metrics.md).

Placed before JobLifecycle, so its ``after_*`` hooks run after JobLifecycle's and read the Outcome it left on
the message; the attempt's start is reported by AttemptStarted (placed after JobLifecycle). Works in
prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set before the process started) and in a
single process (in-process test workers): either way the metrics live on an explicit registry."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess

from middleware.retry_policy import exception_label

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)

# Outcome event (middleware.lifecycle.Outcome) -> the end-to-end histogram's ``outcome`` label, for final ones.
_FINAL = {"succeeded": "succeeded", "dead_lettered": "dead", "cancelled": "cancelled"}


def queue_label(message: Any) -> str:
    """The queue a message belongs to (delayed messages report their base queue)."""
    name: str = message.queue_name
    return name.removesuffix(".DQ")


def accepted_at(message: Any, attempt: Any) -> float:
    """When the API accepted the job (epoch seconds): the job record, else the message options."""
    enqueued = getattr(attempt, "enqueued_at", None)
    if enqueued:
        return float(enqueued)
    return float(message.options.get("accepted_at") or message.message_timestamp / 1000)


class WorkerMetrics(Middleware):
    """Counts attempts and outcomes per queue and actor; times run, queue wait and end to end."""

    def __init__(
        self,
        *,
        registry: CollectorRegistry | None = None,
        multiprocess_dir: str = "",
        exposition: Callable[[], Any] | None = None,
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self.multiprocess_dir = multiprocess_dir
        self.exposition = exposition
        r, qa = self.registry, ["queue", "actor"]
        self.started = Counter("jobfleet_jobs_started", "Attempts started", qa, registry=r)
        self.succeeded = Counter("jobfleet_jobs_succeeded", "Jobs finished successfully", qa, registry=r)
        self.failed = Counter("jobfleet_jobs_failed", "Attempts that raised", [*qa, "exception"], registry=r)
        self.retried = Counter("jobfleet_jobs_retried", "Retries scheduled", qa, registry=r)
        self.dead_lettered = Counter("jobfleet_jobs_dead_lettered", "Jobs moved to the DLQ", qa, registry=r)
        self.duplicates = Counter(
            "jobfleet_jobs_duplicates_skipped", "Deliveries skipped: idempotency key already done", qa, registry=r
        )
        self.cancelled = Counter("jobfleet_jobs_cancelled", "Jobs cancelled before or while running", qa, registry=r)
        self.run_seconds = Histogram(
            "jobfleet_job_run_seconds", "Actor run time per attempt", qa, buckets=BUCKETS, registry=r
        )
        self.queue_wait = Histogram(
            "jobfleet_job_queue_wait_seconds",
            "Ready-at to start of an attempt (excludes deliberate delay and retry backoff)",
            qa,
            buckets=BUCKETS,
            registry=r,
        )
        self.end_to_end = Histogram(
            "jobfleet_job_end_to_end_seconds",
            "Accepted to final outcome",
            [*qa, "outcome"],
            buckets=BUCKETS,
            registry=r,
        )
        self.in_progress = Gauge(
            "jobfleet_jobs_in_progress", "Attempts running now", qa, multiprocess_mode="livesum", registry=r
        )
        self.threads_busy = Gauge(
            "jobfleet_worker_threads_busy", "Worker threads running a job", multiprocess_mode="livesum", registry=r
        )
        self.threads = Gauge(
            "jobfleet_worker_threads", "Worker threads in live processes", multiprocess_mode="livesum", registry=r
        )

    @property
    def forks(self) -> list[Callable[[], Any]]:
        """The Dramatiq CLI runs the /metrics server in a forked process (multiprocess mode only)."""
        return [self.exposition] if self.exposition is not None and self.multiprocess_dir else []

    # --- worker lifetime ---
    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        """Called when a worker's threads started: count them, and start every actor's series at zero."""
        self.threads.set(worker.worker_threads)
        # A counter born at its first increment hides that increment from rate(); zeros make it count.
        for actor_name in broker.get_declared_actors():
            labels = (broker.get_actor(actor_name).queue_name, actor_name)
            for metric in (self.started, self.succeeded, self.retried, self.dead_lettered, self.duplicates):
                metric.labels(*labels)
            for family in (self.cancelled, self.run_seconds, self.queue_wait, self.in_progress):
                family.labels(*labels)
            for outcome in _FINAL.values():
                self.end_to_end.labels(*labels, outcome)

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        """Called when a worker stopped: its threads are gone; drop this process's live gauges."""
        self.threads.set(0)
        self.threads_busy.set(0)
        if self.multiprocess_dir:
            multiprocess.mark_process_dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]

    # --- one delivery ---
    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        """Called first for every delivery: a worker thread is busy from here until an after hook."""
        self.threads_busy.inc()

    def attempt_started(self, message: Any, attempt: Any) -> None:
        """AttemptStarted listener: JobLifecycle claimed the attempt and the actor is about to run."""
        queue, actor = queue_label(message), message.actor_name
        self.started.labels(queue, actor).inc()
        self.in_progress.labels(queue, actor).inc()
        ready_at = attempt.ready_at or message.options.get("ready_at") or accepted_at(message, attempt)
        self.queue_wait.labels(queue, actor).observe(max(0.0, attempt.started - float(ready_at)))
        message._jf_metrics_started = time.perf_counter()

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        """Called after JobLifecycle recorded the attempt: time it and count its outcome."""
        self.threads_busy.dec()
        queue, actor = queue_label(message), message.actor_name
        started = getattr(message, "_jf_metrics_started", None)
        if started is not None:
            del message._jf_metrics_started
            self.in_progress.labels(queue, actor).dec()
            self.run_seconds.labels(queue, actor).observe(time.perf_counter() - started)
            if exception is not None:
                self.failed.labels(queue, actor, exception_label(exception)).inc()
        self._count_outcome(message, queue, actor)

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        """Called when JobLifecycle skipped a delivery (duplicate, cancelled, poison): count why."""
        self.threads_busy.dec()
        self._count_outcome(message, queue_label(message), message.actor_name)

    def _count_outcome(self, message: Any, queue: str, actor: str) -> None:
        outcome = getattr(message, "_jf_outcome", None)
        if outcome is None:
            return
        counter = {
            "succeeded": self.succeeded,
            "retried": self.retried,
            "dead_lettered": self.dead_lettered,
            "cancelled": self.cancelled,
            "duplicate_skipped": self.duplicates,
        }.get(outcome.event)
        if counter is not None:
            counter.labels(queue, actor).inc()
        final = _FINAL.get(outcome.event)
        if final is not None:
            elapsed = max(0.0, time.time() - accepted_at(message, outcome.attempt))
            self.end_to_end.labels(queue, actor, final).observe(elapsed)
