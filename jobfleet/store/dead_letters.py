"""The dead-letter queue as operators use it: list with filters (O(page) per partition from the time-ordered indexes),
inspect, replay exactly the message that was accepted, and purge — every action audited."""

from __future__ import annotations

import heapq
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from jobfleet.core.errors import InvalidTransition, JobNotFound
from jobfleet.store.audit import Audit
from jobfleet.store.jobs import AUDIT_MAX, JobStore, retry_idempotent
from jobfleet.store.records import dead_letter, decode_record, summary
from jobfleet.store.scripts import redis_errors

MAX_BULK = 1000
_CHUNK = 100
_SCAN_LIMIT = 20_000  # index entries one listing may look at, so a filter over a huge DLQ stays bounded


@dataclass(frozen=True)
class Filter:
    """Which dead letters an operation applies to; empty fields match everything."""

    type: str | None = None
    queue: str | None = None
    exception: str | None = None
    reason: str | None = None
    caller: str | None = None

    def matches(self, entry: dict[str, Any]) -> bool:
        """True when ``entry`` passes every set criterion."""
        return (
            (self.type is None or entry.get("type") == self.type)
            and (self.queue is None or entry.get("queue") == self.queue)
            and (self.exception is None or (entry.get("error") or {}).get("type") == self.exception)
            and (self.reason is None or entry.get("reason") == self.reason)
            and (self.caller is None or entry.get("caller") == self.caller)
        )


@dataclass
class BulkResult:
    """What a bulk replay did (or, with dry_run, would do)."""

    dry_run: bool
    matched: int = 0
    replayed: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    job_ids: list[str] = field(default_factory=list)


def _cursor(raw: str) -> tuple[int, str]:
    """A page cursor ``<dead ms>:<job id>`` (``""``: from the newest)."""
    if not raw:
        return (2**62, "")
    ms, _, job_id = raw.partition(":")
    return int(ms), str(job_id)


