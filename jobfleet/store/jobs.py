"""The job store: create a job, read it, cancel it, record its progress — each change one idempotent script call
on the job's partition. The worker side (fetch, finish, recovery) is jobfleet.store.attempts; dead letters,
audit and queue state have their own modules."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import redis

from jobfleet.core.errors import (
    InvalidTransition,
    JobNotFound,
    NotReplicated,
    QueueFull,
    QuotaExceeded,
    StoreUnavailable,
)
from jobfleet.store.keys import Keys
from jobfleet.store.records import decode_record, events
from jobfleet.store.scripts import Scripts, redis_errors

T = TypeVar("T")

# A full queue drains at the workers' pace, not the client's: ask for a pause long enough to matter.
QUEUE_FULL_RETRY_AFTER_SECONDS = 5
AUDIT_MAX = 10_000
#: Progress reports a job's record keeps (its latest progress is always there).
PROGRESS_LOG_MAX = 20
# Failures a retry of an idempotent call can outlast: the call may not have run, or its reply was lost.
_TRANSIENT = frozenset({"timeout", "connection", "loading", "busy"})


@dataclass(frozen=True)
class Retention:
    """How long a job's record lives once it ended, per outcome (seconds), and whether a succeeded one keeps its
    payload. A job that has not ended has no TTL: it lives as long as it waits or runs."""

    succeeded: int
    ended: int  # failed and cancelled
    dead: int
    keep_succeeded_payload: bool = False


@dataclass(frozen=True)
class Quotas:
    """The most a caller may have waiting or running in one partition (0: no limit): jobs, delayed jobs, and bytes
    of stored messages. With every limit 0 nothing is counted."""

    outstanding: int = 0
    delayed: int = 0
    bytes: int = 0


@dataclass(frozen=True)
class Submitted:
    """What submit did: the job it created (or the one an earlier request with the same key created)."""

    job_id: str
    created: bool
    fingerprint: str = ""


def retry_idempotent(fn: Callable[[], T], *, attempts: int = 3, delay: float = 0.05) -> T:
    """Call ``fn`` (an idempotent store call) up to ``attempts`` times while Redis fails transiently."""
    for n in range(attempts):
        try:
            return fn()
        except StoreUnavailable as exc:
            if exc.kind not in _TRANSIENT or n == attempts - 1:
                raise
            time.sleep(delay * 2**n)
    raise AssertionError("unreachable")


class JobStore:
    """Reads and changes jobs in Redis; every state change is one atomic, idempotent script call."""

    def __init__(self, client: redis.Redis, keys: Keys, *, retention: Retention) -> None:
        self.client = client
        self.keys = keys
        self.retention = retention
        self.scripts = Scripts(client)

    def new_job_id(self, partition: int | None = None) -> str:
        """A fresh job id (32 hex); one that lives in ``partition`` when given (partitions are few: a handful of
        draws on average)."""
        while True:
            job_id = uuid.uuid4().hex
            if partition is None or self.keys.partition_of(job_id) == partition:
                return job_id

    def submit(
        self,
        *,
        job_id: str,
        queue_name: str,
        fields: dict[str, Any],
        delay_ms: int = 0,
        idempotency: tuple[str, str, int] | None = None,
        max_queue_depth: int = 0,
        replicas: int = 0,
        replicas_timeout_ms: int = 500,
        caller: str = "",
        quotas: Quotas | None = None,
    ) -> Submitted:
        """Create the job (its record and its place on the queue) unless it exists; ``idempotency`` is
        (record digest, request fingerprint, ttl s) for requests with an Idempotency-Key, whose record lives in the
        job's partition. Raise QueueFull when the queue partition holds ``max_queue_depth`` jobs (0: no limit).

        With ``replicas``, the call returns only once that many replicas have the job (Redis WAIT), else raises
        NotReplicated: the job exists, and a retry with the same Idempotency-Key finds it and waits again."""
        partition = self.keys.partition_of(job_id)
        keys = [self.keys.job(job_id), self.keys.queue(partition, queue_name), self.keys.quota(partition, caller)]
        digest, fingerprint, ttl = idempotency or ("", "", 0)
        limits = quotas or Quotas()
        size = len(fields.get("msg", b""))
        if idempotency:
            keys.append(self.keys.idempotency(partition, digest))
        flat: list[Any] = []
        for name, value in fields.items():
            flat += [name, value]
        args = [
            job_id,
            delay_ms,
            fingerprint,
            ttl,
            max_queue_depth,
            1 if replicas else 0,
            limits.outstanding,
            limits.delayed,
            limits.bytes,
            size,
            *flat,
        ]
        if replicas:
            reply, acknowledged = retry_idempotent(
                lambda: self.scripts.call_and_wait("submit", keys, args, replicas, replicas_timeout_ms)
            )
            if acknowledged < replicas and reply[0] != b"full":
                raise NotReplicated(
                    f"job {reply[1].decode()} was accepted by the primary but only {acknowledged} of {replicas} "
                    f"replicas confirmed it within {replicas_timeout_ms} ms (JOBFLEET_ACCEPT_REPLICAS); retry with "
                    "the same Idempotency-Key to get it back once they do",
                    reply[1].decode(),
                )
        else:
            reply = retry_idempotent(lambda: self.scripts.call("submit", keys, args))
        verdict, value = reply[0].decode(), reply[1].decode()
        if verdict == "created":
            return Submitted(value, True, fingerprint)
        if verdict == "quota":
            limit = {"outstanding": limits.outstanding, "delayed": limits.delayed, "bytes": limits.bytes}[value]
            raise QuotaExceeded(
                f"caller {caller!r} is at its {value} quota ({reply[2].decode()} of {limit} in this partition); "
                "nothing was enqueued: wait for its jobs to finish, cancel some, or ask for a larger quota",
                value,
                retry_after=QUEUE_FULL_RETRY_AFTER_SECONDS,
            )
        if verdict == "full":
            raise QueueFull(
                f"queue {queue_name!r} is full ({value} jobs in its partition, limit {max_queue_depth}); nothing was "
                f"enqueued, retry in {QUEUE_FULL_RETRY_AFTER_SECONDS}s",
                queue_name,
                retry_after=QUEUE_FULL_RETRY_AFTER_SECONDS,
            )
        return Submitted(value, False, reply[2].decode())

    def get(self, job_id: str) -> dict[str, Any]:
        """The job's record (jobfleet.store.records.decode_record); raise JobNotFound when unknown or expired."""
        with redis_errors("read job"):
            raw = cast(dict[bytes, bytes], self.client.hgetall(self.keys.job(job_id)))
        if not raw:
            raise JobNotFound(f"no job {job_id!r} (unknown id, or its record expired)")
        return decode_record(job_id, raw)

    def events(self, job_id: str) -> list[dict[str, Any]]:
        """The job's event trail, oldest first; raise JobNotFound when unknown."""
        return events(self.get(job_id))

    def cancel(self, job_id: str, *, caller: str, key_id: str = "") -> str:
        """Cancel a job; return the state it was in. Raise JobNotFound, or InvalidTransition when it finished."""
        partition = self.keys.partition_of(job_id)
        request = uuid.uuid4().hex
        args = [
            job_id,
            caller,
            key_id,
            self.retention.ended,
            AUDIT_MAX,
            self.keys.queue_prefix(partition),
            request,
            self.keys.quota_prefix(partition),
        ]
        reply = retry_idempotent(
            lambda: self.scripts.call("cancel", [self.keys.job(job_id), self.keys.audit(partition)], args)
        )
        verdict, state = (str(part.decode()) for part in reply)
        if verdict == "missing":
            raise JobNotFound(f"no job {job_id!r} (unknown id, or its record expired)")
        if verdict == "refused":
            raise InvalidTransition(f"job {job_id} already finished as {state!r}; nothing to cancel", state)
        return state

    def progress(self, job_id: str, token: int, percent: int, message: str) -> int:
        """Record the running attempt's progress: 1 when a cancel was requested, 0 to go on, -1 when this attempt
        is no longer the job's current one."""
        return int(
            retry_idempotent(
                lambda: self.scripts.call(
                    "progress", [self.keys.job(job_id)], [token, percent, message[:200], PROGRESS_LOG_MAX]
                )
            )
        )
