"""The retry policy in one place: which errors are transient, how long to back off, when to give up."""

from __future__ import annotations

import random
import socket
from dataclasses import dataclass

import pydantic
import redis
from dramatiq.middleware.time_limit import TimeLimitExceeded

from jobfleet.core.errors import JobCancelled, LeaseHeld, LedgerUnavailable, PermanentError, TransientError

TRANSIENT = "transient"
PERMANENT = "permanent"

# Checked in order; the first match wins. Anything unlisted is transient: a bug retried a bounded number of
# times costs little, while a dropped job that would have succeeded on retry costs a lost side effect.
_PERMANENT_TYPES: tuple[type[BaseException], ...] = (
    PermanentError,
    pydantic.ValidationError,
    TypeError,
)
_TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    TransientError,
    TimeLimitExceeded,
    TimeoutError,
    socket.timeout,
    ConnectionError,
    redis.RedisError,
    LeaseHeld,
    LedgerUnavailable,
)

# Exception classes reported by name in metrics and dead letters; anything else is "other" in metric labels.
KNOWN_EXCEPTIONS = frozenset(t.__name__ for t in (*_PERMANENT_TYPES, *_TRANSIENT_TYPES, JobCancelled)) | {
    "WorkerLost",
    "PoisonMessage",
    "ValueError",
    "KeyError",
    "RuntimeError",
    "OSError",
}


def classify(exc: BaseException) -> str:
    """Return TRANSIENT or PERMANENT for an exception raised by an attempt."""
    if isinstance(exc, TimeLimitExceeded):
        return TRANSIENT
    if isinstance(exc, _PERMANENT_TYPES):
        return PERMANENT
    return TRANSIENT


def exception_label(exc: BaseException | str) -> str:
    """A bounded label value for an exception class."""
    name = exc if isinstance(exc, str) else type(exc).__name__
    return name if name in KNOWN_EXCEPTIONS else "other"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter between ``min_backoff`` and ``max_backoff``, at most ``max_retries``."""

    max_retries: int = 5
    min_backoff_seconds: float = 5.0
    max_backoff_seconds: float = 600.0

    def should_retry(self, exc: BaseException, attempt: int, max_retries: int | None = None) -> bool:
        """True when attempt number ``attempt`` (1-based) failed with a transient error and retries remain."""
        limit = self.max_retries if max_retries is None else max_retries
        return classify(exc) == TRANSIENT and attempt <= limit

    def backoff_seconds(
        self, attempt: int, *, min_backoff: float | None = None, max_backoff: float | None = None
    ) -> float:
        """Delay before the retry that follows failed attempt ``attempt``: ``min·2^(attempt-1)``, jittered, capped."""
        low = self.min_backoff_seconds if min_backoff is None else min_backoff
        cap = self.max_backoff_seconds if max_backoff is None else max_backoff
        base = min(cap, low * 2 ** max(0, attempt - 1))
        # "Equal jitter": at least half the exponential step, never below the minimum.
        return float(max(low, min(cap, base / 2 + random.uniform(0, base / 2))))
