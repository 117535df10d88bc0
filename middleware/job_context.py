"""The running job's context and the progress helper actors use (their only bookkeeping)."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from jobfleet.core.errors import JobCancelled

if TYPE_CHECKING:
    from jobfleet.store.jobs import JobStore


@dataclass
class JobContext:
    """What an actor may know about the job it runs."""

    job_id: str
    job_type: str
    #: ``<caller>:<Idempotency-Key>``, or the job id for jobs sent without a key (glossary: docs/ARCHITECTURE.md).
    scoped_key: str
    attempt: int
    #: The delivery's fencing token: progress reports of an attempt that lost its job are refused.
    token: int
    store: JobStore
    cancel_requested: bool = False
    # Set by the actor wrapper: Dramatiq warns about actors returning values without its Results backend.
    result: Any = None


_current: contextvars.ContextVar[JobContext | None] = contextvars.ContextVar("jobfleet_job", default=None)


def current_job() -> JobContext | None:
    """Return the context of the job running on this thread, if any."""
    return _current.get()


def set_current_job(ctx: JobContext | None) -> None:
    """Set (or clear) the job running on this thread; called by the lifecycle middleware."""
    _current.set(ctx)


def set_result(value: Any) -> None:
    """Hand the actor's return value to the lifecycle middleware (it becomes the job's result)."""
    ctx = _current.get()
    if ctx is not None:
        ctx.result = value


def report_progress(percent: int, message: str = "") -> None:
    """Record progress (0-100) for the running job; raise JobCancelled if an operator cancelled it, or if this
    attempt lost its job (its worker was presumed dead and the job runs elsewhere: stop, the other one counts)."""
    ctx = _current.get()
    if ctx is None:
        return
    percent = max(0, min(100, int(percent)))
    # A span event on the delivery's CONSUMER span (a no-op call when tracing records nothing).
    trace.get_current_span().add_event("progress", {"jobfleet.progress": percent, "jobfleet.message": message})
    verdict = ctx.store.progress(ctx.job_id, ctx.token, percent, message)
    if verdict < 0:
        raise JobCancelled(f"job {ctx.job_id}: this attempt ({ctx.attempt}) no longer holds the job; stopping it")
    if verdict:
        ctx.cancel_requested = True
        raise JobCancelled(f"job {ctx.job_id} was cancelled by an operator at {percent}% ({message})")
