"""Every Redis key jobfleet reads or writes, in one place (Dramatiq's own queue keys included)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """Key schema under one namespace; Dramatiq's broker uses the same namespace for its queues."""

    ns: str

    # --- Dramatiq's Redis broker layout (dramatiq 2.2 brokers/redis/dispatch.lua) ---
    def queue(self, queue_name: str) -> str:
        """List of ready message ids of a queue (``<queue>.DQ`` for delayed messages)."""
        return f"{self.ns}:{queue_name}"

    def queue_messages(self, queue_name: str) -> str:
        """Hash of message id -> encoded message for a queue."""
        return f"{self.ns}:{queue_name}.msgs"

    def acks(self, worker_id: str, queue_name: str) -> str:
        """Set of message ids one worker (broker id) fetched from a queue and has not acked."""
        return f"{self.ns}:__acks__.{worker_id}.{queue_name}"

    def heartbeats(self) -> str:
        """Sorted set of worker (broker) ids by last heartbeat, in milliseconds."""
        return f"{self.ns}:__heartbeats__"

    def stock_dead_letters(self, queue_name: str) -> str:
        """Dramatiq's own dead-letter sorted set (jobfleet never nacks, so this should stay empty)."""
        return f"{self.ns}:{queue_name}.XQ"

    # --- jobfleet's own keys ---
    def job(self, job_id: str) -> str:
        """Hash: the job's status record (state, progress, attempts history, result, error, timestamps)."""
        return f"{self.ns}:job:{job_id}"

    def job_events(self, job_id: str) -> str:
        """Stream: the job's capped lifecycle event trail."""
        return f"{self.ns}:job:{job_id}:events"

    def api_idempotency(self, caller: str, job_type: str, key: str) -> str:
        """String: ``<job_id> <fingerprint>`` for an Idempotency-Key seen by the API."""
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        return f"{self.ns}:idem:{caller}:{job_type}:{digest}"

    def ledger(self, job_type: str, idempotency_key: str) -> str:
        """Hash: the worker-side idempotency ledger entry (lease while running, result when done).

        SHA-1, not SHA-256, because fetch.lua derives the same name with Redis's ``redis.sha1hex`` (a key name,
        not a security boundary: the key is already prefixed by the caller and the job type)."""
        digest = hashlib.sha1(idempotency_key.encode(), usedforsecurity=False).hexdigest()[:32]
        return f"{self.ns}:ledger:{job_type}:{digest}"

    def dlq_index(self) -> str:
        """Sorted set: dead-lettered job ids by dead-letter time (ms)."""
        return f"{self.ns}:dlq"

    def dlq_queue_index(self, queue_name: str) -> str:
        """Sorted set: the dead letters of one queue by dead-letter time (ms), for cheap per-queue metrics."""
        return f"{self.ns}:dlq:queue:{queue_name}"

    def dlq_entry(self, job_id: str) -> str:
        """Hash: one dead letter (payload, final error and traceback, attempts, trace id...)."""
        return f"{self.ns}:dlq:{job_id}"

    def running(self) -> str:
        """Sorted set: ``<queue>|<actor>|<job_id>`` members of running attempts by start time (ms)."""
        return f"{self.ns}:running"

    def rate_bucket(self, caller: str) -> str:
        """Hash: the caller's API rate-limit token bucket (tokens, last refill in ms); expires when full again."""
        return f"{self.ns}:ratelimit:{caller}"

    def audit(self) -> str:
        """Stream: operator actions (replay, purge, cancel) with who, what and how many."""
        return f"{self.ns}:audit"
