"""Startup check: would the connected Redis lose or evict queue data?

jobfleet keeps its queues, idempotency ledger and dead letters in Redis. A Redis with a ``maxmemory-policy`` other
than ``noeviction`` silently drops keys under memory pressure (lost jobs, side effects run twice), and one without
AOF loses every write since its last snapshot on restart. ``check_durability`` reads both settings with
``CONFIG GET``, falls back to ``INFO`` where a managed Redis forbids CONFIG, and says so when it can read neither;
``warn_if_unsafe`` logs the result loudly. Neither raises for a reachable Redis: refusing to start on a managed Redis
we cannot inspect would be worse than a warning."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import redis
import structlog

log = structlog.get_logger(__name__)

Verdict = Literal["ok", "unsafe", "unverified"]


@dataclass(frozen=True)
class DurabilityCheck:
    """What the check found: ``ok``, ``unsafe`` (problems lists why) or ``unverified`` (could not read)."""

    verdict: Verdict
    maxmemory_policy: str | None = None
    appendonly: bool | None = None
    source: str = ""
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (``jobfleet status --json``)."""
        return {
            "verdict": self.verdict,
            "maxmemory_policy": self.maxmemory_policy,
            "appendonly": self.appendonly,
            "source": self.source,
            "problems": list(self.problems),
        }


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _from_config(client: redis.Redis) -> tuple[str, bool]:
    policy = client.config_get("maxmemory-policy")
    aof = client.config_get("appendonly")
    return _text(policy["maxmemory-policy"]), _text(aof["appendonly"]).lower() == "yes"


def _from_info(client: redis.Redis) -> tuple[str, bool]:
    memory = client.info("memory")
    persistence = client.info("persistence")
    return _text(memory["maxmemory_policy"]), int(persistence["aof_enabled"]) == 1


def check_durability(client: redis.Redis) -> DurabilityCheck:
    """Read ``maxmemory-policy`` and ``appendonly``; a connection error propagates (the caller reports it)."""
    policy: str | None = None
    appendonly: bool | None = None
    source = ""
    for name, read in (("CONFIG GET", _from_config), ("INFO", _from_info)):
        try:
            policy, appendonly = read(client)
        except redis.ResponseError:
            continue  # NOPERM / unknown or renamed command on managed Redis: try the next way
        except (KeyError, ValueError, TypeError):
            continue  # a proxy that answers INFO without these fields
        source = name
        break
    if policy is None or appendonly is None:
        return DurabilityCheck(
            "unverified",
            problems=[
                "could not read maxmemory-policy and appendonly (CONFIG and INFO refused): make sure this Redis "
                "uses maxmemory-policy noeviction and AOF persistence, or queue data can be evicted or lost"
            ],
        )
    problems = []
    if policy != "noeviction":
        problems.append(
            f"maxmemory-policy is {policy!r}: under memory pressure Redis will EVICT queue messages, idempotency "
            "ledger entries and dead letters (lost jobs, duplicate side effects); set maxmemory-policy noeviction"
        )
    if not appendonly:
        problems.append(
            "appendonly is off: a Redis restart loses every accepted job since the last snapshot; "
            "set appendonly yes (see deploy/redis/redis.conf)"
        )
    return DurabilityCheck("unsafe" if problems else "ok", policy, appendonly, source, problems)


def warn_if_unsafe(client: redis.Redis, *, where: str = "") -> DurabilityCheck:
    """Run :func:`check_durability` and log every problem at ERROR level (unreachable Redis: logged, not raised)."""
    try:
        result = check_durability(client)
    except (redis.RedisError, OSError) as exc:
        log.warning("redis durability not checked: redis unreachable", where=where, error=f"{type(exc).__name__}")
        return DurabilityCheck("unverified", problems=[f"redis unreachable: {type(exc).__name__}"])
    if result.verdict == "ok":
        log.info("redis durability ok", where=where, maxmemory_policy=result.maxmemory_policy, appendonly=True)
    for problem in result.problems:
        log.error("REDIS MAY LOSE QUEUE DATA", where=where, verdict=result.verdict, problem=problem)
    return result
