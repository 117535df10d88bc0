"""RFC 9457 problem details: every client and server error the API returns, with what to do about it."""

from __future__ import annotations

import math
from typing import Any

from flask import Flask, Response, json, request
from werkzeug.exceptions import HTTPException

from jobfleet.core.errors import (
    IdempotencyConflict,
    InvalidTransition,
    JobNotFound,
    NotReplicated,
    QueueFull,
    QuotaExceeded,
    RateLimited,
    StoreUnavailable,
)

PROBLEM_MIME = "application/problem+json"


class Problem(Exception):
    """Raised by a view to answer with a problem+json body."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.extensions = extensions


def problem_response(problem: Problem) -> Response:
    """Render a Problem as an application/problem+json response."""
    body = {
        "type": f"urn:jobfleet:problem:{problem.slug}",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "instance": request.path,
        **problem.extensions,
    }
    response = Response(json.dumps(body), status=problem.status, mimetype=PROBLEM_MIME)
    for name, value in problem.headers.items():
        response.headers[name] = value
    return response


_HTTP_HINTS = {
    404: ("not-found", "There is no such resource; check the URL (job types: GET /openapi.json)."),
    405: ("method-not-allowed", "This method is not supported here; see the Allow header."),
    413: ("body-too-large", "The request body exceeds the configured limit (JOBFLEET_MAX_BODY_BYTES)."),
}


def init_app(app: Flask) -> None:
    """Register handlers so that no error leaves the API as HTML or a traceback."""

    @app.errorhandler(Problem)
    def _problem(exc: Problem) -> Response:
        return problem_response(exc)

    @app.errorhandler(StoreUnavailable)
    def _store(exc: StoreUnavailable) -> Response:
        app.logger.warning("redis unavailable: %s", exc)
        return problem_response(
            Problem(
                503,
                "redis-unavailable",
                "Service Unavailable",
                "The job store (Redis) is unreachable; nothing was changed. Retry after a few seconds.",
                headers={"Retry-After": "5"},
            )
        )

    @app.errorhandler(RateLimited)
    def _rate(exc: RateLimited) -> Response:
        return problem_response(
            Problem(
                429,
                "rate-limited",
                "Too Many Requests",
                str(exc),
                headers={"Retry-After": str(max(1, math.ceil(exc.retry_after)))},
            )
        )

    @app.errorhandler(QueueFull)
    def _full(exc: QueueFull) -> Response:
        return problem_response(
            Problem(
                503,
                "queue-full",
                "Service Unavailable",
                str(exc),
                headers={"Retry-After": str(max(1, math.ceil(exc.retry_after)))},
                queue=exc.queue,
            )
        )

    @app.errorhandler(QuotaExceeded)
    def _quota(exc: QuotaExceeded) -> Response:
        return problem_response(
            Problem(
                429,
                "quota-exceeded",
                "Too Many Requests",
                str(exc),
                headers={"Retry-After": str(max(1, math.ceil(exc.retry_after)))},
                limit=exc.limit,
            )
        )

    @app.errorhandler(NotReplicated)
    def _not_replicated(exc: NotReplicated) -> Response:
        return problem_response(
            Problem(
                503,
                "not-replicated",
                "Service Unavailable",
                str(exc),
                headers={"Retry-After": "1"},
                job_id=exc.job_id,
            )
        )

    @app.errorhandler(JobNotFound)
    def _missing(exc: JobNotFound) -> Response:
        return problem_response(Problem(404, "job-not-found", "Not Found", str(exc)))

    @app.errorhandler(InvalidTransition)
    def _conflict(exc: InvalidTransition) -> Response:
        return problem_response(Problem(409, "invalid-state", "Conflict", str(exc), state=exc.state))

    @app.errorhandler(IdempotencyConflict)
    def _idem(exc: IdempotencyConflict) -> Response:
        return problem_response(
            Problem(422, "idempotency-key-reused", "Unprocessable Content", str(exc), job_id=exc.job_id)
        )

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        slug, hint = _HTTP_HINTS.get(status, ("http-error", exc.description or ""))
        if status == 413:
            hint = f"The request body exceeds the limit of {app.config['MAX_CONTENT_LENGTH']} bytes."
        response = problem_response(Problem(status, slug, exc.name, hint))
        if status == 405 and exc.get_response().headers.get("Allow"):
            response.headers["Allow"] = exc.get_response().headers["Allow"]
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        app.logger.exception("unhandled error")
        return problem_response(
            Problem(500, "internal", "Internal Server Error", "An unexpected error occurred; it was logged.")
        )
