"""The dead-letter queue as operators use it: list with filters, inspect, replay (one or in throttled bulk),
purge — every action recorded in the audit trail."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from dramatiq import Message

from jobfleet.core.errors import InvalidTransition, JobNotFound
from jobfleet.store.jobs import AUDIT_MAX, EVENTS_MAX, JobStore, redis_errors

MAX_BULK = 1000
_SCAN_CHUNK = 200
_SCAN_LIMIT = 20_000  # entries one listing request may look at, so a filter over a huge DLQ stays bounded


@dataclass(frozen=True)
class Filter:
    """Which dead letters an operation applies to; empty fields match everything."""

    type: str | None = None
    queue: str | None = None
    exception: str | None = None
    reason: str | None = None

    def matches(self, entry: dict[str, Any]) -> bool:
        """True when ``entry`` passes every set criterion."""
        return (
            (self.type is None or entry.get("type") == self.type)
            and (self.queue is None or entry.get("queue") == self.queue)
            and (self.exception is None or (entry.get("error") or {}).get("type") == self.exception)
            and (self.reason is None or entry.get("reason") == self.reason)
        )


@dataclass
class BulkResult:
    """What a bulk replay did (or, with dry_run, would do)."""

    dry_run: bool
    matched: int = 0
    replayed: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    job_ids: list[str] = field(default_factory=list)


class DeadLetters:
    """Operator access to the DLQ over a JobStore's Redis and key schema."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self.client = store.client
        self.keys = store.keys

    def _ids(self, position: int, *, ascending: bool) -> list[str]:
        read = self.client.zrange if ascending else self.client.zrevrange
        members = cast(list[bytes], read(self.keys.dlq_index(), position, position + _SCAN_CHUNK - 1))
        return [m.decode() for m in members]

    def _entries(self, ids: list[str]) -> list[tuple[str, dict[str, Any] | None]]:
        if not ids:
            return []
        with redis_errors("read dead letters"):
            raw = cast(list[bytes | None], self.client.mget([self.keys.dlq_entry(i) for i in ids]))
        return [(i, json.loads(r) if r else None) for i, r in zip(ids, raw, strict=True)]

    def _forget_expired(self, ids: list[str]) -> None:
        # An entry whose key expired (retention) leaves its id in the indexes; drop it so depth stays true.
        if not ids:
            return
        with redis_errors("clean dead-letter index"), self.client.pipeline(transaction=False) as pipe:
            pipe.zrem(self.keys.dlq_index(), *ids)
            for queue in self._queues():
                pipe.zrem(self.keys.dlq_queue_index(queue), *ids)
            pipe.execute()

    def _queues(self) -> list[str]:
        prefix = self.keys.dlq_queue_index("")
        with redis_errors("list dead-letter queues"):
            return [k.decode()[len(prefix) :] for k in self.client.scan_iter(match=prefix + "*", count=100)]

    def page(self, filt: Filter, *, cursor: int = 0, limit: int = 50) -> tuple[list[dict[str, Any]], int | None]:
        """Newest first: up to ``limit`` matching entries from position ``cursor``; return (items, next cursor)."""
        items: list[dict[str, Any]] = []
        position = cursor
        scanned = 0
        while len(items) < limit and scanned < _SCAN_LIMIT:
            with redis_errors("list dead letters"):
                ids = self._ids(position, ascending=False)
            if not ids:
                return items, None
            expired = []
            for offset, (entry_id, entry) in enumerate(self._entries(ids)):
                if entry is None:
                    expired.append(entry_id)
                elif filt.matches(entry):
                    items.append(summary(entry))
                    if len(items) == limit:
                        self._forget_expired(expired)
                        return items, position + offset + 1 - len(expired)
            self._forget_expired(expired)
            position += len(ids) - len(expired)
            scanned += len(ids)
        return items, position

    def get(self, job_id: str) -> dict[str, Any]:
        """The whole dead letter (payload, final error and traceback, history); JobNotFound if absent."""
        [(_, entry)] = self._entries([job_id])
        if entry is None:
            raise JobNotFound(f"no dead letter {job_id!r} (never dead-lettered, replayed, purged or expired)")
        return entry

    def count(self) -> int:
        """How many dead letters the index holds."""
        with redis_errors("count dead letters"):
            return int(self.client.zcard(self.keys.dlq_index()))

    def replay(self, job_id: str, *, caller: str, audit_action: str = "replay") -> int:
        """Re-enqueue a dead letter with fresh attempts and the same idempotency key; return the replay number."""
        entry = self.get(job_id)
        original = entry.get("message")
        if not original:
            raise InvalidTransition(
                f"dead letter {job_id} is a poison message ({entry['error']['message']}); it cannot be replayed — "
                "inspect its raw body and purge it",
                "dead",
            )
        now = time.time()
        options = {
            k: v
            for k, v in original["options"].items()
            if k not in {"retries", "eta", "redis_message_id", "ready_at", "delivery_token"}
        }
        options.update(redis_message_id=uuid.uuid4().hex, ready_at=round(now, 3))
        if entry.get("traceparent"):
            options["replay_of"] = entry["traceparent"]
        message: Message[Any] = Message(
            queue_name=original["queue_name"],
            actor_name=original["actor_name"],
            args=tuple(original["args"]),
            kwargs=original["kwargs"],
            options=options,
            message_id=original["message_id"],
            message_timestamp=int(now * 1000),
        )
        record = {
            "id": job_id,
            "type": entry.get("type") or "",
            "queue": entry.get("queue") or "",
            "actor": entry.get("actor") or "",
            "enqueued_at": f"{entry.get('first_failure_at') or now:.3f}",
            "idempotency_key": entry.get("idempotency_key") or job_id,
            "payload": json.dumps(entry.get("payload")),
            "trace_id": entry.get("trace_id") or "",
        }
        queue = original["queue_name"]
        verdict, replays = (
            p.decode()
            for p in self.store._run(
                "replay",
                [
                    self.keys.dlq_entry(job_id),
                    self.keys.dlq_index(),
                    self.keys.dlq_queue_index(queue),
                    self.keys.job(job_id),
                    self.keys.job_events(job_id),
                    self.keys.queue(queue),
                    self.keys.queue_messages(queue),
                    self.keys.audit(),
                ],
                [
                    f"{now:.3f}",
                    options["redis_message_id"],
                    message.encode(),
                    self.store.job_ttl,
                    EVENTS_MAX,
                    caller,
                    AUDIT_MAX,
                    job_id,
                    json.dumps(record),
                    audit_action,
                ],
            )
        )
        if verdict == "missing":
            raise JobNotFound(f"dead letter {job_id!r} disappeared (replayed or purged concurrently)")
        return int(replays)

    def bulk_replay(
        self,
        filt: Filter,
        *,
        caller: str,
        limit: int = 100,
        per_second: float = 50.0,
        dry_run: bool = False,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> BulkResult:
        """Replay up to ``limit`` (≤ MAX_BULK) matching dead letters, oldest first, at most ``per_second``."""
        limit = max(1, min(limit, MAX_BULK))
        result = BulkResult(dry_run=dry_run)
        candidates: list[str] = []
        position = 0
        while len(candidates) < limit:
            with redis_errors("list dead letters"):
                ids = self._ids(position, ascending=True)
            if not ids:
                break
            position += len(ids)
            for entry_id, entry in self._entries(ids):
                if entry is not None and filt.matches(entry):
                    candidates.append(entry_id)
                    if len(candidates) == limit:
                        break
        result.matched = len(candidates)
        if dry_run:
            result.job_ids = candidates
            return result
        interval = 1.0 / per_second if per_second > 0 else 0.0
        for n, job_id in enumerate(candidates, start=1):
            started = time.monotonic()
            try:
                self.replay(job_id, caller=caller, audit_action="")
                result.replayed += 1
                result.job_ids.append(job_id)
            except (JobNotFound, InvalidTransition) as exc:
                result.skipped.append({"job_id": job_id, "reason": str(exc)})
            if on_progress:
                on_progress(n, len(candidates))
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
        self.audit(caller, "bulk_replay", target=json.dumps(filt.__dict__), count=result.replayed)
        return result

    def purge(self, job_id: str, *, caller: str) -> None:
        """Delete a dead letter for good (the job becomes ``failed``); JobNotFound if absent."""
        entry = self.get(job_id)
        queue = entry.get("queue") or ""
        removed = self.store._run(
            "purge",
            [
                self.keys.dlq_entry(job_id),
                self.keys.dlq_index(),
                self.keys.dlq_queue_index(queue),
                self.keys.job(job_id),
                self.keys.job_events(job_id),
                self.keys.audit(),
            ],
            [f"{time.time():.3f}", job_id, caller, EVENTS_MAX, AUDIT_MAX, "purge"],
        )
        if not removed:
            raise JobNotFound(f"dead letter {job_id!r} disappeared (replayed or purged concurrently)")

    def audit(self, caller: str, action: str, *, target: str, count: int, detail: dict[str, Any] | None = None) -> None:
        """Append an operator action to the audit trail."""
        with redis_errors("write audit"):
            self.client.xadd(
                self.keys.audit(),
                {
                    "at": f"{time.time():.3f}",
                    "who": caller,
                    "action": action,
                    "target": target,
                    "count": count,
                    "detail": json.dumps(detail or {}),
                },
                maxlen=AUDIT_MAX,
                approximate=True,
            )

    def audit_log(self, *, limit: int = 100, before: str | None = None) -> list[dict[str, Any]]:
        """Operator actions, newest first; ``before`` is an entry id to page from."""
        with redis_errors("read audit"):
            entries = cast(
                list[tuple[bytes, dict[bytes, bytes]]],
                self.client.xrevrange(self.keys.audit(), max=f"({before}" if before else "+", count=limit),
            )
        out = []
        for entry_id, raw in entries:
            fields = {k.decode(): v.decode() for k, v in raw.items()}
            out.append(
                {
                    "id": entry_id.decode(),
                    "at": float(fields.get("at") or 0),
                    "who": fields.get("who", ""),
                    "action": fields.get("action", ""),
                    "target": fields.get("target", ""),
                    "count": int(fields.get("count") or 0),
                    "detail": json.loads(fields.get("detail") or "{}"),
                }
            )
        return out


def summary(entry: dict[str, Any]) -> dict[str, Any]:
    """The list view of a dead letter (no payload or traceback)."""
    error = entry.get("error") or {}
    return {
        "job_id": entry.get("job_id"),
        "type": entry.get("type"),
        "queue": entry.get("queue"),
        "reason": entry.get("reason"),
        "exception": error.get("type"),
        "message": error.get("message"),
        "attempts": entry.get("attempts", 0),
        "dead_lettered_at": entry.get("dead_lettered_at"),
        "replayable": bool(entry.get("message")),
    }
