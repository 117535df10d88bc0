"""REDIS_URL: one convention for a single node, Sentinel and Cluster (README "Redis topology"), parsed and checked in
one place, and printed with its password masked."""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import unquote

from jobfleet.core.errors import ConfigError

SENTINEL_PORT = 26379
TOPOLOGIES = {  # the URL of each multi-node topology, as error messages show it
    "sentinel": "redis+sentinel://[user:password@]host1:26379,host2:26379/<master-name>[/<db>]",
    "cluster": "redis+cluster://[user:password@]host1:7000,host2:7001",
}


@dataclass(frozen=True)
class RedisTopology:
    """REDIS_URL taken apart: single node (redis-py parses the URL itself), Sentinel or Cluster."""

    kind: str  # "single", "sentinel" or "cluster"
    tls: bool
    nodes: tuple[tuple[str, int], ...] = ()  # the sentinels, or the cluster's startup nodes
    master_name: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None


def parse_redis_url(raw: str, name: str = "REDIS_URL") -> RedisTopology:
    """Take a Redis URL apart; raise ConfigError naming ``name`` and saying how to write a bad one."""
    shown = f"{name}={redact_url(raw)!r}"
    scheme, sep, rest = raw.partition("://")
    base, plus, kind = scheme.partition("+")
    if not sep or base not in {"redis", "rediss", "unix"} or (plus and (base == "unix" or kind not in TOPOLOGIES)):
        raise ConfigError(
            f"{shown} must start with redis://, rediss:// or unix:// (one node), redis+sentinel:// "
            "or redis+cluster:// (rediss+sentinel://, rediss+cluster:// for TLS)"
        )
    if not plus:
        return RedisTopology("single", tls=base == "rediss")
    example = TOPOLOGIES[kind]
    if "?" in rest or "#" in rest:
        raise ConfigError(f"{shown}: {scheme}:// takes no ?options; write {example}")
    userinfo, _, hostpart = rest.rpartition("@")
    hosts, _, path = hostpart.partition("/")
    nodes = tuple(_node(shown, entry, kind, example) for entry in hosts.split(","))
    username, _, password = userinfo.partition(":")
    topology = RedisTopology(
        kind, base == "rediss", nodes, username=unquote(username) or None, password=unquote(password) or None
    )
    if kind == "cluster":
        if path not in {"", "0"}:
            raise ConfigError(f"{shown}: Redis Cluster has only database 0, drop '/{path}'; write {example}")
        return topology
    master, _, db = path.partition("/")
    if not master:
        raise ConfigError(f"{shown} lacks the master name the sentinels monitor; write {example}")
    if db and not (db.isdigit() and db.isascii()):
        raise ConfigError(f"{shown}: the database after the master name must be a number, not {db!r}; write {example}")
    return replace(topology, master_name=unquote(master), db=int(db or 0))


def _node(shown: str, entry: str, kind: str, example: str) -> tuple[str, int]:
    """``(host, port)`` of one ``host:port`` (or ``[v6]:port``) in a Sentinel or Cluster URL."""
    if entry.startswith("["):
        host, _, port = entry[1:].partition("]")
        port = port.removeprefix(":")
    else:
        host, _, port = entry.rpartition(":") if ":" in entry else (entry, "", "")
    if not host:
        raise ConfigError(f"{shown} has an empty host in its node list; write {example}")
    if not port and kind == "sentinel":
        return host, SENTINEL_PORT
    if not port:
        raise ConfigError(f"{shown}: cluster node {host!r} has no port; write {example}")
    if not (port.isdigit() and port.isascii() and 0 < int(port) < 65536):
        raise ConfigError(f"{shown}: node {host!r} has port {port!r}, not a number in 1-65535; write {example}")
    return host, int(port)


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` so it can be logged."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    userinfo, _, host = rest.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user + ':' if user else ':'}***@{host}"
