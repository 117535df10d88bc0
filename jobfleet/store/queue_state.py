"""Reading the queues' state from Redis: depths, delayed, in-flight, lag, dead letters, running jobs and live
workers, in two pipelined round trips whose size grows with queues times live workers, never with the number of
messages. Shared by the queue exporter (at scrape time) and ``jobfleet status``."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

from jobfleet.core.job_types import JOB_TYPES
from jobfleet.core.redis_client import make_client
from jobfleet.core.settings import Settings
from jobfleet.store.keys import Keys


@dataclass(frozen=True)
class QueueSpec:
    """One queue and the actors (with their time limits, in seconds) that consume it."""

    name: str
    actors: dict[str, float]


@dataclass
class Snapshot:
    """What one scrape read from Redis."""

    depth: dict[str, int]
    delayed: dict[str, int]
    in_flight: dict[str, int]
    oldest_age: dict[str, float]
    dlq_depth: dict[str, int]
    dlq_oldest_age: dict[str, float]
    running_longest: dict[tuple[str, str], float]
    workers_live: int


def _message_ready_at(raw: bytes | None) -> float | None:
    """When an encoded Dramatiq message became ready (epoch seconds): options.ready_at, else its timestamp."""
    if not raw:
        return None
    try:
        message = json.loads(raw)
        ready = message.get("options", {}).get("ready_at")
        return float(ready) if ready else float(message["message_timestamp"]) / 1000
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


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
        self.dlq_retention_seconds = dlq_retention_seconds
        self.heartbeat_timeout_seconds = heartbeat_timeout_seconds

    def read(self, now: float) -> Snapshot:
        """Read the current state from Redis (raise redis.RedisError when it cannot)."""
        k, names = self.keys, [q.name for q in self.queues]
        dlq_since = (now - self.dlq_retention_seconds) * 1000
        pipe = self.client.pipeline(transaction=False)
        pipe.zrange(k.heartbeats(), 0, -1, withscores=True)
        pipe.zrange(k.running(), 0, -1, withscores=True)
        for name in names:
            pipe.llen(k.queue(name))
            pipe.hlen(k.queue_messages(f"{name}.DQ"))
            pipe.lindex(k.queue(name), 0)
            pipe.zcount(k.dlq_queue_index(name), dlq_since, "+inf")
            pipe.zrangebyscore(k.dlq_queue_index(name), dlq_since, "+inf", start=0, num=1, withscores=True)
        first: list[Any] = pipe.execute()
        heartbeats: list[tuple[bytes, float]] = first[0]
        running: list[tuple[bytes, float]] = first[1]
        per_queue = {name: first[2 + 5 * i : 7 + 5 * i] for i, name in enumerate(names)}

        # Second round trip: the oldest ready message of each queue, and every worker's unacked set per queue.
        workers = [member.decode() for member, _ in heartbeats]
        pipe = self.client.pipeline(transaction=False)
        heads = [(name, values[2]) for name, values in per_queue.items() if values[2]]
        for name, message_id in heads:
            pipe.hget(k.queue_messages(name), message_id)
        for worker in workers:
            for name in names:
                pipe.scard(k.acks(worker, name))
        second: list[Any] = pipe.execute() if heads or workers else []

        oldest_age = dict.fromkeys(names, 0.0)
        for (name, _), raw in zip(heads, second, strict=False):
            ready_at = _message_ready_at(raw)
            if ready_at is not None:
                oldest_age[name] = max(0.0, now - ready_at)
        in_flight = dict.fromkeys(names, 0)
        acks = second[len(heads) :]
        for w in range(len(workers)):
            for i, name in enumerate(names):
                in_flight[name] += int(acks[w * len(names) + i])

        longest: dict[tuple[str, str], float] = {}
        for member, started_ms in running:
            queue, _, rest = member.decode().partition("|")
            actor = rest.partition("|")[0]
            age = max(0.0, now - started_ms / 1000)
            longest[(queue, actor)] = max(age, longest.get((queue, actor), 0.0))

        fresh_since = (now - self.heartbeat_timeout_seconds) * 1000
        return Snapshot(
            depth={n: int(v[0]) for n, v in per_queue.items()},
            delayed={n: int(v[1]) for n, v in per_queue.items()},
            in_flight=in_flight,
            oldest_age=oldest_age,
            dlq_depth={n: int(v[3]) for n, v in per_queue.items()},
            dlq_oldest_age={n: max(0.0, now - v[4][0][1] / 1000) if v[4] else 0.0 for n, v in per_queue.items()},
            running_longest=longest,
            workers_live=sum(1 for _, score in heartbeats if score >= fresh_since),
        )


def queue_specs() -> list[QueueSpec]:
    """The job types' queues with their actors and time limits, sorted by queue name."""

    queues: dict[str, dict[str, float]] = {}
    for job_type in JOB_TYPES.values():
        queues.setdefault(job_type.queue_name, {})[job_type.actor_name] = float(job_type.time_limit_seconds)
    return [QueueSpec(name, actors) for name, actors in sorted(queues.items())]


def build_reader(settings: Settings, client: redis.Redis | None = None) -> QueueReader:
    """A reader of every job type's queue for ``settings``."""

    return QueueReader(
        client or make_client(settings),
        Keys(settings.namespace),
        queue_specs(),
        dlq_retention_seconds=settings.dlq_retention_seconds,
        heartbeat_timeout_seconds=settings.heartbeat_timeout_seconds,
    )
