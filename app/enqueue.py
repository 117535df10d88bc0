"""Turn a validated request into a job: one atomic, idempotent Redis call applies the Idempotency-Key, creates the
job's record (holding its Dramatiq message, the payload stored once) and puts it on its queue."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from dramatiq import Message

from jobfleet.core.errors import IdempotencyConflict
from jobfleet.core.job_types import JobType
from jobfleet.store.jobs import JobStore, Quotas
from jobfleet.store.keys import idempotency_digest
from jobfleet.store.records import new_job_fields


@dataclass(frozen=True)
class Submitted:
    """What happened to an enqueue request."""

    job_id: str
    created: bool
    state: str


def fingerprint(payload: dict[str, Any], schedule: str) -> str:
    """Canonical-JSON hash of what the client sent: the same body (any key order, any whitespace) and the same
    schedule parameter as given (not a delay computed from it) give the same fingerprint."""
    canonical = json.dumps({"payload": payload, "schedule": schedule}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def submit(
    store: JobStore,
    job_type: JobType,
    payload: dict[str, Any],
    *,
    caller: str,
    idempotency_key: str | None,
    idempotency_ttl: int,
    delay_seconds: float = 0.0,
    schedule: str = "",
    trace_context: dict[str, str] | None = None,
    max_queue_depth: int = 0,
    replicas: int = 0,
    replicas_timeout_ms: int = 500,
    quotas: Quotas | None = None,
) -> Submitted:
    """Create and enqueue the job (or find the one an earlier request with this key created)."""
    idempotency = None
    if idempotency_key:
        digest = idempotency_digest(caller, job_type.name, idempotency_key)
        # The key's record and its job share a partition, so the check and the creation are one atomic call.
        job_id = store.new_job_id(store.keys.partition_of_key(digest))
        idempotency = (digest, fingerprint(payload, schedule), idempotency_ttl)
    else:
        job_id = store.new_job_id()
    scoped_key = f"{caller}:{idempotency_key}" if idempotency_key else job_id
    options: dict[str, Any] = {
        "job_type": job_type.name,
        "idempotency_key": scoped_key,
        "caller": caller,
        **(trace_context or {}),
    }
    message: Message[Any] = Message(
        queue_name=job_type.queue_name,
        actor_name=job_type.actor_name,
        args=(),
        kwargs=payload,
        options=options,
        message_id=job_id,
        # Dramatiq's own field (AgeLimit reads it); the record's accepted time is Redis's.
        message_timestamp=int(time.time() * 1000),
    )
    fields = new_job_fields(
        encoded_message=message.encode(),
        job_type=job_type.name,
        queue=job_type.queue_name,
        actor=job_type.actor_name,
        caller=caller,
        scoped_key=scoped_key,
        trace_id=(trace_context or {}).get("trace_id", ""),
    )
    delay_ms = int(delay_seconds * 1000)
    submitted = store.submit(
        job_id=job_id,
        queue_name=job_type.queue_name,
        fields=fields,
        delay_ms=delay_ms,
        idempotency=idempotency,
        max_queue_depth=max_queue_depth,
        replicas=replicas,
        replicas_timeout_ms=replicas_timeout_ms,
        caller=caller,
        quotas=quotas,
    )
    if not submitted.created and idempotency and submitted.fingerprint != idempotency[1]:
        raise IdempotencyConflict(
            f"Idempotency-Key {idempotency_key!r} was already used for job {submitted.job_id} with a different "
            "request body; send the original body to get that job back, or use a new key for a new job",
            submitted.job_id,
        )
    return Submitted(submitted.job_id, submitted.created, "scheduled" if delay_ms > 0 else "queued")
