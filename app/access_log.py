"""The access log: one structured line per request (method, route rule, status, caller, key id, latency, trace id),
except Prometheus scrapes of /metrics, and a WARNING for each refused credential (401, 403) naming the key's id when
it is known — never the key."""

from __future__ import annotations

import time
from typing import Any

import structlog
from flask import Flask, Response, g, request
from opentelemetry import trace

from jobfleet.app.auth import current_caller, current_key_id

_UNLOGGED = frozenset({"prometheus_metrics"})  # scraped every few seconds: a line each would drown the rest
_REFUSED = frozenset({401, 403})


def _logger() -> Any:
    # Looked up per line, not kept at import: a logger cached on first use would keep writing where logging was
    # configured then, and the process (or a test) may configure it again.
    return structlog.get_logger("jobfleet.access")


def _trace_id() -> str:
    ctx = trace.get_current_span().get_span_context()  # the request's span (app/telemetry.py), still current here
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""


def _reason(response: Response) -> str:
    body = response.get_json(silent=True)  # a problem+json document (app/problems.py)
    return str(body.get("detail", "")) if isinstance(body, dict) else ""


def init_app(app: Flask) -> None:
    """Log every request of ``app`` once it is answered, and each refused credential as a WARNING."""

    @app.before_request
    def _start() -> None:
        g.jf_access_started = time.perf_counter()

    @app.after_request
    def _log(response: Response) -> Response:
        started = g.get("jf_access_started")
        req = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup, not five
        if started is None or req.endpoint in _UNLOGGED:
            return response
        rule = req.url_rule
        fields = {
            "method": req.method,
            "route": rule.rule if rule is not None else "unmatched",  # the rule, not the path: no ids in the log
            "status": response.status_code,
            "caller": current_caller(),
            "key_id": current_key_id(),
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "trace_id": _trace_id(),
        }
        log = _logger()
        log.info("request", **fields)
        if response.status_code in _REFUSED:
            log.warning("credentials refused", reason=_reason(response), **fields)
        return response
