"""WorkerMetrics: Prometheus counters, histograms and gauges for every attempt and final outcome (docs/metrics.md).

Placed before JobLifecycle, so its ``after_*`` hooks run after JobLifecycle's and read the Outcome it left on
the message; the attempt's start is reported by AttemptStarted (placed after JobLifecycle). Works in
prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set before the process started) and in a
single process (in-process test workers): either way the metrics live on an explicit registry."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dramatiq
from dramatiq.common import q_name
from dramatiq.middleware import Middleware
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess

from jobfleet.core.states import FINAL_OUTCOMES, Outcome
from jobfleet.middleware.retry_policy import exception_label
from jobfleet.store.delivery import state_of

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


def accepted_at(message: Any, attempt: Any) -> float:
    """When the API accepted the job (epoch seconds): the job record, else the message options."""
    enqueued = getattr(attempt, "enqueued_at", None)
    if enqueued:
        return float(enqueued)
    return float(message.options.get("accepted_at") or message.message_timestamp / 1000)


@dataclass(frozen=True, slots=True)
class _Series:
    """One (queue, actor)'s labelled children. ``labels()`` takes a lock and validates its arguments on every call;
    resolving the children once keeps that off the per-job path. In multiprocess mode they are mmap-backed values."""

    started: Counter
    in_progress: Gauge
    queue_wait: Histogram
    run_seconds: Histogram
    outcomes: dict[Outcome, Counter]  # outcome -> its counter
    end_to_end: dict[Outcome, Histogram]  # final outcome -> the end-to-end histogram for its ``outcome`` label
    failed: Counter  # the family: its children are resolved per exception label on first use
    queue: str
    actor: str
    failed_by_exception: dict[str, Counter] = field(default_factory=dict)

    def failed_for(self, exception: BaseException) -> Counter:
        """The failure counter for ``exception``'s bounded label (see ``exception_label``)."""
        label = exception_label(exception)
        child = self.failed_by_exception.get(label)
        if child is None:
            child = self.failed_by_exception[label] = self.failed.labels(self.queue, self.actor, label)
        return child


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
        # (message.queue_name, actor name) -> its children; bounded by the declared actors and their delay queues.
        # Two threads racing to fill an entry get the same children from labels(), so no lock is needed.
        self._series: dict[tuple[str, str], _Series] = {}

    @property
    def forks(self) -> list[Callable[[], Any]]:
        """The Dramatiq CLI runs the /metrics server in a forked process (multiprocess mode only)."""
        return [self.exposition] if self.exposition is not None and self.multiprocess_dir else []

    # --- worker lifetime ---
    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        """Called when a worker's threads started: count them, and start every actor's series at zero."""
        self.threads.set(worker.worker_threads)
        # A counter born at its first increment hides that increment from rate(); zeros make it count. Resolving
        # each actor's series creates every (queue, actor) child (all but the per-exception failures) at zero.
        for actor_name in broker.get_declared_actors():
            self._series_for(broker.get_actor(actor_name).queue_name, actor_name)

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
        series = self._series_for(message.queue_name, message.actor_name)
        series.started.inc()
        series.in_progress.inc()
        ready_at = attempt.ready_at or message.options.get("ready_at") or accepted_at(message, attempt)
        series.queue_wait.observe(max(0.0, attempt.started - float(ready_at)))
        state_of(message).run_started = time.perf_counter()

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
        series = self._series_for(message.queue_name, message.actor_name)
        state = state_of(message)
        started, state.run_started = state.run_started, None
        if started is not None:
            series.in_progress.dec()
            series.run_seconds.observe(time.perf_counter() - started)
            if exception is not None:
                series.failed_for(exception).inc()
        self._count_outcome(message, series)

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        """Called when JobLifecycle skipped a delivery (duplicate, cancelled, poison): count why."""
        self.threads_busy.dec()
        self._count_outcome(message, self._series_for(message.queue_name, message.actor_name))

    def _count_outcome(self, message: Any, series: _Series) -> None:
        outcome = state_of(message).outcome
        if outcome is None:
            return
        counter = series.outcomes.get(outcome.outcome)
        if counter is not None:
            counter.inc()
        end_to_end = series.end_to_end.get(outcome.outcome)
        if end_to_end is not None:
            end_to_end.observe(max(0.0, time.time() - accepted_at(message, outcome.attempt)))

    def _series_for(self, queue_name: str, actor: str) -> _Series:
        series = self._series.get((queue_name, actor))
        if series is None:
            queue = q_name(queue_name)  # delayed deliveries count on their base queue
            series = self._series[queue_name, actor] = _Series(
                started=self.started.labels(queue, actor),
                in_progress=self.in_progress.labels(queue, actor),
                queue_wait=self.queue_wait.labels(queue, actor),
                run_seconds=self.run_seconds.labels(queue, actor),
                outcomes={
                    "succeeded": self.succeeded.labels(queue, actor),
                    "retrying": self.retried.labels(queue, actor),
                    "dead": self.dead_lettered.labels(queue, actor),
                    "cancelled": self.cancelled.labels(queue, actor),
                    "duplicate": self.duplicates.labels(queue, actor),
                },
                end_to_end={outcome: self.end_to_end.labels(queue, actor, outcome) for outcome in FINAL_OUTCOMES},
                failed=self.failed,
                queue=queue,
                actor=actor,
            )
        return series
