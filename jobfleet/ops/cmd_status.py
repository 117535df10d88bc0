"""``jobfleet status``: the fleet at a glance from an on-call terminal — per queue ready, delayed, in-flight, lag and
dead letters, live workers, a dead-letter summary and whether Redis is configured not to lose queue data. Reads
Redis exactly like the queue exporter (``jobfleet.queue_state``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from typing import Any

import redis

from jobfleet.core.errors import StoreUnavailable
from jobfleet.core.redis_check import check_durability
from jobfleet.core.redis_client import make_client
from jobfleet.core.redis_url import redact_url
from jobfleet.core.settings import Settings
from jobfleet.store.dead_letters import DeadLetters, Filter
from jobfleet.store.factory import open_store
from jobfleet.store.queue_state import build_reader

# Dead letters read for the by-reason/by-exception breakdown (newest first); the total is always exact.
DLQ_SAMPLE = 500


def _age(seconds: float) -> str:
    if seconds <= 0:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def collect(settings: Settings, client: redis.Redis) -> dict[str, Any]:
    """Everything ``jobfleet status`` shows, as one JSON-serialisable dict (raise StoreUnavailable on Redis errors)."""

    try:
        snapshot = build_reader(settings, client).read()
        durability = check_durability(client)
    except (StoreUnavailable, redis.RedisError, OSError) as exc:
        raise StoreUnavailable(f"cannot read Redis at {redact_url(settings.effective_redis_url)}: {exc}") from exc
    dlq = DeadLetters(open_store(settings, client))
    sample, _ = dlq.page(Filter(), limit=DLQ_SAMPLE)
    queues = [
        {
            "queue": name,
            "ready": snapshot.depth[name],
            "delayed": snapshot.delayed[name],
            "in_flight": snapshot.in_flight[name],
            "oldest_age_seconds": round(snapshot.oldest_age[name], 3),
            "dlq": snapshot.dlq_depth[name],
            "dlq_oldest_age_seconds": round(snapshot.dlq_oldest_age[name], 3),
        }
        for name in sorted(snapshot.depth)
    ]
    running = [
        {"queue": queue, "actor": actor, "longest_seconds": round(seconds, 3)}
        for (queue, actor), seconds in sorted(snapshot.running_longest.items())
    ]
    return {
        "redis": {"url": redact_url(settings.effective_redis_url), **durability.as_dict()},
        "queues": queues,
        "workers_live": snapshot.workers_live,
        "running": running,
        "dlq": {
            "total": dlq.count(),
            "sampled": len(sample),
            "by_reason": dict(Counter(item["reason"] or "-" for item in sample).most_common()),
            "by_type": dict(Counter(item["type"] or "-" for item in sample).most_common()),
            "by_exception": dict(Counter(item["exception"] or "-" for item in sample).most_common(5)),
        },
    }


def render(status: dict[str, Any]) -> str:
    """The human-readable table."""
    lines = [f"{'QUEUE':12} {'READY':>7} {'DELAYED':>8} {'IN-FLIGHT':>10} {'LAG':>8} {'DLQ':>6} {'DLQ-OLDEST':>11}"]
    for q in status["queues"]:
        lines.append(
            f"{q['queue']:12} {q['ready']:>7} {q['delayed']:>8} {q['in_flight']:>10} "
            f"{_age(q['oldest_age_seconds']):>8} {q['dlq']:>6} {_age(q['dlq_oldest_age_seconds']):>11}"
        )
    lines.append("")
    lines.append(
        f"live workers: {status['workers_live']}" + ("   (none: nothing is consuming!)" * (not status["workers_live"]))
    )
    for r in status["running"]:
        lines.append(f"  running {r['actor']} on {r['queue']}: longest {_age(r['longest_seconds'])}")
    dlq = status["dlq"]
    lines.append(f"dead letters: {dlq['total']}")
    if dlq["total"]:
        scope = f" (newest {dlq['sampled']})" if dlq["sampled"] < dlq["total"] else ""
        for title, key in (("by reason", "by_reason"), ("by type", "by_type"), ("top exceptions", "by_exception")):
            lines.append(f"  {title}{scope}: " + ", ".join(f"{k} {v}" for k, v in dlq[key].items()))
        lines.append("  inspect: jobfleet dlq list; runbook: docs/runbooks/dlq.md")
    redis_state = status["redis"]
    verdict = {"ok": "ok (noeviction, AOF on)", "unsafe": "UNSAFE", "unverified": "NOT VERIFIED"}[
        redis_state["verdict"]
    ]
    lines.append(f"redis: {redis_state['url']} durability {verdict}")
    lines.extend(f"  ! {problem}" for problem in redis_state["problems"])
    return "\n".join(lines)


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    """Print the fleet's state (``--json`` for scripts); exit 1 when Redis cannot be read."""

    client = make_client(settings)
    try:
        status = collect(settings, client)
    finally:
        client.close()
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print(render(status))
        if status["redis"]["verdict"] != "ok":
            print("jobfleet: Redis may evict or lose queue data (see above)", file=sys.stderr)
    return 0


def register(sub: Any) -> None:
    """Add ``status`` to the ``jobfleet`` parser."""
    p = sub.add_parser("status", help="queues, lag, workers, dead letters and Redis durability at a glance")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)
