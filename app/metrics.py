"""API metrics (docs/metrics.md): requests by route, latency, enqueue rejections by reason, Redis errors; and
GET /metrics. Under ``jobfleet api`` every granian worker process writes to the multiprocess directory and a
scrape aggregates them; elsewhere (tests) the app's own registry is served."""

from __future__ import annotations

import atexit
import json
import os
import time
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from jobfleet.core.job_types import JOB_TYPES
from jobfleet.core.telemetry import multiprocess_registry

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
# problem+json slug (app/problems.py, app/jobs.py) -> enqueue rejection reason
_REASONS = {
    "validation-failed": "validation",
    "body-too-large": "too_large",
    "unsupported-media-type": "unsupported_media_type",
    "malformed-json": "malformed_json",
    "unknown-job-type": "unknown_type",
    "redis-unavailable": "redis_unavailable",
    "bad-idempotency-key": "bad_idempotency_key",
    "bad-schedule": "bad_schedule",
    "idempotency-key-reused": "idempotency_conflict",
    "json-too-complex": "too_complex",
    "unauthorized": "unauthorized",
    "forbidden": "forbidden",
    "rate-limited": "rate_limited",
    "queue-full": "queue_full",
}
_REDIS_SLUGS = frozenset({"redis-unavailable", "not-ready"})


class ApiMetrics:
    """The API's metrics on one registry, with labelled children cached so a request costs two dict lookups."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "jobfleet_http_requests", "Requests answered", ["route", "method", "status"], registry=registry
        )
        self.duration = Histogram(
            "jobfleet_http_request_duration_seconds",
            "Request latency",
            ["route", "method"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.rejections = Counter(
            "jobfleet_enqueue_rejections", "Enqueue requests refused", ["job_type", "reason"], registry=registry
        )
        self.redis_errors = Counter(
            "jobfleet_redis_errors", "Redis errors seen by the API", ["operation"], registry=registry
        )
        self._requests: dict[tuple[str, str, int], Any] = {}
        self._durations: dict[tuple[str, str], Any] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        key = (route, method, status)
        child = self._requests.get(key)
        if child is None:
            child = self._requests[key] = self.requests.labels(route, method, str(status))
        child.inc()
        timer = self._durations.get(key[:2])
        if timer is None:
            timer = self._durations[key[:2]] = self.duration.labels(route, method)
        timer.observe(seconds)


def _problem_slug(response: Response) -> str:
    if response.mimetype != "application/problem+json":
        return ""
    try:
        body = json.loads(response.get_data())
    except ValueError:
        return ""
    problem_type = body.get("type", "") if isinstance(body, dict) else ""
    return str(problem_type).rpartition(":")[2]


def init_app(app: Flask, *, multiprocess_dir: str = "", registry: CollectorRegistry | None = None) -> ApiMetrics:
    """Measure every request of ``app`` and serve GET /metrics."""
    metrics = ApiMetrics(registry or CollectorRegistry())
    app.extensions["jobfleet_metrics"] = metrics
    if multiprocess_dir:
        atexit.register(multiprocess.mark_process_dead, os.getpid(), multiprocess_dir)

    @app.before_request
    def _start_timer() -> None:
        g.jf_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.get("jf_started")
        if started is None:
            return response
        req = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup, not four
        rule = req.url_rule
        route = rule.rule if rule is not None else "unmatched"
        method = req.method if req.method in _METHODS else "other"
        status = response.status_code
        metrics.observe(route, method, status, time.perf_counter() - started)
        if status >= 400:
            slug = _problem_slug(response)
            if request.endpoint == "jobs.enqueue":
                job_type = (request.view_args or {}).get("job_type", "")
                metrics.rejections.labels(
                    job_type if job_type in JOB_TYPES else "unknown", _REASONS.get(slug, "other")
                ).inc()
            if slug in _REDIS_SLUGS:
                metrics.redis_errors.labels(request.endpoint or "unmatched").inc()
        return response

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        """Prometheus text exposition of the API's metrics (every API process under ``jobfleet api``)."""
        source = multiprocess_registry(multiprocess_dir) if multiprocess_dir else metrics.registry
        # Text format 0.0.4: what every Prometheus 2.x (Debian ships 2.42) negotiates.
        return Response(generate_latest(source), content_type=CONTENT_TYPE_PLAIN_0_0_4)

    return metrics
