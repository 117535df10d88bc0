"""Tracing: W3C trace context through the queue, a CONSUMER span per delivery, and the ids in every log line.

``before_enqueue`` injects ``traceparent`` into the message options unless one is already there (retries and the
delayed-queue handoff re-enqueue the same message with no active span). ``before_process_message`` extracts it
and starts the delivery's span (first in the middleware list, so it wraps everything); the ``after_*`` hooks
record the outcome JobLifecycle left on the message and end it. A replayed dead letter starts a new trace linked
to the original one (``replay_of``)."""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dramatiq
import structlog
from dramatiq.common import q_name
from dramatiq.middleware import Middleware
from opentelemetry import context, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from jobfleet.store.delivery import DeliveryOutcome, state_of

_PROPAGATOR = TraceContextTextMapPropagator()


def inject(carrier: dict[str, Any]) -> None:
    """Write the current span's ``traceparent`` (and ``tracestate``) into ``carrier``."""
    _PROPAGATOR.inject(carrier)


def span_ids(span: trace.Span) -> dict[str, str]:
    """``trace_id`` and ``span_id`` of ``span`` as hex, or {} for an invalid (no-op) span."""
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return {}
    return {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}


@dataclass(slots=True)
class _SpanScope:
    """What ``before_process_message`` opened for one delivery and ``_end`` closes."""

    span: trace.Span
    context_token: contextvars.Token[context.Context]
    log_tokens: Mapping[str, contextvars.Token[Any]]
    attempt_tokens: Mapping[str, contextvars.Token[Any]] | None = None


class Tracing(Middleware):
    """Propagates trace context through messages and wraps each delivery in a CONSUMER span."""

    def __init__(self, *, tracer_provider: trace.TracerProvider | None = None) -> None:
        # The global provider is a proxy until the entry point installs one, so resolving it here is fine.
        provider = tracer_provider or trace.get_tracer_provider()
        self.tracer = provider.get_tracer("jobfleet.worker")

    def before_enqueue(self, broker: dramatiq.Broker, message: Any, delay: int | None) -> None:
        """Called before a message is written: carry the current trace, never replace one already there."""
        if "traceparent" not in message.options:
            inject(message.options)

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        """Called first for a delivery: start its CONSUMER span under the enqueuer's trace; bind log context."""
        options, job_id, actor = message.options, message.message_id, message.actor_name
        parent = _PROPAGATOR.extract(options)
        links: list[Link] = []
        replay_of = options.get("replay_of")
        if replay_of:
            original = trace.get_current_span(_PROPAGATOR.extract({"traceparent": replay_of})).get_span_context()
            if original.is_valid:
                links.append(Link(original, {"jobfleet.link": "replay_of"}))
            parent = context.Context()
        queue = q_name(message.queue_name)
        span = self.tracer.start_span(
            f"process {queue}",
            context=parent,
            kind=SpanKind.CONSUMER,
            links=links,
            attributes={
                "messaging.system": "dramatiq",
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "messaging.destination.name": queue,
                "messaging.message.id": job_id,
                "jobfleet.job_id": job_id,
                "jobfleet.actor": actor,
                "jobfleet.replay": bool(replay_of),
            },
        )
        token = context.attach(trace.set_span_in_context(span))
        # Unsampled spans still carry real ids (see build_tracer_provider): log lines name them either way.
        log_tokens = structlog.contextvars.bind_contextvars(**span_ids(span), job_id=job_id, actor=actor, queue=queue)
        state_of(message).span_scope = _SpanScope(span, token, log_tokens)

    def attempt_started(self, message: Any, attempt: Any) -> None:
        """AttemptStarted listener: the attempt number is known once JobLifecycle claimed it."""
        attempt_tokens = structlog.contextvars.bind_contextvars(attempt=attempt.attempt)
        scope: _SpanScope | None = state_of(message).span_scope
        if scope is None:
            return
        scope.attempt_tokens = attempt_tokens
        span = scope.span
        if span.is_recording():
            span.set_attributes({"jobfleet.attempt": attempt.attempt, "jobfleet.job_type": attempt.job_type})

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        """Called last after a delivery: record the outcome and any failure, end the span."""
        self._end(message, exception)

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        """Called last after a skipped delivery (duplicate, cancelled, poison): end the span."""
        self._end(message, None)

    def _end(self, message: Any, exception: BaseException | None) -> None:
        state = state_of(message)
        scope: _SpanScope | None = state.span_scope
        if scope is None:
            return
        state.span_scope = None
        span = scope.span
        if span.is_recording():
            self._record_outcome(span, state.outcome, exception)
        span.end()
        context.detach(scope.context_token)
        structlog.contextvars.reset_contextvars(**scope.log_tokens)
        if scope.attempt_tokens is not None:
            structlog.contextvars.reset_contextvars(**scope.attempt_tokens)
        else:
            structlog.contextvars.unbind_contextvars("attempt")

    @staticmethod
    def _record_outcome(span: trace.Span, outcome: DeliveryOutcome | None, exception: BaseException | None) -> None:
        if outcome is not None:
            span.set_attribute("jobfleet.outcome", outcome.outcome)
            if outcome.attempt is not None and outcome.attempt.attempt:
                span.set_attribute("jobfleet.attempt", outcome.attempt.attempt)
        if exception is not None:
            span.record_exception(exception)
            span.set_status(Status(StatusCode.ERROR, type(exception).__name__))
        elif outcome is not None and outcome.outcome == "dead":
            span.set_status(Status(StatusCode.ERROR, "dead-lettered"))
