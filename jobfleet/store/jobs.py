"""The job store: status records, idempotency ledger, dead letters and event trail, each change one Lua call."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any, TypeVar, cast

import redis
from dramatiq.common import dq_name, q_name

from jobfleet.core.errors import InvalidTransition, JobNotFound, QueueFull, StoreUnavailable
from jobfleet.store.delivery import Claim
from jobfleet.store.keys import Keys

T = TypeVar("T")

EVENTS_MAX = 100
# A full queue drains at the workers' pace, not the client's: ask for a pause long enough to matter.
QUEUE_FULL_RETRY_AFTER_SECONDS = 5
AUDIT_MAX = 10_000
_JSON_FIELDS = ("result", "error", "history", "payload")
_FLOAT_FIELDS = ("enqueued_at", "ready_at", "started_at", "finished_at")
_INT_FIELDS = ("progress", "attempts", "replays")


# Scripts that call claim() (claim.lua) get it prepended: Redis scripts cannot include one another.
_USES_CLAIM = frozenset({"begin", "fetch", "finish"})


def script_source(name: str) -> str:
    """The Lua source of script ``name`` (middleware/lua/<name>.lua) as sent to Redis."""
    folder = resources.files("jobfleet.store") / "lua"
    source = (folder / f"{name}.lua").read_text()
    return (folder / "claim.lua").read_text() + source if name in _USES_CLAIM else source


def _load_scripts() -> dict[str, str]:
    names = ("submit", "begin", "finish", "progress", "cancel", "replay", "purge", "poison", "release")
    return {name: script_source(name) for name in names}


@contextmanager
def redis_errors(operation: str) -> Iterator[None]:
    """Turn any Redis failure inside the block into StoreUnavailable naming the operation."""
    try:
        yield
    except redis.RedisError as exc:
        raise StoreUnavailable(f"Redis {operation} failed: {type(exc).__name__}: {exc}") from exc


def decode_record(raw: dict[bytes, bytes]) -> dict[str, Any]:
    """Turn a job hash as stored into typed Python values."""
    record: dict[str, Any] = {k.decode(): v.decode() for k, v in raw.items()}
    for name in _JSON_FIELDS:
        value = record.get(name)
        record[name] = json.loads(value) if value else None
    if not isinstance(record.get("history"), list):
        record["history"] = []
    for name in _FLOAT_FIELDS:
        value = record.get(name)
        record[name] = float(value) if value else None
    for name in _INT_FIELDS:
        record[name] = int(record.get(name) or 0)
    record["cancel_requested"] = record.get("cancel_requested") == "1"
    return record


class JobStore:
    """Reads and changes job state in Redis; every state change is one atomic script call."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        job_ttl_seconds: int,
        dlq_ttl_seconds: int,
        ledger_ttl_seconds: int,
    ) -> None:
        self.client = client
        self.keys = keys
        self.job_ttl = job_ttl_seconds
        self.dlq_ttl = dlq_ttl_seconds
        self.ledger_ttl = ledger_ttl_seconds
        self._scripts = {name: client.register_script(src) for name, src in _load_scripts().items()}

    def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        with redis_errors(name):
            return self._scripts[name](keys=keys, args=args)

    # --- API side ---
    def submit(
        self,
        *,
        job_id: str,
        fields: dict[str, Any],
        queue_name: str,
        redis_message_id: str,
        encoded_message: bytes,
        idempotency_key: str | None,
        fingerprint: str,
        idempotency_ttl: int,
        event: dict[str, Any],
        max_queue_depth: int = 0,
    ) -> tuple[bool, str, str]:
        """Create the job and push its message; return (created, job_id, fingerprint of the existing one).

        Raise QueueFull when the queue (ready + delayed) already holds ``max_queue_depth`` messages (0: no limit).
        """
        ready_queue = q_name(queue_name)
        other_half = ready_queue if queue_name != ready_queue else dq_name(ready_queue)
        flat: list[Any] = []
        for name, value in fields.items():
            flat += [name, value]
        result = self._run(
            "submit",
            [
                self.keys.job(job_id),
                self.keys.job_events(job_id),
                self.keys.queue(queue_name),
                self.keys.queue_messages(queue_name),
                idempotency_key or "",
                self.keys.queue_messages(other_half),
            ],
            [
                self.job_ttl,
                f"{time.time():.3f}",
                redis_message_id,
                encoded_message,
                fingerprint,
                idempotency_ttl,
                EVENTS_MAX,
                job_id,
                json.dumps(event),
                max_queue_depth,
                *flat,
            ],
        )
        verdict, value = result[0].decode(), result[1].decode()
        if verdict == "created":
            return True, value, fingerprint
        if verdict == "full":
            raise QueueFull(
                f"queue {ready_queue!r} is full ({value} messages, limit {max_queue_depth}); nothing was enqueued, "
                f"retry in {QUEUE_FULL_RETRY_AFTER_SECONDS}s",
                ready_queue,
                retry_after=QUEUE_FULL_RETRY_AFTER_SECONDS,
            )
        existing_id, _, existing_fp = value.partition(" ")
        return False, existing_id, existing_fp

    def get(self, job_id: str) -> dict[str, Any]:
        """Return the job's record; raise JobNotFound when unknown or expired."""
        with redis_errors("read job"):
            raw = cast(dict[bytes, bytes], self.client.hgetall(self.keys.job(job_id)))
        if not raw:
            raise JobNotFound(f"no job {job_id!r} (unknown id, or its record expired)")
        return decode_record(raw)

    def events(self, job_id: str, *, limit: int = EVENTS_MAX) -> list[dict[str, Any]]:
        """Return the job's event trail, oldest first."""
        with redis_errors("read events"):
            entries = cast(
                list[tuple[bytes, dict[bytes, bytes]]],
                self.client.xrange(self.keys.job_events(job_id), count=limit),
            )
        out = []
        for entry_id, raw in entries:
            fields = {k.decode(): v.decode() for k, v in raw.items()}
            out.append(
                {
                    "id": entry_id.decode(),
                    "event": fields.get("event"),
                    "at": float(fields.get("at") or 0),
                    "data": json.loads(fields.get("data") or "{}"),
                }
            )
        return out

    def cancel(self, job_id: str, *, caller: str) -> str:
        """Cancel a job; return the state it was in. Raise JobNotFound / InvalidTransition (finished)."""
        verdict, state = (
            str(part.decode())
            for part in self._run(
                "cancel",
                [self.keys.job(job_id), self.keys.job_events(job_id), self.keys.audit()],
                [f"{time.time():.3f}", caller, EVENTS_MAX, AUDIT_MAX, job_id],
            )
        )
        if verdict == "missing":
            raise JobNotFound(f"no job {job_id!r} (unknown id, or its record expired)")
        if verdict == "refused":
            raise InvalidTransition(f"job {job_id} already finished as {state!r}; nothing to cancel", state)
        return state

    # --- worker side ---
    def begin(
        self,
        *,
        job_id: str,
        job_type: str,
        idempotency_key: str,
        token: str,
        worker_id: str,
        lease_ms: int,
        heartbeat_timeout_ms: int,
        max_interruptions: int,
        running_member: str,
        fallback_record: Callable[[], dict[str, Any]],
        _record: str = "",
    ) -> Claim:
        """Claim an attempt for a delivery (see begin.lua); raise StoreUnavailable when Redis fails.

        ``fallback_record`` builds the status record to recreate when it is missing (only then is it called).
        """
        record = _record
        result = self._run(
            "begin",
            [
                self.keys.job(job_id),
                self.keys.job_events(job_id),
                self.keys.ledger(job_type, idempotency_key),
                self.keys.heartbeats(),
                self.keys.running(),
            ],
            [
                int(time.time() * 1000),
                self.job_ttl,
                token,
                worker_id,
                lease_ms,
                heartbeat_timeout_ms,
                max_interruptions,
                EVENTS_MAX,
                self.ledger_ttl,
                job_id,
                running_member,
                record,
            ],
        )
        parts = [p.decode() for p in result]
        if parts[0] == "missing":  # the status record expired or never existed: recreate it from the message
            return self.begin(
                job_id=job_id,
                job_type=job_type,
                idempotency_key=idempotency_key,
                token=token,
                worker_id=worker_id,
                lease_ms=lease_ms,
                heartbeat_timeout_ms=heartbeat_timeout_ms,
                max_interruptions=max_interruptions,
                running_member=running_member,
                fallback_record=fallback_record,
                _record=json.dumps(fallback_record()),
            )
        return Claim.from_reply(parts)

    def release(self, claims: list[tuple[str, int, str, str, str]]) -> int:
        """Undo attempts claimed at fetch that never ran (see release.lua): ``claims`` holds (job id, attempt,
        delivery token, ledger key, running member); return how many were released."""
        args: list[Any] = [int(time.time() * 1000), EVENTS_MAX, self.keys.ns]
        for claim in claims:
            args += claim
        return int(self._run("release", [self.keys.running()], args))

    def finish(
        self,
        *,
        job_id: str,
        job_type: str,
        idempotency_key: str,
        token: str,
        outcome: str,
        running_member: str,
        queue_name: str,
        result: Any = None,
        error: dict[str, Any] | None = None,
        next_retry_at: float | None = None,
        dead_letter: dict[str, Any] | None = None,
        ack: tuple[str, str, str] | None = None,
        retry: tuple[str, str, str, bytes] | None = None,
        take_next: tuple[str, str, list[Any]] | None = None,
    ) -> list[bytes]:
        """Record the end of an attempt (see finish.lua); raise StoreUnavailable when Redis fails.

        ``ack`` = (acks set, messages hash, redis id) acks the delivery in the same script; ``retry`` =
        (queue list, messages hash, redis id, encoded message) enqueues the retry in it too; ``take_next`` =
        (ready queue list, worker id, claim arguments) also takes and claims the queue's next message (needs
        ``ack``), returned as fetch.lua's 6 entries ([] when the queue was empty or nothing was asked).
        """
        ack_keys, ack_id = (list(ack[:2]), ack[2]) if ack else (["", ""], "")
        retry_keys, retry_id, retry_data = (list(retry[:2]), retry[2], retry[3]) if retry else (["", ""], "", b"")
        next_queue, worker_id, claim_args = take_next if take_next and ack else ("", "", [""] * 9)
        reply: list[bytes] = self._run(
            "finish",
            [
                self.keys.job(job_id),
                self.keys.job_events(job_id),
                self.keys.ledger(job_type, idempotency_key),
                self.keys.running(),
                self.keys.dlq_index(),
                self.keys.dlq_entry(job_id),
                self.keys.dlq_queue_index(queue_name),
                *ack_keys,
                *retry_keys,
                next_queue,
                self.keys.heartbeats(),
            ],
            [
                int(time.time() * 1000),
                outcome,
                self.job_ttl,
                self.ledger_ttl,
                json.dumps(result),
                json.dumps(error) if error else "",
                f"{next_retry_at:.3f}" if next_retry_at is not None else "",
                json.dumps(dead_letter) if dead_letter else "",
                self.dlq_ttl,
                EVENTS_MAX,
                running_member,
                job_id,
                token,
                ack_id,
                retry_id,
                retry_data,
                worker_id,
                *claim_args,
            ],
        )
        return reply[1:]

    def dead_letter_poison(
        self, *, queue_name: str, redis_message_id: str, raw: bytes, reason: str, message: Any = None
    ) -> str:
        """Dead-letter a message no actor can run; return the dead letter's id."""
        job_id = getattr(message, "message_id", None)
        entry_id = job_id if isinstance(job_id, str) and job_id else f"poison-{redis_message_id}"
        error = {"type": "PoisonMessage", "message": reason, "traceback": ""}
        now = time.time()
        entry = {
            "job_id": entry_id,
            "type": (getattr(message, "options", None) or {}).get("job_type", "unknown"),
            "queue": queue_name,
            "actor": getattr(message, "actor_name", None),
            "payload": getattr(message, "kwargs", None),
            "idempotency_key": (getattr(message, "options", None) or {}).get("idempotency_key"),
            "reason": "poison",
            "error": error,
            "raw": raw[:65536].decode("utf-8", errors="replace"),
            "attempts": 0,
            "first_failure_at": round(now, 3),
            "last_failure_at": round(now, 3),
            "dead_lettered_at": round(now, 3),
            "history": [],
            "message": None,
        }
        self._run(
            "poison",
            [
                self.keys.dlq_entry(entry_id),
                self.keys.dlq_index(),
                self.keys.dlq_queue_index(queue_name),
                self.keys.job(entry_id),
                self.keys.job_events(entry_id),
            ],
            [
                json.dumps(entry),
                self.dlq_ttl,
                int(now * 1000),
                entry_id,
                json.dumps({"type": error["type"], "message": reason}),
                EVENTS_MAX,
            ],
        )
        return entry_id

    def progress(self, job_id: str, percent: int, message: str) -> bool:
        """Record progress; return True when the job was asked to cancel."""
        return bool(
            self._run(
                "progress",
                [self.keys.job(job_id), self.keys.job_events(job_id)],
                [percent, message, f"{time.time():.3f}", EVENTS_MAX],
            )
        )


def retry_call(fn: Callable[[], T], *, attempts: int, delay: float) -> T:
    """Call ``fn`` up to ``attempts`` times, sleeping ``delay`` (doubling) between Redis failures."""
    for attempt in range(attempts):
        try:
            return fn()
        except (StoreUnavailable, redis.RedisError):
            if attempt == attempts - 1:
                raise
            time.sleep(delay * 2**attempt)
    raise AssertionError("unreachable")
