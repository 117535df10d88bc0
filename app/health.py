"""/healthz (the process answers) and /readyz (Redis answers too)."""

from __future__ import annotations

import redis
from flask import Blueprint, Response, jsonify

from jobfleet.app.problems import Problem
from jobfleet.app.services import services
from jobfleet.core.errors import StoreUnavailable
from jobfleet.store.memory import redis_memory

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """Liveness: 200 while the process serves requests."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    """Readiness: 200 when Redis answers PING within the timeout, else 503; says how full Redis is (a full Redis
    under noeviction refuses new jobs: the API still answers reads, so it stays ready)."""
    try:
        services().client.ping()
        memory = redis_memory(services().client)
    except (redis.RedisError, StoreUnavailable) as exc:
        raise Problem(
            503,
            "not-ready",
            "Service Unavailable",
            f"Redis is unreachable ({type(exc).__name__}); not ready",
            headers={"Retry-After": "5"},
        ) from None
    return jsonify(
        {
            "status": "ok",
            "redis_memory": {
                "used_bytes": memory.used_bytes,
                "max_bytes": memory.max_bytes,
                "used_ratio": round(memory.ratio, 4),
            },
        }
    )
