"""What one worker process holds: the jobs it claimed and has not handed out yet, the ones its threads run, the
outcomes it could not record yet (Redis away), and the partitions whose last call lost its reply. Shared by the
process's consumers (one per queue) and its background loop; kept on the broker because Dramatiq replaces a
consumer after a connection error and a new consumer must not forget what the old one held."""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import structlog

from jobfleet.core.errors import StoreUnavailable
from jobfleet.store.attempts import Attempts, Ending
from jobfleet.store.delivery import Claimed

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class FleetTimings:
    """How the broker's worker processes keep each other honest."""

    #: A worker silent this long (Redis time) is dead; its running jobs are recovered.
    heartbeat_timeout_ms: int = 15_000
    #: Recoveries of one job after its worker died before it is dead-lettered (crash_loop).
    max_interruptions: int = 3
    #: How long a job for an actor this worker lacks waits for a worker that has it.
    hold_ms: int = 15_000


@dataclass
class Unrecorded:
    """An attempt that ended while Redis could not record it: retried by the background loop until recorded."""

    claimed: Claimed
    ending: Ending
    tries: int = 0


class Deliveries:
    """The process's claims and the store calls it makes with them. ``slots`` is its worker thread count: it never
    holds more unfinished claims than threads, so a job shows ``running`` only while a thread is about to run it or
    runs it. ``queues`` are the queues the process declared (it recovers dead workers' jobs of those)."""

    def __init__(self, attempts: Attempts, timings: FleetTimings) -> None:
        self.attempts = attempts
        self.timings = timings
        self.keys = attempts.keys
        self.queues: set[str] = set()
        self.slots = 1
        self.draining = False
        self.lock = threading.Lock()
        self.slot_freed = threading.Event()
        self.pending: dict[str, deque[Claimed]] = {}
        self.in_hand: dict[str, Claimed] = {}
        self.unrecorded: deque[Unrecorded] = deque()
        #: (partition, queue) whose last fetch or finish may have claimed jobs this process never heard of.
        self.suspect: set[tuple[int, str]] = set()
        self._held_reported: dict[str, int] = defaultdict(int)
        # Calls that may claim jobs (a fetch, a finish that takes the next job) against a reconcile: a reconcile gives
        # back what Redis says this process holds and it does not, so it must not run while a claiming call's reply
        # is on its way (that call's jobs would be given back and handed out too: run twice).
        self._gate = threading.Condition()
        self._claiming = 0
        self._reconciling = False

    @contextmanager
    def claiming(self) -> Iterator[None]:
        """Around a call that may claim jobs and the adoption of what it claimed."""
        with self._gate:
            while self._reconciling:
                self._gate.wait()
            self._claiming += 1
        try:
            yield
        finally:
            with self._gate:
                self._claiming -= 1
                self._gate.notify_all()

    @contextmanager
    def reconciling(self) -> Iterator[None]:
        """Around a reconcile: no claiming call is in flight meanwhile."""
        with self._gate:
            self._reconciling = True
            while self._claiming:
                self._gate.wait()
        try:
            yield
        finally:
            with self._gate:
                self._reconciling = False
                self._gate.notify_all()

    def free_slots(self) -> int:
        """How many more jobs this process may claim now."""
        with self.lock:
            return self.slots - len(self.in_hand) - sum(len(q) for q in self.pending.values())

    def adopt(self, claims: list[Claimed]) -> None:
        """Keep jobs a fetch or a finish claimed, for their queue's consumer to hand out."""
        if not claims:
            return
        with self.lock:
            for claimed in claims:
                self.pending.setdefault(claimed.queue, deque()).append(claimed)
        self.slot_freed.set()

    def next_pending(self, queue: str) -> Claimed | None:
        """The next claimed job of ``queue`` to hand to a thread (now in hand), if any."""
        with self.lock:
            waiting = self.pending.get(queue)
            if not waiting:
                return None
            claimed = waiting.popleft()
            self.in_hand[claimed.job_id] = claimed
            return claimed

    def done(self, claimed: Claimed) -> None:
        """A thread is done with ``claimed`` (recorded, or handed to the unrecorded queue): its slot is free."""
        with self.lock:
            if self.in_hand.get(claimed.job_id) is claimed:
                del self.in_hand[claimed.job_id]
        self.slot_freed.set()

    def take_pending(self, queue: str) -> list[Claimed]:
        """Every claimed job of ``queue`` not handed out yet (to give back when its consumer closes)."""
        with self.lock:
            waiting = self.pending.pop(queue, deque())
        return list(waiting)

    def held_in(self, partition: int, queue: str) -> list[Claimed]:
        """Everything this process holds in ``queue`` of ``partition``: pending, in hand, or not yet recorded."""
        with self.lock:
            held = [c for c in self.pending.get(queue, ()) if c.partition == partition]
            held += [c for c in self.in_hand.values() if c.partition == partition and c.queue == queue]
            held += [
                u.claimed for u in self.unrecorded if u.claimed.partition == partition and u.claimed.queue == queue
            ]
        return held

    def running(self) -> list[Claimed]:
        """The claims this process's threads hold now."""
        with self.lock:
            return list(self.in_hand.values())

    def give_back(self, claims: Iterable[Claimed]) -> None:
        """Release claims that never ran (raise StoreUnavailable when Redis is away: they stay claimed and come back
        through recovery)."""
        by_queue: dict[tuple[int, str], list[Claimed]] = defaultdict(list)
        for claimed in claims:
            by_queue[claimed.partition, claimed.queue].append(claimed)
        for (partition, queue), group in by_queue.items():
            released = self.attempts.release(partition, queue, group)
            if released:
                log.info("gave back claims of jobs that never ran", queue=queue, count=released)

    def keep_unrecorded(self, claimed: Claimed, ending: Ending, exc: StoreUnavailable) -> None:
        """Keep an outcome Redis could not take; the background loop records it once Redis answers."""
        log.error(
            "could not record an outcome; kept to record it when Redis answers",
            job_id=claimed.job_id,
            outcome=ending.outcome,
            error=str(exc),
        )
        with self.lock:
            self.unrecorded.append(Unrecorded(claimed, ending))

    def report_held(self, queue: str, actors: list[str]) -> None:
        """Say (once per 100 per actor) that jobs for actors this worker lacks were held back for other workers."""
        for actor in actors:
            self._held_reported[actor] += 1
            if self._held_reported[actor] % 100 == 1:
                log.warning(
                    "held back a job for an actor this worker does not have (another worker must run it)",
                    queue=queue,
                    actor=actor,
                    times=self._held_reported[actor],
                )
