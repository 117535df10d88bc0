"""Admission control in one Redis call: per-queue depth (backpressure) and a per-caller token bucket."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

import redis
from dramatiq.common import dq_name

from middleware.errors import QueueFull, RateLimited
from middleware.keys import Keys
from middleware.store import redis_errors

# A full queue drains at the workers' pace, not the client's: ask for a pause long enough to matter.
QUEUE_FULL_RETRY_AFTER_SECONDS = 5


class Admission:
    """Decides whether a request may proceed; raises RateLimited / QueueFull, or StoreUnavailable."""

    def __init__(
        self, client: redis.Redis, keys: Keys, *, rate_per_second: float, burst: int, max_queue_depth: int
    ) -> None:
        self.keys = keys
        self.rate = rate_per_second
        self.burst = burst
        self.max_depth = max_queue_depth
        source = (resources.files("middleware") / "lua" / "admit.lua").read_text()
        self._script = client.register_script(source)

    @property
    def active(self) -> bool:
        """Whether any limit is configured (otherwise admit() does not call Redis)."""
        return self.rate > 0 or self.max_depth > 0

    def admit(self, caller: str, queues: Sequence[str] = ()) -> None:
        """Take one token from ``caller``'s bucket and, for an enqueue, check the depth of ``queues``
        (each counted with its delayed queue: messages waiting, scheduled or in flight)."""
        if self.rate <= 0 and (self.max_depth <= 0 or not queues):
            return
        depth_keys = [self.keys.queue_messages(n) for q in queues for n in (q, dq_name(q))]
        with redis_errors("admission"):
            verdict, value = self._script(
                keys=[self.keys.rate_bucket(caller), *depth_keys],
                args=[self.rate, self.burst, self.max_depth if queues else 0],
            )
        kind = verdict.decode()
        if kind == "rate":
            seconds = int(value) / 1000
            raise RateLimited(
                f"caller {caller!r} exceeded {self.rate:g} requests/s (burst {self.burst}); retry in {seconds:.2f}s",
                retry_after=seconds,
            )
        if kind == "full":
            queue = queues[0]
            raise QueueFull(
                f"queue {queue!r} is full ({int(value)} messages, limit {self.max_depth}); nothing was enqueued, "
                f"retry in {QUEUE_FULL_RETRY_AFTER_SECONDS}s",
                queue,
                retry_after=QUEUE_FULL_RETRY_AFTER_SECONDS,
            )
