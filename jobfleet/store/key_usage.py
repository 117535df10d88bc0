"""When each API key was last used: one Redis hash, key id -> Redis time (ms), written by the API at most once a
minute per key per process and read by `jobfleet keys list` (is a key about to be revoked still in use?)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import cast

import redis

from jobfleet.store.keys import Keys
from jobfleet.store.scripts import redis_errors, script_source

log = logging.getLogger("jobfleet.auth")

WRITE_INTERVAL_SECONDS = 60.0


class KeyUsage:
    """Records the uses of API keys, throttled per key, never failing the request that used one."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        interval: float = WRITE_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keys = keys
        self._interval = interval
        self._clock = clock
        self._written: dict[str, float] = {}  # key id -> when this process last wrote it (its clock)
        self._script = client.register_script(script_source("key_used"))

    def touch(self, key_id: str) -> None:
        """Record that ``key_id`` was used now, unless this process did within the interval; errors are logged."""
        now = self._clock()
        last = self._written.get(key_id)
        if last is not None and now - last < self._interval:
            return
        # Noted before the write: with Redis down each key costs one failed call a minute, not one per request.
        self._written[key_id] = now
        try:
            self._script(keys=[self.keys.keys_last_used()], args=[key_id])
        except (redis.RedisError, OSError) as exc:
            log.warning("could not record the last use of API key %s (%s): %s", key_id, type(exc).__name__, exc)


def last_used(client: redis.Redis, keys: Keys) -> dict[str, int]:
    """Key id -> when it was last used (Redis time, ms), for every key used since the hash exists."""
    with redis_errors("read key usage"):
        raw = cast(dict[bytes, bytes], client.hgetall(keys.keys_last_used()))
    return {k.decode(): int(v) for k, v in raw.items()}
