"""A Sentinel setup the tests own (primary, replica, three sentinels) and real failovers of it."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from tests.conftest import require_binary
from tests.topology.servers import Process, ask, wait_for

MASTER_NAME = "mymaster"


@dataclass
class Failover:
    """What ``failover`` did: the old and the new primary's ports and the seconds until the sentinels agreed."""

    old: int
    new: int
    seconds: float


@dataclass
class RedisSentinelSetup:
    """A primary, one replica and three sentinels monitoring them as ``mymaster``."""

    data: dict[int, Process]
    sentinels: dict[int, Process]
    url: str = ""

    def primary_port(self) -> int:
        """The primary's port as the first answering sentinel reports it."""
        for port in self.sentinels:
            try:
                return int(ask(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)[1])
            except redis.RedisError:
                continue
        raise AssertionError("no sentinel answers")

    def agreed_primary(self) -> int | None:
        """The primary's port if all three sentinels report the same one, else None."""
        ports = {int(ask(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)[1]) for port in self.sentinels}
        return ports.pop() if len(ports) == 1 else None

    def role(self, port: int) -> str:
        """What the data node at ``port`` says it is: ``master``, or ``slave`` once its link to the primary is up."""
        info = ask(port, "INFO", "replication")
        if info["role"] == "slave" and info.get("master_link_status") != "up":
            return "syncing"
        return str(info["role"])

    def ready(self) -> bool:
        """Sentinels agree on a primary that is a master, see the replica in sync, and see each other."""
        primary = self.agreed_primary()
        if primary is None or self.role(primary) != "master":
            return False
        others = [p for p in self.data if p != primary]
        if not all(self.role(p) == "slave" for p in others):
            return False
        for port in self.sentinels:
            state = ask(port, "SENTINEL MASTER", MASTER_NAME)
            if state["num-other-sentinels"] != 2 or state["flags"] != "master":
                return False
            # A replica the sentinels would promote: they saw it up, linked to the primary (INFO every 10 s).
            good = {r["port"] for r in ask(port, "SENTINEL SLAVES", MASTER_NAME) if is_good_replica(r)}
            if not good >= set(others):
                return False
        return True

    def failover(self, *, kill: bool = True) -> Failover:
        """SIGKILL the primary (or ``SENTINEL FAILOVER`` when not ``kill``) and wait until all sentinels report
        a new one that accepts writes; a killed primary is then restarted (empty: the sentinels demote it)."""
        old = self.primary_port()
        start = time.monotonic()
        if kill:
            self.data[old].kill()
        else:
            ask(next(iter(self.sentinels)), "SENTINEL", "FAILOVER", MASTER_NAME)
        wait_for("the sentinels to agree on a new primary", lambda: self.agreed_primary() not in {None, old})
        new = self.primary_port()
        wait_for("the new primary to accept writes", lambda: self.role(new) == "master")
        seconds = time.monotonic() - start
        if kill:
            self.data[old].start()  # comes back as a master with no data, until the sentinels demote it
        return Failover(old, new, seconds)

    def wait_ready(self, timeout: float = 45.0) -> float:
        """Wait until the old primary is a replica in sync again, as the sentinels see it (they wait ~8 s before
        demoting a returning primary and read a replica's INFO every 10 s): up to ~20 s after a failover."""
        return wait_for("the setup to be whole again (primary, replica in sync)", self.ready, timeout=timeout)


def is_good_replica(state: dict[str, Any]) -> bool:
    """Whether a sentinel's view of a replica lets it promote that replica."""
    down = state["is_sdown"] or state["is_odown"] or state["is_disconnected"]
    return state["flags"] == "slave" and state["master-link-status"] == "ok" and not down


def sentinel_argv(conf: Path) -> list[str]:
    """The command that runs a sentinel: redis-sentinel when installed, else redis-server --sentinel."""
    if shutil.which("redis-sentinel"):
        return [require_binary("redis-sentinel"), str(conf)]
    return [require_binary("redis-server"), str(conf), "--sentinel"]
