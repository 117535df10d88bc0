"""jobfleet's Dramatiq broker over the job store: a message is a job record from the moment it is sent, a delivery is a
fenced claim of that record, and the outcome is recorded with the ack. Stock Dramatiq semantics keep working on it:
actors, ``.send()``, delays, pipelines, callbacks and results (see docs/ARCHITECTURE.md for the differences)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import dramatiq
import structlog
from dramatiq.errors import QueueJoinTimeout
from dramatiq.middleware import Middleware, Retries, default_middleware

from jobfleet.broker.consumer import JobfleetConsumer
from jobfleet.broker.deliveries import Deliveries, FleetTimings
from jobfleet.broker.emit import SignalCache, emit_after, emit_before
from jobfleet.broker.worker_hooks import WorkerHooks
from jobfleet.core.errors import ConfigError, StoreUnavailable
from jobfleet.store.attempts import Attempts
from jobfleet.store.delivery import option
from jobfleet.store.jobs import JobStore
from jobfleet.store.records import new_job_fields
from jobfleet.store.scripts import redis_errors

log = structlog.get_logger(__name__)


class JobfleetBroker(dramatiq.Broker):
    """A Dramatiq broker whose queues, deliveries and outcomes live in the job store."""

    def __init__(
        self, *, store: JobStore, middleware: list[Middleware] | None = None, timings: FleetTimings | None = None
    ) -> None:
        self.store = store
        self.keys = store.keys
        self.client = store.client
        self.timings = timings or FleetTimings()
        self.broker_id = f"{uuid.uuid4().hex[:12]}"
        attempts = Attempts(store, worker_id=self.broker_id, actors=(), hold_ms=self.timings.hold_ms)
        self.deliveries = Deliveries(attempts, self.timings)
        self._signals = SignalCache()
        if middleware is None:  # Dramatiq's defaults, but its Retries (see add_middleware)
            middleware = [m() for m in default_middleware if m is not Retries]
        super().__init__(middleware=middleware)
        self.queues: set[str] = self.deliveries.queues  # one set: the background loop recovers these queues
        self.add_middleware(WorkerHooks(self.deliveries))

    # --- Dramatiq's broker interface ---
    def add_middleware(self, middleware: Middleware, **kwargs: Any) -> None:
        """Add a middleware; Dramatiq's Retries is refused: JobLifecycle already retries with the same options, and
        both would schedule a retry for every failure."""
        if isinstance(middleware, Retries):
            raise ConfigError(
                "dramatiq's Retries middleware cannot be added to jobfleet's broker: JobLifecycle retries failed "
                "attempts (max_retries, min_backoff, max_backoff, retry_when, throws, Retry(delay=...)); remove it"
            )
        super().add_middleware(middleware, **kwargs)
        self._signals.clear()

    def emit_before(self, signal: str, *args: Any, **kwargs: Any) -> None:
        """Send a ``before_*`` signal to the middleware that handle it (jobfleet.broker.emit)."""
        emit_before(self, self._signals, signal, *args, **kwargs)

    def emit_after(self, signal: str, *args: Any, **kwargs: Any) -> None:
        """Send an ``after_*`` signal to the middleware that handle it, last first (jobfleet.broker.emit)."""
        emit_after(self, self._signals, signal, *args, **kwargs)

    @property
    def attempts(self) -> Attempts:
        """The store calls of this worker process."""
        return self.deliveries.attempts

    def declare_actor(self, actor: dramatiq.Actor[Any, Any]) -> None:
        """Declare an actor; this worker's claims take its jobs from now on."""
        super().declare_actor(actor)
        self.deliveries.attempts.set_actors(self.actors)

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> JobfleetConsumer:
        """A consumer of ``queue_name`` (``prefetch`` is ignored: a process claims one job per worker thread)."""
        return JobfleetConsumer(self.deliveries, queue_name, timeout, self)

    def declare_queue(self, queue_name: str) -> None:
        """Declare a queue (idempotent). No delay queues: delayed jobs wait on their queue until due."""
        if queue_name in self.queues:
            return
        self.emit_before("declare_queue", queue_name)
        self.queues.add(queue_name)
        try:
            with redis_errors("declare queue"):
                self.client.sadd(self.keys.queues(), queue_name)
        except StoreUnavailable as exc:  # the registry is for the exporter; declaring must work without Redis
            log.warning("could not register queue", queue=queue_name, error=str(exc))
        self.emit_after("declare_queue", queue_name)

    def enqueue(self, message: dramatiq.Message[Any], *, delay: int | None = None) -> dramatiq.Message[Any]:
        """Create the message's job (record and queue entry, one idempotent call): the job exists, ``queued``,
        visible and cancellable from the moment ``.send()`` returns. Sending one message id twice makes one job."""
        self.emit_before("enqueue", message, delay)
        fields = new_job_fields(
            encoded_message=message.encode(),
            job_type=str(option(self, message, "job_type", message.actor_name)),
            queue=message.queue_name,
            actor=message.actor_name,
            caller=str(message.options.get("caller") or ""),
            scoped_key=str(message.options.get("idempotency_key") or ""),
            trace_id=str(message.options.get("trace_id") or ""),
        )
        self.store.submit(
            job_id=message.message_id,
            queue_name=message.queue_name,
            fields=fields,
            delay_ms=int(delay or 0),
            caller=fields["caller"],
        )
        self.emit_after("enqueue", message, delay)
        return message

    def get_declared_queues(self) -> set[str]:
        """The queues declared so far."""
        return set(self.queues)

    def flush(self, queue_name: str) -> None:
        """Drop every waiting job of ``queue_name`` (their records too)."""
        with redis_errors("flush"):
            for partition in range(self.keys.partitions):
                queue = self.keys.queue(partition, queue_name)
                ids = [m.decode() for m in self.client.zrange(queue, 0, -1)]  # type: ignore[union-attr]
                with self.client.pipeline(transaction=False) as pipe:
                    for job_id in ids:
                        pipe.delete(self.keys.job(job_id))
                    pipe.delete(queue, self.keys.running(partition, queue_name))
                    pipe.execute()

    def flush_all(self) -> None:
        """Drop every waiting job of every declared queue."""
        for queue_name in self.queues:
            self.flush(queue_name)

    def join(self, queue_name: str, *, interval: int = 100, timeout: int | None = None) -> None:
        """Wait until ``queue_name`` holds no waiting or running job (tests); raise QueueJoinTimeout."""
        deadline = timeout and time.monotonic() + timeout / 1000
        while True:
            with redis_errors("join"), self.client.pipeline(transaction=False) as pipe:
                for partition in range(self.keys.partitions):
                    pipe.zcard(self.keys.queue(partition, queue_name))
                    pipe.zcard(self.keys.running(partition, queue_name))
                if not any(pipe.execute()):
                    return
            if deadline and time.monotonic() >= deadline:
                raise QueueJoinTimeout(queue_name)  # type: ignore[no-untyped-call]
            time.sleep(interval / 1000)
