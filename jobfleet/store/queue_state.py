"""Reading the queues' state from Redis: ready and delayed jobs, in flight, lag, dead letters, the longest-running
attempt and live workers — one read-only script call per partition (pipelined), whose cost grows with the number of
queues, never with the number of jobs. Shared by the queue exporter (at scrape time) and ``jobfleet status``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis

from jobfleet.core.job_types import JOB_TYPES
from jobfleet.core.redis_client import make_client
from jobfleet.core.settings import Settings
from jobfleet.store.keys import Keys
from jobfleet.store.scripts import Scripts

_PER_QUEUE = 8  # entries per queue in snapshot.lua's reply


@dataclass(frozen=True)
class QueueSpec:
    """One queue and the actors (with their time limits, in seconds) that consume it."""

    name: str
    actors: dict[str, float]


@dataclass
class Snapshot:
    """What one read of every partition found, summed per queue (ages are the worst partition's)."""

    depth: dict[str, int]
    delayed: dict[str, int]
    in_flight: dict[str, int]
    oldest_age: dict[str, float]
    dlq_depth: dict[str, int]
    dlq_oldest_age: dict[str, float]
    running_longest: dict[tuple[str, str], float]
    workers_live: int
    #: (queue, partition) -> ready jobs, and the age of the oldest one (s), for per-partition views.
    depth_by_partition: dict[tuple[str, int], int] = field(default_factory=dict)
    oldest_age_by_partition: dict[tuple[str, int], float] = field(default_factory=dict)
    #: (queue, actor) -> times a job was held back because a worker lacked its actor (a counter, since the start).
    held_back: dict[tuple[str, str], int] = field(default_factory=dict)


class QueueReader:
    """Reads a :class:`Snapshot` of the given queues from Redis."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        queues: Iterable[QueueSpec],
        *,
        dlq_retention_seconds: float,
        heartbeat_timeout_seconds: float,
    ) -> None:
        self.client = client
        self.keys = keys
        self.queues = list(queues)
        self.scripts = Scripts(client)
        self.dlq_window_ms = int(dlq_retention_seconds * 1000)
        self.heartbeat_timeout_ms = int(heartbeat_timeout_seconds * 1000)

    def _keys(self, partition: int) -> list[str]:
        keys = [self.keys.heartbeats(partition), self.keys.held_back(partition)]
        for queue in self.queues:
            keys += [
                self.keys.queue(partition, queue.name),
                self.keys.running(partition, queue.name),
                self.keys.dlq_by(partition, "queue") + queue.name,
            ]
        return keys

    def read(self) -> Snapshot:
        """Read the current state from Redis (raise StoreUnavailable when it cannot)."""
        names = [q.name for q in self.queues]
        snap = Snapshot(
            depth=dict.fromkeys(names, 0),
            delayed=dict.fromkeys(names, 0),
            in_flight=dict.fromkeys(names, 0),
            oldest_age=dict.fromkeys(names, 0.0),
            dlq_depth=dict.fromkeys(names, 0),
            dlq_oldest_age=dict.fromkeys(names, 0.0),
            running_longest={},
            workers_live=0,
        )
        args = [self.heartbeat_timeout_ms, self.dlq_window_ms]
        replies = [
            self.scripts.call("snapshot", self._keys(p), [*args, self.keys.job_prefix(p)])
            for p in range(self.keys.partitions)
        ]
        for partition, reply in enumerate(replies):
            self._add(snap, partition, reply, names)
        return snap

    def _add(self, snap: Snapshot, partition: int, reply: list[Any], names: list[str]) -> None:
        now = int(reply[0])
        snap.workers_live = max(snap.workers_live, int(reply[1]))  # every live worker heartbeats every partition
        held = reply[2]
        for field_name, count in zip(held[::2], held[1::2], strict=True):
            queue, _, actor = field_name.decode().partition("|")
            snap.held_back[queue, actor] = snap.held_back.get((queue, actor), 0) + int(count)
        for i, name in enumerate(names):
            ready, delayed, oldest, in_flight, started, actor, dead, dead_oldest = reply[3 + i * _PER_QUEUE :][
                :_PER_QUEUE
            ]
            snap.depth[name] += int(ready)
            snap.depth_by_partition[name, partition] = int(ready)
            snap.delayed[name] += int(delayed)
            snap.in_flight[name] += int(in_flight)
            snap.dlq_depth[name] += int(dead)
            age = (now - int(oldest)) / 1000 if oldest else 0.0
            snap.oldest_age_by_partition[name, partition] = age
            snap.oldest_age[name] = max(snap.oldest_age[name], age)
            if dead_oldest:
                snap.dlq_oldest_age[name] = max(snap.dlq_oldest_age[name], (now - int(float(dead_oldest))) / 1000)
            if started:
                key = (name, actor.decode() if isinstance(actor, bytes) else str(actor))
                snap.running_longest[key] = max(snap.running_longest.get(key, 0.0), (now - int(started)) / 1000)


def queue_specs(extra_queues: Iterable[str] = ()) -> list[QueueSpec]:
    """The job types' queues with their actors and time limits, plus ``extra_queues`` (declared by teams' own
    actors), sorted by queue name."""
    queues: dict[str, dict[str, float]] = {name: {} for name in extra_queues}
    for job_type in JOB_TYPES.values():
        queues.setdefault(job_type.queue_name, {})[job_type.actor_name] = float(job_type.time_limit_seconds)
    return [QueueSpec(name, actors) for name, actors in sorted(queues.items())]


def build_reader(settings: Settings, client: redis.Redis | None = None) -> QueueReader:
    """A reader of every job type's queue (and every queue producers declared) for ``settings``."""
    client = client or make_client(settings)
    keys = Keys(settings.namespace, settings.queue_partitions)
    declared = {m.decode() for m in client.smembers(keys.queues())}  # type: ignore[union-attr]
    return QueueReader(
        client,
        keys,
        queue_specs(declared),
        dlq_retention_seconds=settings.dlq_retention_seconds,
        heartbeat_timeout_seconds=settings.heartbeat_timeout_seconds,
    )
