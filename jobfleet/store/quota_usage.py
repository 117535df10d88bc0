"""What each caller's waiting and running jobs count against the tenant quotas, summed over the partitions: the
counters submit.lua adds to and the end of every job gives back (lib.lua ``quota_release``). Read-only."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import redis

from jobfleet.store.keys import Keys
from jobfleet.store.scripts import redis_errors


@dataclass
class Usage:
    """One caller's counts over all partitions, and the partition nearest its per-partition limits."""

    caller: str
    outstanding: int = 0
    delayed: int = 0
    bytes: int = 0
    fullest: dict[str, int] = field(default_factory=lambda: {"outstanding": 0, "delayed": 0, "bytes": 0})

    def add(self, counts: dict[str, int]) -> None:
        """Add one partition's counters."""
        self.outstanding += counts.get("outstanding", 0)
        self.delayed += counts.get("delayed", 0)
        self.bytes += counts.get("bytes", 0)
        for name in self.fullest:
            self.fullest[name] = max(self.fullest[name], counts.get(name, 0))


def _counters(client: redis.Redis, keys: Keys, caller: str | None) -> Iterator[tuple[str, dict[str, int]]]:
    for partition in range(keys.partitions):
        prefix = keys.quota_prefix(partition)
        names = [keys.quota(partition, caller)] if caller is not None else client.scan_iter(match=prefix + "*")
        for name in names:
            key = name.decode() if isinstance(name, bytes) else str(name)
            raw: dict[bytes, bytes] = client.hgetall(key)  # type: ignore[assignment]
            if raw:
                yield key[len(prefix) :], {k.decode(): int(v) for k, v in raw.items()}


def quota_usage(client: redis.Redis, keys: Keys, caller: str | None = None) -> list[Usage]:
    """Every caller's usage (or one caller's), busiest first; callers whose counts are all zero are left out."""
    with redis_errors("read quota counters"):
        totals: dict[str, Usage] = {}
        for name, counts in _counters(client, keys, caller):
            totals.setdefault(name, Usage(name)).add(counts)
    used = [u for u in totals.values() if u.outstanding or u.delayed or u.bytes]
    return sorted(used, key=lambda u: (-u.outstanding, -u.bytes, u.caller))
