"""The worker's side of the store: claim jobs, record how attempts ended, give claims back, reconcile after a lost
reply, heartbeat, and recover the jobs of dead workers. Every call touches one partition (one hash slot)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from jobfleet.core.states import DeadLetterReason
from jobfleet.store.delivery import Claimed, parse_claimed
from jobfleet.store.jobs import JobStore, retry_idempotent
from jobfleet.store.scripts import redis_errors

# What a crash-looping job's dead letter says (recover.lua writes it when a job keeps killing its workers).
_WORKER_LOST = json.dumps(
    {
        "type": "WorkerLost",
        "message": "deliveries of this job kept ending with their worker process dying (OOM? crash?)",
    }
)


@dataclass(frozen=True)
class Ending:
    """How a claimed attempt ended, as finish.lua records it."""

    outcome: str  # succeeded | retrying | dead | cancelled
    job_type: str
    caller: str
    result: Any = None
    error: dict[str, Any] | None = None
    retry_delay_ms: int = 0
    reason: DeadLetterReason | None = None


class Attempts:
    """The store calls one worker process makes; ``actors`` are the actor names it can run."""

    def __init__(self, store: JobStore, *, worker_id: str, actors: Iterable[str], hold_ms: int) -> None:
        self.store = store
        self.keys = store.keys
        self.worker_id = worker_id
        self.actors = ""
        self.set_actors(actors)
        self.hold_ms = hold_ms

    def set_actors(self, actors: Iterable[str]) -> None:
        """The actor names this worker runs (jobs for others are held back for another worker)."""
        self.actors = " ".join(sorted(actors))

    def _take_args(self, partition: int) -> list[Any]:
        return [self.worker_id, self.keys.job_prefix(partition), self.actors, self.hold_ms]

    def fetch(self, partition: int, queue: str, count: int) -> tuple[list[Claimed], list[str]]:
        """Claim up to ``count`` due jobs of ``queue`` in ``partition``: (claimed, actors of jobs held back). Never
        retried: a lost reply may have claimed jobs, which ``reconcile`` then gives back."""
        keys = [self.keys.queue(partition, queue), self.keys.running(partition, queue), self.keys.held_back(partition)]
        args = [count, *self._take_args(partition), queue, self.keys.quota_prefix(partition)]
        claimed, held = self.store.scripts.call("fetch", keys, args)
        return parse_claimed(claimed, partition, queue), [a.decode() for a in held]

    def finish(self, claimed: Claimed, ending: Ending, *, take_next: int = 0) -> tuple[str, list[Claimed], list[str]]:
        """Record ``ending`` for ``claimed`` (fenced by its token) and take up to ``take_next`` next jobs of its
        queue: (verdict: the outcome recorded, ``done`` when already recorded, ``stale`` when the job moved on;
        next jobs; actors held back). Retried while Redis fails transiently only when it takes no next job."""
        p, queue, k = claimed.partition, claimed.queue, self.keys
        retention = self.store.retention
        ttl = {"succeeded": retention.succeeded, "dead": retention.dead}.get(ending.outcome, retention.ended)
        error = ending.error or {}
        keys = [
            k.job(claimed.job_id),
            k.running(p, queue),
            k.queue(p, queue),
            k.dlq(p),
            k.dlq_by(p, "queue") + queue,
            k.dlq_by(p, "type") + ending.job_type,
            k.dlq_by(p, "caller") + ending.caller,
            k.held_back(p),
        ]
        args = [
            ending.outcome,
            claimed.token,
            claimed.job_id,
            claimed.attempt,
            claimed.started_ms,
            json.dumps(ending.result) if ending.outcome == "succeeded" else "",
            json.dumps({"type": error["type"], "message": error["message"]}) if error else "",
            error.get("type", ""),
            str(error.get("message", ""))[:200],
            error.get("traceback", "") if ending.outcome == "dead" else "",
            ending.retry_delay_ms,
            ending.reason or "",
            ttl,
            "1" if retention.keep_succeeded_payload else "0",
            take_next,
            *self._take_args(p),
            retention.dead * 1000,
            queue,
            claimed.try_number,
            claimed.replay,
            k.quota_prefix(p),
            claimed.quota,
            claimed.stored_bytes,
            claimed.caller,
        ]

        def call() -> Any:
            return self.store.scripts.call("finish", keys, args)

        verdict, following, held = call() if take_next else retry_idempotent(call)
        return verdict.decode(), parse_claimed(following, p, queue), [a.decode() for a in held]

    def dead_letter_poison(self, claimed: Claimed, reason: str) -> str:
        """Dead-letter a claimed job whose message cannot be run (undecodable); return finish's verdict."""
        with redis_errors("read poison job"):
            raw = cast(list[bytes | None], self.store.client.hmget(self.keys.job(claimed.job_id), "type", "caller"))
        job_type, caller = (v.decode() if v else "" for v in raw)
        ending = Ending(
            "dead",
            job_type=job_type,
            caller=caller,
            error={"type": "PoisonMessage", "message": reason, "traceback": ""},
            reason="poison",
        )
        return self.finish(claimed, ending)[0]

    def release(self, partition: int, queue: str, claims: Iterable[Claimed]) -> int:
        """Give claimed jobs back unrun (shutdown, consumer restart); return how many were released."""
        pairs: list[Any] = []
        for claimed in claims:
            pairs += [claimed.job_id, claimed.token]
        if not pairs:
            return 0
        keys = [self.keys.running(partition, queue), self.keys.queue(partition, queue)]
        args = [self.keys.job_prefix(partition), self.store.retention.ended, self.keys.quota_prefix(partition), *pairs]
        return int(retry_idempotent(lambda: self.store.scripts.call("release", keys, args)))

    def mark_drained(self, partition: int, queue: str, claims: Iterable[Claimed]) -> int:
        """Mark attempts still running at this worker's drain deadline: their recovery will not count a crash."""
        pairs: list[Any] = []
        for claimed in claims:
            pairs += [claimed.job_id, claimed.token]
        if not pairs:
            return 0
        keys = [self.keys.running(partition, queue)]
        args = [self.keys.job_prefix(partition), *pairs]
        return int(retry_idempotent(lambda: self.store.scripts.call("drain", keys, args)))

    def reconcile(self, partition: int, queue: str, held: Iterable[Claimed]) -> int:
        """Give back every job Redis says this worker holds in ``queue`` of ``partition`` that it does not hold (the
        claims of a call whose reply was lost); return how many."""
        keys = [self.keys.running(partition, queue), self.keys.queue(partition, queue)]
        args = [
            self.worker_id,
            self.keys.job_prefix(partition),
            self.store.retention.ended,
            self.keys.quota_prefix(partition),
            *(c.member for c in held),
        ]
        return int(retry_idempotent(lambda: self.store.scripts.call("reconcile", keys, args)))

    def heartbeat(self, partition: int, *, forget_after_ms: int, age_ms: int = 0) -> int:
        """Mark this worker alive in ``partition`` (Redis time); return Redis's time in ms."""
        keys = [self.keys.heartbeats(partition)]
        return int(self.store.scripts.call("heartbeat", keys, [self.worker_id, forget_after_ms, age_ms]))

    def recover(
        self, partition: int, queue: str, *, heartbeat_timeout_ms: int, max_interruptions: int, offset: int, limit: int
    ) -> tuple[int, int, int]:
        """Requeue (or dead-letter, when they keep crashing) the running jobs of dead workers in ``queue`` of
        ``partition``, looking at up to ``limit`` entries from ``offset``: (recovered, dead-lettered, looked at)."""
        k = self.keys
        keys = [k.running(partition, queue), k.queue(partition, queue), k.heartbeats(partition), k.dlq(partition)]
        keys.append(k.dlq_by(partition, "queue") + queue)
        args = [
            heartbeat_timeout_ms,
            max_interruptions,
            k.job_prefix(partition),
            k.dlq_by(partition, "type"),
            k.dlq_by(partition, "caller"),
            self.store.retention.dead,
            self.store.retention.dead * 1000,
            offset,
            limit,
            _WORKER_LOST,
            self.store.retention.ended,
            k.quota_prefix(partition),
        ]
        recovered, dead, looked = retry_idempotent(lambda: self.store.scripts.call("recover", keys, args))
        return int(recovered), int(dead), int(looked)
