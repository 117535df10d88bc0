"""The one exception tree of jobfleet. Actors raise TransientError/PermanentError; the rest is plumbing."""

from __future__ import annotations

from dramatiq.errors import BrokerConnectionError
from dramatiq.middleware import MiddlewareError


class JobfleetError(Exception):
    """Base class of every exception jobfleet raises on purpose."""


class ConfigError(JobfleetError):
    """Raised when a setting is missing or invalid; the message names the variable to fix."""


class TransientError(JobfleetError):
    """Raised by an actor when the failure may go away on its own (timeouts, 5xx): the job is retried."""


class PermanentError(JobfleetError):
    """Raised by an actor when retrying cannot help (4xx, invalid input): the job goes to the DLQ at once."""


class JobCancelled(JobfleetError):
    """Raised inside an actor by the progress helper when an operator cancelled the running job."""


class StoreUnavailable(JobfleetError, BrokerConnectionError):
    """Raised when Redis cannot be reached or answers with an error; the API turns it into a 503.

    ``kind`` says which: ``timeout`` (no answer in time: the call may or may not have run), ``connection`` (lost or
    refused), ``oom`` (Redis is full under noeviction: nothing was written), ``readonly`` (a demoted primary),
    ``loading`` (Redis is loading its data set), ``busy`` (a script is running too long) or ``error``. A Dramatiq
    BrokerConnectionError too, so Dramatiq's consumer threads restart on it instead of dying."""

    def __init__(self, message: str, kind: str = "error") -> None:
        super().__init__(message)  # type: ignore[no-untyped-call]  # dramatiq's DramatiqError is untyped
        self.kind = kind


class JobNotFound(JobfleetError):
    """Raised when a job id (or dead letter id) is unknown or its record has expired."""


class InvalidTransition(JobfleetError):
    """Raised when an operation does not apply to the job's current state (e.g. cancelling a finished job)."""

    def __init__(self, message: str, state: str) -> None:
        super().__init__(message)
        self.state = state


class IdempotencyConflict(JobfleetError):
    """Raised when an Idempotency-Key is reused with a different request body."""

    def __init__(self, message: str, job_id: str) -> None:
        super().__init__(message)
        self.job_id = job_id


class QuotaExceeded(JobfleetError):
    """Raised when a caller is at one of its quotas (outstanding jobs, delayed jobs, stored bytes); the API answers
    429 and accepts nothing."""

    def __init__(self, message: str, limit: str, retry_after: float) -> None:
        super().__init__(message)
        self.limit = limit
        self.retry_after = retry_after


class NotReplicated(JobfleetError):
    """Raised when an accepted job was not confirmed by JOBFLEET_ACCEPT_REPLICAS replicas in time; the API answers 503
    and the job exists (a retry with the same Idempotency-Key gets it back)."""

    def __init__(self, message: str, job_id: str) -> None:
        super().__init__(message)
        self.job_id = job_id


class RateLimited(JobfleetError):
    """Raised when a caller has used up its request budget (token bucket); the API answers 429."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QueueFull(JobfleetError):
    """Raised when a queue holds JOBFLEET_MAX_QUEUE_DEPTH messages; the API answers 503 and accepts nothing."""

    def __init__(self, message: str, queue: str, retry_after: float) -> None:
        super().__init__(message)
        self.queue = queue
        self.retry_after = retry_after


class LeaseHeld(MiddlewareError):
    """Raised before an actor runs when another live worker holds the job's idempotency lease: retry later."""


class LedgerUnavailable(MiddlewareError):
    """Raised before an actor runs when the idempotency ledger cannot be read: fail closed, retry later."""
