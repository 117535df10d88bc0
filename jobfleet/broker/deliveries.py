"""What one worker process holds: the jobs it claimed and has not handed out yet, the ones its threads run, the
outcomes it could not record yet (Redis away), and the partitions whose last call lost its reply. Shared by the
process's consumers (one per queue) and its background loop; kept on the broker because Dramatiq replaces a
consumer after a connection error and a new consumer must not forget what the old one held."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

from jobfleet.store.attempts import Ending
from jobfleet.store.delivery import Claimed


@dataclass
class Unrecorded:
    """An attempt that ended while Redis could not record it: retried by the background loop until recorded."""

    claimed: Claimed
    ending: Ending
    tries: int = 0


@dataclass
class Deliveries:
    """The process's claims. ``slots`` is its worker thread count: it never holds more unfinished claims than
    threads, so a job shows ``running`` only while a thread is about to run or runs it."""

    slots: int = 1
    draining: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    slot_freed: threading.Event = field(default_factory=threading.Event)
    pending: dict[str, deque[Claimed]] = field(default_factory=dict)
    in_hand: dict[str, Claimed] = field(default_factory=dict)
    unrecorded: deque[Unrecorded] = field(default_factory=deque)
    #: (partition, queue) whose last fetch or finish may have claimed jobs this process never heard of.
    suspect: set[tuple[int, str]] = field(default_factory=set)

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
