"""JobLifecycle: runs each claimed attempt with its job context and decides how the delivery ends — succeeded,
retried (transient errors, backed off, bounded), dead-lettered (permanent or exhausted) or cancelled. The decision is
left on the message (state_of(message).outcome); the broker records it when the worker thread acks or nacks.

A dead-lettered delivery is also failed the Dramatiq way (``message.fail()``), so Dramatiq's Results stores the
exception and its nack hooks fire. Place it after Dramatiq's Callbacks, Pipelines and Results in the middleware list
(``after_*`` hooks run in reverse): they then see ``message.failed`` as set here."""

from __future__ import annotations

import json
from typing import Any

import dramatiq
import structlog
from dramatiq.middleware import Middleware

from jobfleet.core.errors import JobCancelled
from jobfleet.middleware.job_context import JobContext, current_job, set_current_job
from jobfleet.middleware.retry_policy import RetryPolicy
from jobfleet.store.delivery import Attempt, Claimed, DeliveryOutcome, option, state_of
from jobfleet.store.jobs import JobStore
from jobfleet.store.records import error_info

log = structlog.get_logger(__name__)


class ResultNotSerializable(Exception):
    """Raised (recorded) when an actor returns a value that cannot be stored as JSON: the attempt fails for good."""


def attempt_of(broker: dramatiq.Broker, message: Any, claimed: Claimed) -> Attempt:
    """What the observers know about the attempt ``claimed`` runs."""
    return Attempt(
        job_id=claimed.job_id,
        job_type=str(option(broker, message, "job_type", message.actor_name)),
        scoped_key=str(message.options.get("idempotency_key") or claimed.job_id),
        token=claimed.token,
        attempt=claimed.attempt,
        started=claimed.started_ms / 1000,
        enqueued_at=claimed.enqueued_ms / 1000 if claimed.enqueued_ms else None,
        ready_at=claimed.due_ms / 1000 if claimed.due_ms else None,
    )


class JobLifecycle(Middleware):
    """Decides every delivery's outcome under the retry policy (see the module docstring)."""

    # jobfleet's own option, and Dramatiq's retry vocabulary (its Retries middleware is replaced by this one).
    actor_options = {  # noqa: RUF012
        "job_type",
        "max_retries",
        "min_backoff",
        "max_backoff",
        "retry_when",
        "throws",
        "on_retry_exhausted",
    }

    def __init__(self, *, store: JobStore, policy: RetryPolicy) -> None:
        self.store = store
        self.policy = policy

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        """Called before the actor runs: the attempt (claimed by the broker) gets its job context."""
        state = state_of(message)
        if state.claimed is None:  # not delivered by jobfleet's broker (a unit test's StubBroker): nothing to guard
            return
        attempt = state.attempt = attempt_of(broker, message, state.claimed)
        set_current_job(
            JobContext(attempt.job_id, attempt.job_type, attempt.scoped_key, attempt.attempt, attempt.token, self.store)
        )

    def after_process_message(
        self, broker: dramatiq.Broker, message: Any, *, result: Any = None, exception: BaseException | None = None
    ) -> None:
        """Called after the actor ran: decide succeeded, retrying, dead or cancelled."""
        state = state_of(message)
        job = current_job()
        set_current_job(None)
        attempt = state.attempt
        if attempt is None:
            if state.claimed is None:
                return
            attempt = state.attempt = attempt_of(broker, message, state.claimed)  # a before hook refused
        if exception is None:
            if result is None and job is not None:
                result = job.result
            try:
                json.dumps(result)
            except (TypeError, ValueError) as exc:
                exception = ResultNotSerializable(
                    f"the actor returned a {type(result).__name__} that cannot be stored as JSON ({exc}); return "
                    "JSON-serialisable values (dict, list, str, number, bool, None)"
                )
            else:
                state.outcome = DeliveryOutcome("succeeded", attempt, result=result)
                return
        error = error_info(exception)
        if isinstance(exception, JobCancelled):
            state.outcome = DeliveryOutcome("cancelled", attempt, exception, error=error)
            return
        if isinstance(exception, ResultNotSerializable):
            self._dead(message, attempt, exception, error, "permanent")
            return
        decision = self.policy.decide(broker, message, exception, attempt.attempt)
        if decision.retry:
            state.outcome = DeliveryOutcome(
                "retrying", attempt, exception, error=error, retry_delay_ms=decision.delay_ms
            )
            return
        self._dead(message, attempt, exception, error, decision.reason)
        if decision.notify:
            broker.get_actor(decision.notify).send(
                message.asdict(), {"retries": attempt.attempt - 1, "max_retries": decision.max_retries}
            )

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        """Called when a middleware skipped the delivery: a failed skip (AgeLimit) is dead, any other is cancelled,
        so the job never stays ``running``."""
        state = state_of(message)
        set_current_job(None)
        if state.claimed is None or state.outcome is not None:
            return
        attempt = state.attempt or attempt_of(broker, message, state.claimed)
        exception = message._exception or RuntimeError("a middleware skipped this delivery")
        error = error_info(exception)
        if message.failed:
            state.outcome = DeliveryOutcome("dead", attempt, exception, error=error, reason="permanent")
        else:
            state.outcome = DeliveryOutcome("cancelled", attempt, exception, error=error)

    def _dead(
        self, message: Any, attempt: Attempt, exception: BaseException, error: dict[str, Any], reason: Any
    ) -> None:
        message.fail()  # Dramatiq's way: nack, Results stores the exception
        message.stuff_exception(exception)
        state_of(message).outcome = DeliveryOutcome("dead", attempt, exception, error=error, reason=reason)
        log.warning("job dead-lettered", job_id=attempt.job_id, reason=reason, error=error["type"])
