"""What ``jobfleet run`` and ``jobfleet stack`` share: which Redis the fleet uses (REDIS_URL, else a server already
listening on JOBFLEET_LOCAL_REDIS_PORT, else an embedded one started with AOF), its durability check, and the
command line and environment of each fleet component (API, worker fleet, queue exporter)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import redis

from jobfleet.core.errors import ConfigError
from jobfleet.core.net import is_loopback_host
from jobfleet.core.redis_check import DurabilityCheck, check_durability
from jobfleet.core.redis_client import make_client
from jobfleet.core.redis_url import redact_url
from jobfleet.core.settings import Settings
from jobfleet.ops.embedded_redis import port_open, start_redis

# The processes of the fleet; each runs as `jobfleet <name>`.
COMPONENTS = ("api", "worker", "exporter")

Origin = Literal["REDIS_URL", "listening", "embedded"]


class RedisUnreachable(RuntimeError):
    """Raised when the fleet's Redis does not answer its durability check."""


@dataclass(frozen=True)
class FleetRedis:
    """The Redis the fleet uses and where it came from; ``proc`` is the embedded server the caller must stop."""

    url: str
    origin: Origin
    proc: subprocess.Popen[bytes] | None = None
    data_dir: Path | None = None  # the embedded server's AOF and redis.log


def find_or_start_redis(settings: Settings, data_dir: Path) -> FleetRedis:
    """REDIS_URL, else the server listening on JOBFLEET_LOCAL_REDIS_PORT, else an embedded one started now with its
    data in ``data_dir/redis``."""
    url = settings.effective_redis_url
    if settings.redis_url:
        return FleetRedis(url, "REDIS_URL")
    if port_open("127.0.0.1", settings.local_redis_port):
        return FleetRedis(url, "listening")  # someone else's Redis: used, never stopped by us
    redis_dir = data_dir / "redis"
    return FleetRedis(url, "embedded", start_redis(redis_dir, settings.local_redis_port), redis_dir)


def check_redis(
    settings: Settings, url: str, check: Callable[[redis.Redis], DurabilityCheck] = check_durability
) -> DurabilityCheck:
    """Run ``check`` (check_durability, or warn_if_unsafe to log the verdict) against the Redis at ``url``;
    RedisUnreachable when that Redis does not answer."""
    client = make_client(replace(settings, redis_url=url))
    try:
        return check(client)
    except (redis.RedisError, OSError) as exc:
        raise RedisUnreachable(f"Redis at {redact_url(url)} does not answer: {exc}") from exc
    finally:
        client.close()


def component_argv(name: str) -> list[str]:
    """The command that runs fleet component ``name`` (api, worker or exporter) with this interpreter."""
    if name not in COMPONENTS:
        raise ValueError(f"unknown fleet component {name!r}: use one of {', '.join(COMPONENTS)}")
    return [sys.executable, "-m", "jobfleet.ops.cli", name]


def component_env(environ: Mapping[str, str], redis_url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of every fleet component: ``environ`` and ``extra``, pointed at the fleet's Redis."""
    return {**environ, "REDIS_URL": redis_url, **(extra or {})}


def api_env(settings: Settings) -> dict[str, str]:
    """JOBFLEET_AUTH=disabled for the API `run`/`stack` start on loopback without keys; ConfigError off loopback."""
    if settings.auth != "auto" or settings.api_keys_file:
        return {}
    # Here JOBFLEET_API_HOST is the real bind: the API is `jobfleet api`, which passes it to granian's --host.
    if not is_loopback_host(settings.api_host):
        raise ConfigError(
            f"JOBFLEET_API_HOST={settings.api_host!r} is not loopback and no JOBFLEET_API_KEYS_FILE is set: issue "
            "keys with `jobfleet keys issue` and set JOBFLEET_API_KEYS_FILE, or set JOBFLEET_AUTH=disabled if you "
            "really mean to serve without auth"
        )
    return {"JOBFLEET_AUTH": "disabled"}


def reachable_host(bind_host: str) -> str:
    """The address to dial on this machine for a server bound to ``bind_host`` (a wildcard means 127.0.0.1)."""
    return "127.0.0.1" if bind_host in {"", "0.0.0.0", "::", "[::]"} else bind_host  # noqa: S104 - mapping, not binding
