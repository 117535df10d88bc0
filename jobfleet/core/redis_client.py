"""One way to open a Redis client (single node, Sentinel or Cluster): bounded timeouts and health checks, so an
outage fails fast, and an explicit number of retries, so a non-idempotent script is never re-sent unasked."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, cast

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException
from redis.retry import Retry
from redis.sentinel import Sentinel

from jobfleet.core.errors import ConfigError
from jobfleet.core.redis_url import RedisTopology, parse_redis_url, redact_url
from jobfleet.core.settings import Settings

HEALTH_CHECK_SECONDS = 15


def make_client(settings: Settings, *, timeout: float | None = None, retries: int = 1) -> redis.Redis:
    """A client for ``settings.effective_redis_url`` whose calls fail within the configured timeout.

    ``retries`` is how often a command is sent again after a ConnectionError or TimeoutError: such a command may
    have run already, so ask for ``retries=0`` for anything not idempotent (EVALSHA of a state-changing script).
    """
    if retries < 0:
        raise ValueError(f"retries={retries} must be >= 0")
    seconds = settings.redis_timeout_seconds if timeout is None else timeout
    url = settings.effective_redis_url
    topology = parse_redis_url(url)
    common: dict[str, Any] = {
        "socket_timeout": seconds,
        "socket_connect_timeout": seconds,
        "health_check_interval": HEALTH_CHECK_SECONDS,
        **_password(settings),
        **(_tls(settings) if topology.tls else {}),
    }
    # redis-py's default retries with backoff up to 10 s would stretch an outage into hanging requests;
    # one quick retry absorbs a dropped connection, callers decide the rest. The errors are spelled out because
    # they are what redis-py 8 retries anyway (TimeoutError too, whatever the deprecated retry_on_timeout says).
    retry = Retry(
        ExponentialBackoff(cap=0.2, base=0.05),
        retries=retries,
        supported_errors=(redis.ConnectionError, redis.TimeoutError, socket.timeout),
    )
    if topology.kind == "sentinel":
        return _sentinel_client(topology, common, retry)
    if topology.kind == "cluster":
        return _cluster_client(topology, common, retry)
    if topology.tls:  # the rediss:// scheme picks redis-py's SSL connection; it takes no ssl=True
        del common["ssl"]
    return redis.Redis.from_url(url, retry=retry, **common)


def describe_topology(url: str) -> str:
    """Where ``url`` connects, in one line for logs; never the password."""
    topology = parse_redis_url(url)
    if topology.kind == "single":
        return f"single node {redact_url(url.partition('?')[0])}"
    return _describe(topology)


def _describe(topology: RedisTopology) -> str:
    """A Sentinel or Cluster topology in one line, without its password."""
    nodes = ",".join(f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in topology.nodes)
    who = f" as {topology.username}" if topology.username else ""
    tls = " over TLS" if topology.tls else ""
    if topology.kind == "sentinel":
        return f"Sentinel master {topology.master_name!r} db {topology.db} via sentinels {nodes}{who}{tls}"
    return f"Cluster via startup nodes {nodes}{who}{tls}"


class SentinelRedis(redis.Redis):
    """The primary's client from ``Sentinel.master_for``; ``close()`` also closes the sentinel connections."""

    def close(self) -> None:
        """Close the connections to the primary and to the sentinels."""
        super().close()
        manager: Sentinel | None = getattr(self.connection_pool, "sentinel_manager", None)
        if manager is not None:
            manager.close()


def _sentinel_client(topology: RedisTopology, common: dict[str, Any], retry: Retry) -> redis.Redis:
    """The primary's client: each new connection asks the sentinels where the primary is now.

    A READONLY reply (the primary was demoted) is turned into a ConnectionError by redis-py's
    SentinelManagedConnection, which also drops the connection: the next call (or retry) finds the new primary.
    """
    auth = _auth(topology, common)
    # Sentinels share the timeouts, TLS and credentials; each is asked in turn, so none is retried on its own.
    sentinel_kwargs = common | auth | {"retry": Retry(NoBackoff(), 0)}
    # redis-py leaves Sentinel, master_for and ClusterNode unannotated.
    sentinel = Sentinel(list(topology.nodes), sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
    client: SentinelRedis = sentinel.master_for(  # type: ignore[no-untyped-call]
        topology.master_name, redis_class=SentinelRedis, db=topology.db, retry=retry, **common, **auth
    )
    return client


def _cluster_client(topology: RedisTopology, common: dict[str, Any], retry: Retry) -> redis.Redis:
    """A RedisCluster over the startup nodes: it follows MOVED/ASK and refreshes the slot map after an error.

    RedisCluster has the command API of redis.Redis but is no subclass of it: it is returned as one so callers
    keep a single client type (no SELECT; multi-key commands, scripts and transactions within one hash slot).
    """
    nodes = [ClusterNode(host, port) for host, port in topology.nodes]  # type: ignore[no-untyped-call]
    # RedisCluster silently drops health_check_interval (not among its per-node options): say so, don't pass it.
    # Its ``retry`` only counts cluster-level attempts (each after a slot-map refresh, without backoff).
    kwargs = {key: value for key, value in common.items() if key != "health_check_interval"}
    try:
        client = RedisCluster(startup_nodes=nodes, retry=retry, **kwargs, **_auth(topology, common))
    except RedisClusterException as exc:  # raised while it reads the slot map; not a redis.RedisError
        raise redis.ConnectionError(f"{_describe(topology)}: {exc}") from exc
    return cast(redis.Redis, client)


def _auth(topology: RedisTopology, common: dict[str, Any]) -> dict[str, Any]:
    """The URL's user and password, the password file's password winning (one set for every node)."""
    auth: dict[str, Any] = {}
    if topology.username:
        auth["username"] = topology.username
    if topology.password and "password" not in common:
        auth["password"] = topology.password
    return auth


def _password(settings: Settings) -> dict[str, str]:
    """``{"password": ...}`` from JOBFLEET_REDIS_PASSWORD_FILE when set."""
    if not settings.redis_password_file:
        return {}
    # A password in a file (a mounted secret) keeps it out of REDIS_URL, process listings and env dumps;
    # the user (ACL) still comes from the URL: rediss://jobfleet@redis:6380/0.
    try:
        return {"password": Path(settings.redis_password_file).read_text().strip()}
    except OSError as exc:
        raise ConfigError(f"JOBFLEET_REDIS_PASSWORD_FILE cannot be read: {exc.strerror}") from None


def _tls(settings: Settings) -> dict[str, Any]:
    """TLS options: verify the server's certificate (and its name) against the CAs."""
    tls: dict[str, Any] = {"ssl": True, "ssl_cert_reqs": "required"}
    if settings.redis_ca_file:
        tls["ssl_ca_certs"] = settings.redis_ca_file
    return tls
