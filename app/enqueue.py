"""Turn a validated request into a job: one atomic Redis call creates the status record, applies the
Idempotency-Key and pushes the Dramatiq message (no window where one exists without the other)."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from dramatiq import Message
from dramatiq.common import dq_name

from jobfleet.core.errors import IdempotencyConflict
from jobfleet.core.job_types import JobType
from jobfleet.store.jobs import JobStore


@dataclass(frozen=True)
class Submitted:
    """What happened to an enqueue request."""

    job_id: str
    created: bool
    state: str


def fingerprint(payload: dict[str, Any], delay_ms: int) -> str:
    """Canonical-JSON hash of a request: same body (any key order, any whitespace) → same fingerprint."""
    canonical = json.dumps({"payload": payload, "delay_ms": delay_ms}, sort_keys=True, separators=(",", ":"))
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
    trace_context: dict[str, str] | None = None,
    max_queue_depth: int = 0,
) -> Submitted:
    """Create and enqueue the job (or find the one an earlier request with this key created)."""
    job_id = uuid.uuid4().hex
    now = time.time()
    now_ms = int(now * 1000)
    delay_ms = int(delay_seconds * 1000)
    ready_at = now + delay_seconds
    worker_key = f"{caller}:{idempotency_key}" if idempotency_key else job_id
    options: dict[str, Any] = {
        "job_type": job_type.name,
        "idempotency_key": worker_key,
        "accepted_at": round(now, 3),
        "ready_at": round(ready_at, 3),
        "redis_message_id": uuid.uuid4().hex,
        **(trace_context or {}),
    }
    queue_name = job_type.queue_name
    if delay_ms > 0:
        queue_name = dq_name(queue_name)
        options["eta"] = now_ms + delay_ms
    message: Message[Any] = Message(
        queue_name=queue_name,
        actor_name=job_type.actor_name,
        args=(),
        kwargs=payload,
        options=options,
        message_id=job_id,
        message_timestamp=now_ms,
    )
    state = "scheduled" if delay_ms > 0 else "queued"
    fp = fingerprint(payload, delay_ms) if idempotency_key else ""  # only compared for a repeated key
    fields = {
        "id": job_id,
        "type": job_type.name,
        "queue": job_type.queue_name,
        "actor": job_type.actor_name,
        "state": "queued",
        "progress": 0,
        "attempts": 0,
        "enqueued_at": f"{now:.3f}",
        "ready_at": f"{ready_at:.3f}",
        "idempotency_key": worker_key,
        "caller": caller,
        "payload": json.dumps(payload),
        "trace_id": (trace_context or {}).get("trace_id", ""),
    }
    created, found_id, found_fp = store.submit(
        job_id=job_id,
        fields=fields,
        queue_name=queue_name,
        redis_message_id=options["redis_message_id"],
        encoded_message=message.encode(),
        idempotency_key=(
            store.keys.api_idempotency(caller, job_type.name, idempotency_key) if idempotency_key else None
        ),
        fingerprint=fp,
        idempotency_ttl=idempotency_ttl,
        event={"type": job_type.name, "delay_seconds": delay_seconds, "caller": caller},
        max_queue_depth=max_queue_depth,
    )
    if not created and found_fp != fp:
        raise IdempotencyConflict(
            f"Idempotency-Key {idempotency_key!r} was already used for job {found_id} with a different request "
            "body; send the original body to get that job back, or use a new key for a new job",
            found_id,
        )
    return Submitted(found_id, created, state)
