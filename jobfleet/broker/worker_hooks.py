"""The broker's own hooks into a worker's life, and the one background thread each worker process runs for it:
heartbeats (Redis time, every partition), recovery of dead workers' jobs, recording outcomes Redis could not take,
and a watchdog that restarts a consumer thread that died. A broker concern, not a message middleware."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any

import dramatiq
import structlog
from dramatiq.middleware import Middleware

from jobfleet.broker.deliveries import Deliveries
from jobfleet.core.errors import StoreUnavailable
from jobfleet.store.delivery import Claimed

log = structlog.get_logger(__name__)

_RECOVERY_PAGE = 200
# Heartbeats older than this many heartbeat timeouts are forgotten (the worker is long gone).
_FORGET_AFTER_TIMEOUTS = 100
# How long a stopping worker tries to record outcomes Redis would not take before it exits anyway.
_FLUSH_ON_EXIT_S = 5.0


class WorkerHooks(Middleware):
    """Sizes the worker's claims to its threads and runs the FleetLoop while the worker runs."""

    def __init__(self, deliveries: Deliveries) -> None:
        self.deliveries = deliveries
        self.loop: FleetLoop | None = None

    def before_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        """Called before a worker starts fetching: one claim per worker thread; start the loop."""
        self.deliveries.slots = worker.worker_threads
        self.deliveries.draining = False
        self.loop = FleetLoop(self.deliveries, worker)
        self.loop.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        """Called when a worker starts draining: finishing threads stop taking their next job."""
        self.deliveries.draining = True

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        """Called when a worker stopped: mark attempts still running past the deadline as drained, let the other
        workers recover them right away, record what is still unrecorded, stop the loop."""
        if self.loop is not None:
            self.loop.exit(self.deliveries.running())
            self.loop = None


class FleetLoop(threading.Thread):
    """Heartbeat, recover, record unrecorded outcomes and watch the consumer threads, until stopped."""

    def __init__(self, deliveries: Deliveries, worker: Any) -> None:
        super().__init__(name="jobfleet-fleet", daemon=True)
        self.deliveries = deliveries
        self.attempts = deliveries.attempts
        self.worker = worker
        self.timeout_ms = deliveries.timings.heartbeat_timeout_ms
        self.interval = max(0.2, self.timeout_ms / 3000)
        self._stopping = threading.Event()
        # When Redis was last seen answering after not answering (or this process started): until one heartbeat
        # timeout has passed since, every other worker may still be reconnecting, so nobody is presumed dead.
        self.connected_since: float | None = None
        self._last_tick = time.monotonic()

    def run(self) -> None:
        next_beat = next_recovery = 0.0
        while not self._stopping.is_set():
            now = time.monotonic()
            if now - self._last_tick > self.timeout_ms / 1000:
                log.warning("this worker was paused or starved longer than the heartbeat timeout", seconds=now)
                self.connected_since = None  # as after an outage: let the others heartbeat before judging them
            self._last_tick = now
            if now >= next_beat:
                self._heartbeat()
                next_beat = now + self.interval
            if now >= next_recovery and self._may_recover(now):
                self._recover()
                next_recovery = now + self.interval
            self._record_unrecorded()
            self._watch_consumers()
            self._stopping.wait(0.1 if self.deliveries.unrecorded else min(self.interval, 0.5))

    # --- heartbeats and recovery ---
    def _heartbeat(self, age_ms: int = 0) -> bool:
        try:
            for partition in range(self.deliveries.keys.partitions):
                self.attempts.heartbeat(
                    partition, forget_after_ms=self.timeout_ms * _FORGET_AFTER_TIMEOUTS, age_ms=age_ms
                )
        except StoreUnavailable as exc:
            if self.connected_since is not None:
                log.warning("heartbeat failed; Redis does not answer", error=str(exc))
            self.connected_since = None
            return False
        if self.connected_since is None:
            self.connected_since = time.monotonic()
            worker_id = self.attempts.worker_id
            log.info("heartbeating; recovering other workers' jobs after one heartbeat timeout", worker=worker_id)
        return True

    def _may_recover(self, now: float) -> bool:
        return self.connected_since is not None and now - self.connected_since >= self.timeout_ms / 1000

    def _recover(self) -> None:
        timings = self.deliveries.timings
        for partition in range(self.deliveries.keys.partitions):
            for queue in sorted(self.deliveries.queues):
                offset = 0
                while True:
                    try:
                        recovered, dead, looked = self.attempts.recover(
                            partition,
                            queue,
                            heartbeat_timeout_ms=self.timeout_ms,
                            max_interruptions=timings.max_interruptions,
                            offset=offset,
                            limit=_RECOVERY_PAGE,
                        )
                    except StoreUnavailable as exc:
                        log.warning("recovery failed; Redis does not answer", error=str(exc))
                        return
                    if recovered or dead:
                        log.warning("recovered jobs of dead workers", queue=queue, requeued=recovered, dead=dead)
                    if looked < _RECOVERY_PAGE:
                        break
                    offset += looked - recovered - dead  # recovered entries left the running set

    # --- outcomes Redis could not take ---
    def _record_unrecorded(self, deadline: float | None = None) -> None:
        deliveries = self.deliveries
        while deliveries.unrecorded and (deadline is None or time.monotonic() < deadline):
            with deliveries.lock:
                item = deliveries.unrecorded.popleft()
            try:
                verdict, _, _ = self.attempts.finish(item.claimed, item.ending)
            except StoreUnavailable:
                item.tries += 1
                with deliveries.lock:
                    deliveries.unrecorded.appendleft(item)
                return
            log.info("recorded an outcome after Redis came back", job_id=item.claimed.job_id, verdict=verdict)

    # --- the consumer threads ---
    def _watch_consumers(self) -> None:
        consumers = getattr(self.worker, "consumers", {})
        for name, thread in list(consumers.items()):
            if thread.running and not thread.is_alive():
                log.error("a consumer thread died; starting a new one", queue=name)
                del consumers[name]
                self.worker._add_consumer(name)  # Dramatiq 2.2 internal (pinned; docs/ARCHITECTURE.md)

    # --- exit ---
    def exit(self, still_running: list[Claimed]) -> None:
        """Stop the loop as the worker exits (see WorkerHooks.after_worker_shutdown)."""
        self._stopping.set()
        if self.is_alive():
            self.join(timeout=5)
        by_queue: dict[tuple[int, str], list[Claimed]] = defaultdict(list)
        for claimed in still_running:
            by_queue[claimed.partition, claimed.queue].append(claimed)
        try:
            for (partition, queue), claims in by_queue.items():
                marked = self.attempts.mark_drained(partition, queue, claims)
                log.warning("attempts still running at the drain deadline are given back", queue=queue, count=marked)
        except StoreUnavailable as exc:
            log.error("could not mark running attempts as drained; they will count as interrupted", error=str(exc))
        self._record_unrecorded(deadline=time.monotonic() + _FLUSH_ON_EXIT_S)
        if self.deliveries.unrecorded:
            log.error(
                "exiting with outcomes Redis never took: those jobs run again after recovery",
                count=len(self.deliveries.unrecorded),
            )
        # Heartbeat as if silent for all but a second: the others recover what this worker leaves right after it
        # exits instead of a whole heartbeat timeout later.
        self._heartbeat(age_ms=max(0, self.timeout_ms - 1000))
