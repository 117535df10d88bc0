"""API tracing and log context: a SERVER span per request under the caller's W3C ``traceparent`` (or a new
trace), its ids bound into every log line of the request, and the context a job carries into its message."""

from __future__ import annotations

import structlog
from flask import Flask, Response, g, request
from opentelemetry import context, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from jobfleet.middleware.tracing import inject, span_ids

_UNTRACED = frozenset({"prometheus_metrics"})


def current_trace_context() -> dict[str, str]:
    """What a job enqueued now should carry: ``traceparent`` (and ``tracestate``) plus ``trace_id``, or {}."""
    carrier: dict[str, str] = {}
    inject(carrier)
    if "traceparent" in carrier:  # "00-<trace id, 32 hex>-<span id>-<flags>": the W3C propagator writes version 00
        carrier["trace_id"] = carrier["traceparent"][3:35]
    return carrier


def init_app(app: Flask, *, tracer_provider: trace.TracerProvider | None = None) -> None:
    """Trace every request of ``app`` (except scrapes of /metrics) and bind its ids to the log context."""

    propagator = TraceContextTextMapPropagator()
    tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer("jobfleet.api")

    @app.before_request
    def _start_span() -> None:
        req = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup, not six
        if req.endpoint in _UNTRACED:
            return
        rule = req.url_rule
        route = rule.rule if rule is not None else ""
        # Most requests carry no trace context: parse the headers only when there is one to continue.
        parent = propagator.extract(req.headers) if "HTTP_TRACEPARENT" in req.environ else Context()
        span = tracer.start_span(
            f"{req.method} {route}" if route else req.method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": req.method, "http.route": route, "url.path": req.path},
        )
        token = context.attach(trace.set_span_in_context(span))
        g.jf_span = (span, token, structlog.contextvars.bind_contextvars(**span_ids(span)))

    @app.after_request
    def _status(response: Response) -> Response:
        found = g.get("jf_span")
        if found is not None and found[0].is_recording():
            found[0].set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                found[0].set_status(Status(StatusCode.ERROR))
        return response

    @app.teardown_request
    def _end_span(exc: BaseException | None) -> None:
        found = g.pop("jf_span", None)
        if found is None:
            return
        span, token, log_tokens = found
        if exc is not None:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        span.end()
        context.detach(token)
        structlog.contextvars.reset_contextvars(**log_tokens)
