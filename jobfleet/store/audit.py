"""The audit trail of operator actions (replay, bulk replay, purge, cancel): one stream per partition, written in the
same script as the action it records where there is one, read newest first across partitions."""

from __future__ import annotations

import heapq
import json
from typing import Any, cast

from jobfleet.store.jobs import AUDIT_MAX, JobStore
from jobfleet.store.scripts import redis_errors


def _entry_id(raw: str) -> tuple[int, int]:
    ms, _, seq = raw.partition("-")
    return int(ms), int(seq or 0)


class Audit:
    """Read and append the audit trail of a JobStore's namespace."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self.keys = store.keys

    def record(
        self,
        caller: str,
        action: str,
        *,
        target: str,
        count: int,
        key_id: str = "",
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append an action that has no script of its own (a bulk replay's summary) to partition 0's stream."""
        with redis_errors("write audit"):
            self.store.client.xadd(  # the entry's id is Redis's time: the "at" of every audit entry
                self.keys.audit(0),
                {
                    "who": caller,
                    "key_id": key_id,
                    "action": action,
                    "target": target,
                    "count": count,
                    "detail": json.dumps(detail or {}),
                },
                maxlen=AUDIT_MAX,
                approximate=True,
            )

    def entries(self, *, limit: int = 100, before: str | None = None) -> list[dict[str, Any]]:
        """Operator actions, newest first; ``before`` is an entry id to page from (exclusive)."""
        with redis_errors("read audit"), self.store.client.pipeline(transaction=False) as pipe:
            for p in range(self.keys.partitions):
                pipe.xrevrange(self.keys.audit(p), max=f"({before}" if before else "+", count=limit)
            streams = cast(list[list[tuple[bytes, dict[bytes, bytes]]]], pipe.execute())
        rows = heapq.merge(*streams, key=lambda row: tuple(-n for n in _entry_id(row[0].decode())))
        out = []
        for entry_id, raw in rows:
            fields = {k.decode(): v.decode() for k, v in raw.items()}
            out.append(
                {
                    "id": entry_id.decode(),
                    "at": _entry_id(entry_id.decode())[0] / 1000,
                    "who": fields.get("who", ""),
                    "key_id": fields.get("key_id", ""),
                    "action": fields.get("action", ""),
                    "target": fields.get("target", ""),
                    "count": int(fields.get("count") or 0),
                    "detail": json.loads(fields.get("detail") or "{}"),
                }
            )
            if len(out) == limit:
                break
        return out
