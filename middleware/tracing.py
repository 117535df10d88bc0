"""Tracing: W3C trace context through the queue, a CONSUMER span per delivery, and the ids in every log line.

``before_enqueue`` injects ``traceparent`` into the message options unless one is already there (retries and the
delayed-queue handoff re-enqueue the same message with no active span). ``before_process_message`` extracts it
and starts the delivery's span (first in the middleware list, so it wraps everything); the ``after_*`` hooks
record the outcome JobLifecycle left on the message and end it. A replayed dead letter starts a new trace linked
to the original one (``replay_of``)."""

from __future__ import annotations

from typing import Any

import dramatiq
import structlog
from dramatiq.middleware import Middleware
from opentelemetry import context, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from middleware.metrics import queue_label

_PROPAGATOR = TraceContextTextMapPropagator()
_LOG_KEYS = ("trace_id", "span_id", "job_id", "actor", "queue")


def inject(carrier: dict[str, Any]) -> None:
    """Write the current span's ``traceparent`` (and ``tracestate``) into ``carrier``."""
    _PROPAGATOR.inject(carrier)


def span_ids(span: trace.Span) -> dict[str, str]:
    """``trace_id`` and ``span_id`` of ``span`` as hex, or {} for an invalid (no-op) span."""
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return {}
    return {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}


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
        options = message.options
        parent = _PROPAGATOR.extract(options)
        links: list[Link] = []
        replay_of = options.get("replay_of")
        if replay_of:
            original = trace.get_current_span(_PROPAGATOR.extract({"traceparent": replay_of})).get_span_context()
            if original.is_valid:
                links.append(Link(original, {"jobfleet.link": "replay_of"}))
            parent = context.Context()
        queue = queue_label(message)
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
                "messaging.message.id": message.message_id,
                "jobfleet.job_id": message.message_id,
                "jobfleet.actor": message.actor_name,
                "jobfleet.replay": bool(replay_of),
            },
        )
        token = context.attach(trace.set_span_in_context(span))
        log_tokens = structlog.contextvars.bind_contextvars(
            **span_ids(span), job_id=message.message_id, actor=message.actor_name, queue=queue
        )
        message._jf_span = (span, token, log_tokens)

    def attempt_started(self, message: Any, attempt: Any) -> None:
        """AttemptStarted listener: the attempt number is known once JobLifecycle claimed it."""
        found = getattr(message, "_jf_span", None)
        if found is not None:
            found[0].set_attribute("jobfleet.attempt", attempt.attempt)
            found[0].set_attribute("jobfleet.job_type", attempt.job_type)
        structlog.contextvars.bind_contextvars(attempt=attempt.attempt)

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
        found = getattr(message, "_jf_span", None)
        if found is None:
            return
        del message._jf_span
        span, token, log_tokens = found
        outcome = getattr(message, "_jf_outcome", None)
        if outcome is not None:
            span.set_attribute("jobfleet.outcome", outcome.event)
            if outcome.attempt is not None and outcome.attempt.attempt:
                span.set_attribute("jobfleet.attempt", outcome.attempt.attempt)
        if exception is not None:
            span.record_exception(exception)
            span.set_status(Status(StatusCode.ERROR, type(exception).__name__))
        elif outcome is not None and outcome.event == "dead_lettered":
            span.set_status(Status(StatusCode.ERROR, "dead-lettered"))
        span.end()
        context.detach(token)
        structlog.contextvars.reset_contextvars(**log_tokens)
        structlog.contextvars.unbind_contextvars("attempt")
