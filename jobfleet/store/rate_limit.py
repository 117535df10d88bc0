"""Per-caller rate limit (per client address for requests without a valid key): a token bucket in Redis, one script
call per request."""

from __future__ import annotations

import redis

from jobfleet.core.errors import RateLimited
from jobfleet.store.keys import Keys
from jobfleet.store.scripts import redis_errors, script_source


class Admission:
    """Decides whether a request may proceed under the caller's rate limit; raises RateLimited or
    StoreUnavailable. (Queue depth is enforced by the submit script, atomically with the enqueue.)"""

    def __init__(self, client: redis.Redis, keys: Keys, *, rate_per_second: float, burst: int) -> None:
        self.keys = keys
        self.rate = rate_per_second
        self.burst = burst
        self._script = client.register_script(script_source("admit"))

    def admit(self, caller: str) -> None:
        """Take one token from ``caller``'s bucket (no Redis call when no rate limit is configured)."""
        self._take(self.keys.rate_bucket(caller), f"caller {caller!r}")

    def admit_address(self, address: str) -> None:
        """Take one token from the bucket of requests without a valid key from client ``address``."""
        self._take(self.keys.rate_bucket_of_address(address), f"client address {address!r} (without a valid key)")

    def _take(self, bucket: str, who: str) -> None:
        if self.rate <= 0:
            return
        with redis_errors("admission"):
            verdict, value = self._script(keys=[bucket], args=[self.rate, self.burst])
        if verdict.decode() == "rate":
            seconds = int(value) / 1000
            raise RateLimited(
                f"{who} exceeded {self.rate:g} requests/s (burst {self.burst}); retry in {seconds:.2f}s",
                retry_after=seconds,
            )
