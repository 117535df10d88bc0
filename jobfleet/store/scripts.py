"""The Lua scripts (jobfleet/store/lua/) as a client calls them, and the one translation of Redis failures into
StoreUnavailable: every error class is named on purpose (timeouts, OOM, READONLY, LOADING, BUSY, connection loss)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import Any

import redis
from redis.commands.core import Script

from jobfleet.core.errors import StoreUnavailable

#: Every script jobfleet runs; all but the standalone ones get lib.lua prepended (Redis scripts cannot include one
#: another).
SCRIPTS = (
    "submit",
    "fetch",
    "finish",
    "release",
    "drain",
    "reconcile",
    "recover",
    "heartbeat",
    "progress",
    "cancel",
    "replay",
    "purge",
    "snapshot",
    "admit",
    "key_used",
)
_STANDALONE = frozenset({"admit", "key_used"})


def script_source(name: str) -> str:
    """The Lua source of script ``name`` as sent to Redis."""
    folder = resources.files("jobfleet.store") / "lua"
    source = (folder / f"{name}.lua").read_text()
    return source if name in _STANDALONE else (folder / "lib.lua").read_text() + "\n" + source


# Redis error replies by their first word, for the ones redis-py does not give a class of their own.
_REPLY_KINDS = {"OOM": "oom", "BUSY": "busy", "READONLY": "readonly", "MASTERDOWN": "readonly", "LOADING": "loading"}


def failure_kind(exc: redis.RedisError) -> str:
    """Which kind of Redis failure ``exc`` is (see StoreUnavailable)."""
    if isinstance(exc, redis.TimeoutError):
        return "timeout"
    if isinstance(exc, redis.exceptions.BusyLoadingError):
        return "loading"
    if isinstance(exc, redis.exceptions.ReadOnlyError):
        return "readonly"
    if isinstance(exc, redis.exceptions.OutOfMemoryError):
        return "oom"
    if isinstance(exc, redis.ConnectionError):
        return "connection"
    return _REPLY_KINDS.get(str(exc).split(" ", 1)[0], "error")


@contextmanager
def redis_errors(operation: str) -> Iterator[None]:
    """Turn any Redis failure inside the block into StoreUnavailable naming the operation and the kind."""
    try:
        yield
    except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:
        # RedisClusterException (a slot map that cannot be read, a slot no node serves) is no RedisError.
        kind = failure_kind(exc) if isinstance(exc, redis.RedisError) else "connection"
        raise StoreUnavailable(f"Redis {operation} failed ({kind}): {type(exc).__name__}: {exc}", kind) from exc


class Scripts:
    """The scripts registered on one client; ``call`` runs one by name (EVALSHA, loading it on NOSCRIPT)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._scripts: dict[str, Script] = {name: client.register_script(script_source(name)) for name in SCRIPTS}

    def call(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run script ``name``; raise StoreUnavailable when Redis fails. Never retried here: callers retry only
        scripts that are idempotent (all but fetch, and finish when it takes the next job)."""
        with redis_errors(name):
            return self._scripts[name](keys=list(keys), args=list(args))

    def call_and_wait(self, name: str, keys: Sequence[str], args: Sequence[Any], replicas: int, timeout_ms: int) -> Any:
        """Run script ``name`` and then WAIT for ``replicas`` replicas to have its writes, on the same connection
        (WAIT counts the writes of its own connection) of the node that holds ``keys``; return (reply, replicas
        that acknowledged). Raise StoreUnavailable when Redis fails."""
        node = self.client
        if hasattr(self.client, "get_node_from_key"):  # Redis Cluster: the master of the keys' slot
            node = self.client.get_redis_connection(self.client.get_node_from_key(keys[0]))  # type: ignore[attr-defined]
        with redis_errors(name), node.pipeline(transaction=False) as pipe:
            self._scripts[name](keys=list(keys), args=list(args), client=pipe)
            pipe.execute_command("WAIT", replicas, timeout_ms)  # type: ignore[no-untyped-call]
            reply, acknowledged = pipe.execute()
        return reply, int(acknowledged)
