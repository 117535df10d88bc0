"""The retry policy in one place: which errors are transient, how long to back off, when to give up.

It speaks Dramatiq's retry vocabulary, each option resolved message -> actor -> jobfleet default: ``max_retries``,
``min_backoff`` and ``max_backoff`` (milliseconds, as in Dramatiq), ``retry_when(retries, exception)`` (replaces
``max_retries`` and the classification), ``throws`` (straight to the DLQ), ``on_retry_exhausted`` (an actor to
notify) and ``raise Retry(delay=ms)``. Without them jobfleet's own classification decides."""

from __future__ import annotations

import random
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dramatiq
import pydantic
import redis
from dramatiq.errors import Retry
from dramatiq.middleware.time_limit import TimeLimitExceeded

from jobfleet.core.errors import JobCancelled, PermanentError, TransientError
from jobfleet.core.states import DeadLetterReason
from jobfleet.store.delivery import option

TRANSIENT = "transient"
PERMANENT = "permanent"

# Checked in order; the first match wins. Anything unlisted is transient: a bug retried a bounded number of
# times costs little, while a dropped job that would have succeeded on retry costs a lost side effect.
_PERMANENT_TYPES: tuple[type[BaseException], ...] = (PermanentError, pydantic.ValidationError)
_TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    TransientError,
    TimeLimitExceeded,
    TimeoutError,
    socket.timeout,
    ConnectionError,
    redis.RedisError,
    Retry,
)

# Exception classes reported by name in metrics and dead letters; anything else is "other" in metric labels.
KNOWN_EXCEPTIONS = frozenset(t.__name__ for t in (*_PERMANENT_TYPES, *_TRANSIENT_TYPES, JobCancelled)) | {
    "WorkerLost",
    "PoisonMessage",
    "ResultNotSerializable",
    "ValueError",
    "KeyError",
    "TypeError",
    "RuntimeError",
    "OSError",
}


def classify(exc: BaseException) -> str:
    """Return TRANSIENT or PERMANENT for an exception raised by an attempt."""
    if isinstance(exc, _PERMANENT_TYPES):
        return PERMANENT
    return TRANSIENT


def exception_label(exc: BaseException | str) -> str:
    """A bounded label value for an exception class."""
    name = exc if isinstance(exc, str) else type(exc).__name__
    return name if name in KNOWN_EXCEPTIONS else "other"


@dataclass(frozen=True)
class Decision:
    """What happens after a failed attempt: a retry in ``delay_ms``, or the DLQ for ``reason``."""

    retry: bool
    delay_ms: int = 0
    reason: DeadLetterReason = "exhausted"
    #: The actor to notify that retries ran out (Dramatiq's on_retry_exhausted), when one is set.
    notify: str | None = None
    max_retries: int | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter between ``min_backoff_seconds`` and ``max_backoff_seconds``, at most
    ``max_retries`` retries: the defaults for every actor that sets none of Dramatiq's retry options."""

    max_retries: int = 5
    min_backoff_seconds: float = 5.0
    max_backoff_seconds: float = 600.0

    def decide(self, broker: dramatiq.Broker, message: Any, exc: BaseException, attempt: int) -> Decision:
        """The decision after attempt number ``attempt`` (1-based) of ``message`` failed with ``exc``."""
        throws = option(broker, message, "throws", None)
        if throws and isinstance(exc, throws):
            return Decision(False, reason="permanent")
        retries = attempt - 1  # retries so far, as Dramatiq counts them
        max_retries = int(option(broker, message, "max_retries", self.max_retries))
        retry_when: Callable[[int, BaseException], bool] | None = option(broker, message, "retry_when", None)
        if retry_when is not None:
            retry = bool(retry_when(retries, exc))
        else:
            retry = classify(exc) == TRANSIENT and retries < max_retries
        if not retry:
            permanent = retry_when is None and classify(exc) == PERMANENT
            notify = None if permanent else option(broker, message, "on_retry_exhausted", None)
            return Decision(
                False, reason="permanent" if permanent else "exhausted", notify=notify, max_retries=max_retries
            )
        if isinstance(exc, Retry) and exc.delay is not None:
            return Decision(True, delay_ms=int(exc.delay))
        return Decision(True, delay_ms=int(self.backoff_seconds(broker, message, attempt) * 1000))

    def backoff_seconds(self, broker: dramatiq.Broker, message: Any, attempt: int) -> float:
        """Delay before the retry that follows failed attempt ``attempt``: ``min·2^(attempt-1)``, jittered, capped."""
        low_ms = option(broker, message, "min_backoff", None)
        cap_ms = option(broker, message, "max_backoff", None)
        low = self.min_backoff_seconds if low_ms is None else low_ms / 1000
        cap = self.max_backoff_seconds if cap_ms is None else cap_ms / 1000
        cap = max(cap, low)
        base = min(cap, low * 2 ** max(0, attempt - 1))
        # "Equal jitter": at least half the exponential step, never below the minimum.
        return float(max(low, min(cap, base / 2 + random.uniform(0, base / 2))))