class DeadLetters:
    """Operator access to the DLQ of a JobStore."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self.keys = store.keys
        self.audit = Audit(store)

    def _index(self, partition: int, filt: Filter) -> str:
        # The most selective index the filter allows; the remaining criteria are checked per entry.
        for dimension, value in (("caller", filt.caller), ("queue", filt.queue), ("type", filt.type)):
            if value is not None:
                return self.keys.dlq_by(partition, dimension) + value
        return self.keys.dlq(partition)

    def _walk(self, partition: int, filt: Filter, start: tuple[int, str]) -> Iterator[tuple[int, str, dict[str, Any]]]:
        """(dead ms, job id, entry) of ``partition`` newest first from ``start``, entries matching ``filt``."""
        index = self._index(partition, filt)
        high, after = start
        bound: int | str = high
        looked = 0
        while looked < _SCAN_LIMIT:
            with redis_errors("list dead letters"):
                raw = cast(
                    list[tuple[bytes, float]],
                    self.store.client.zrevrangebyscore(index, bound, "-inf", start=0, num=_CHUNK, withscores=True),
                )
            # Ties on one millisecond come in descending id order: skip the ones the cursor already returned.
            rows = [(m.decode(), int(s)) for m, s in raw]
            rows = [(job_id, ms) for job_id, ms in rows if not (ms == high and after and job_id >= after)]
            if not rows:
                if raw and bound == high:  # a chunk of ties all returned already: go on below that millisecond
                    bound = f"({high}"
                    continue
                return
            looked += len(rows)
            with redis_errors("read dead letters"), self.store.client.pipeline(transaction=False) as pipe:
                for job_id, _ in rows:
                    pipe.hgetall(self.keys.job(job_id))
                records = pipe.execute()
            for (job_id, ms), fields in zip(rows, records, strict=True):
                if fields and fields.get(b"state") == b"dead":
                    entry = dead_letter(decode_record(job_id, fields))
                    if filt.matches(entry):
                        yield ms, job_id, entry
            high, after = rows[-1][1], rows[-1][0]
            bound = high

    def page(self, filt: Filter, *, cursor: str = "", limit: int = 50) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first: up to ``limit`` matching dead letters after ``cursor``; return (items, next cursor). Each
        partition is read in index order and the partitions merged, so a page costs O(limit x partitions)."""
        start = _cursor(cursor)
        streams = [self._walk(p, filt, start) for p in range(self.keys.partitions)]
        # Each stream runs newest first, ties by descending id (ZREVRANGEBYSCORE's order): merge in that order.
        merged = heapq.merge(*streams, key=lambda row: (row[0], row[1]), reverse=True)
        items, last = [], None
        for ms, job_id, entry in merged:
            items.append(summary(entry))
            last = f"{ms}:{job_id}"
            if len(items) == limit:
                return items, last
        return items, None

    def get(self, job_id: str) -> dict[str, Any]:
        """The whole dead letter (payload, final error and traceback, history); JobNotFound if there is none."""
        try:
            record = self.store.get(job_id)
        except JobNotFound:
            record = None
        if record is None or record["state"] != "dead":
            raise JobNotFound(f"no dead letter {job_id!r} (never dead-lettered, replayed, purged or expired)")
        return dead_letter(record)

    def count(self) -> int:
        """How many dead letters the indexes hold."""
        with redis_errors("count dead letters"), self.store.client.pipeline(transaction=False) as pipe:
            for p in range(self.keys.partitions):
                pipe.zcard(self.keys.dlq(p))
            return sum(int(n) for n in pipe.execute())

    def replay(self, job_id: str, *, caller: str, key_id: str = "", request_id: str = "", audit: bool = True) -> int:
        """Put a dead letter back on its queue with fresh attempts and its original message; return the replay
        number. ``request_id`` makes a repeated request (a client retry) replay once."""
        p = self.keys.partition_of(job_id)
        k = self.keys
        request = request_id or uuid.uuid4().hex
        args = [
            job_id,
            request,
            caller,
            key_id,
            AUDIT_MAX if audit else "",
            k.queue_prefix(p),
            k.dlq_by(p, "queue"),
            k.dlq_by(p, "type"),
            k.dlq_by(p, "caller"),
        ]
        reply = retry_idempotent(lambda: self.store.scripts.call("replay", [k.job(job_id), k.audit(p), k.dlq(p)], args))
        verdict, value = reply[0].decode(), reply[1]
        if verdict == "missing":
            raise JobNotFound(f"no dead letter {job_id!r} (never dead-lettered, replayed, purged or expired)")
        if verdict == "refused":
            state = value.decode()
            detail = (
                "it is a poison message (its message cannot be decoded) or has no message to replay: inspect it and "
                "purge it"
                if state == "dead"
                else ""
            )
            raise InvalidTransition(
                f"job {job_id} is {state!r}, not a replayable dead letter{'; ' + detail if detail else ''}", state
            )
        return int(value)

    def bulk_replay(
        self,
        filt: Filter,
        *,
        caller: str,
        key_id: str = "",
        limit: int = 100,
        per_second: float = 0.0,
        dry_run: bool = False,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> BulkResult:
        """Replay up to ``limit`` (<= MAX_BULK) matching dead letters, newest first, at most ``per_second`` a second
        (0: as fast as Redis answers); audited once."""
        limit = max(1, min(limit, MAX_BULK))
        result = BulkResult(dry_run=dry_run)
        candidates = [item["job_id"] for item in self.page(filt, limit=limit)[0]]
        result.matched = len(candidates)
        if dry_run:
            result.job_ids = candidates
            return result
        interval = 1.0 / per_second if per_second > 0 else 0.0
        for n, job_id in enumerate(candidates, start=1):
            started = time.monotonic()
            try:
                self.replay(job_id, caller=caller, key_id=key_id, audit=False)
                result.replayed += 1
                result.job_ids.append(job_id)
            except (JobNotFound, InvalidTransition) as exc:
                result.skipped.append({"job_id": job_id, "reason": str(exc)})
            if on_progress:
                on_progress(n, len(candidates))
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
        self.audit.record(caller, "bulk_replay", target=repr(filt), count=result.replayed, key_id=key_id)
        return result

    def purge(self, job_id: str, *, caller: str, key_id: str = "") -> None:
        """Drop a dead letter for good (the job becomes ``failed``); JobNotFound if there is none."""
        p, k = self.keys.partition_of(job_id), self.keys
        args = [
            job_id,
            caller,
            key_id,
            self.store.retention.ended,
            AUDIT_MAX,
            k.dlq_by(p, "queue"),
            k.dlq_by(p, "type"),
            k.dlq_by(p, "caller"),
        ]
        purged = retry_idempotent(lambda: self.store.scripts.call("purge", [k.job(job_id), k.audit(p), k.dlq(p)], args))
        if not purged:
            raise JobNotFound(f"no dead letter {job_id!r} (never dead-lettered, replayed, purged or expired)")
