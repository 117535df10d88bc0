"""How full Redis is: used_memory and maxmemory of every node (a Cluster's masters too), for readiness, the
exporter and `jobfleet status`. A full Redis under noeviction refuses writes: this is the figure to alert on first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from jobfleet.store.scripts import redis_errors


@dataclass(frozen=True)
class Memory:
    """The fullest node's memory: bytes used, its maxmemory (0: no limit) and used/max (0 without a limit)."""

    used_bytes: int
    max_bytes: int

    @property
    def ratio(self) -> float:
        """used / max, or 0.0 when no maxmemory is set."""
        return self.used_bytes / self.max_bytes if self.max_bytes else 0.0


def redis_memory(client: redis.Redis) -> Memory:
    """INFO memory of each node, the fullest one (by ratio, then by bytes used); raise StoreUnavailable."""
    with redis_errors("read memory"):
        info: Any = client.info("memory")
    nodes = list(info.values()) if info and all(isinstance(v, dict) for v in info.values()) else [info]
    readings = [Memory(int(n.get("used_memory", 0)), int(n.get("maxmemory", 0))) for n in nodes]
    return max(readings, key=lambda m: (m.ratio, m.used_bytes))
