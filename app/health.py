"""/healthz (the process answers) and /readyz (Redis answers too)."""

from __future__ import annotations

import redis
from flask import Blueprint, Response, jsonify

from jobfleet.app.problems import Problem
from jobfleet.app.services import services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """Liveness: 200 while the process serves requests."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    """Readiness: 200 when Redis answers PING within the timeout, else 503."""
    try:
        services().client.ping()
    except redis.RedisError as exc:
        raise Problem(
            503,
            "not-ready",
            "Service Unavailable",
            f"Redis is unreachable ({type(exc).__name__}); not ready",
            headers={"Retry-After": "5"},
        ) from None
    return jsonify({"status": "ok"})
