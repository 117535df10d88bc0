"""The Redis jobfleet ships (deploy/ and the embedded one) keeps the ledger and queues across restarts."""

from __future__ import annotations

from pathlib import Path

from jobfleet.ops.embedded_redis import REQUIRED_CONFIG

ROOT = Path(__file__).parent.parent


def _directives(text: str) -> dict[str, str]:
    pairs = (line.split(None, 1) for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return {k: v.strip() for k, v in pairs}


def test_deploy_redis_conf_enables_aof_and_never_evicts() -> None:
    conf = _directives((ROOT / "deploy" / "redis" / "redis.conf").read_text())
    assert conf["appendonly"] == "yes"
    assert conf["maxmemory-policy"] == "noeviction"


def test_embedded_redis_runs_with_the_same_settings() -> None:
    flags = dict(zip(REQUIRED_CONFIG[::2], REQUIRED_CONFIG[1::2], strict=True))
    assert flags["--appendonly"] == "yes"
    assert flags["--maxmemory-policy"] == "noeviction"
