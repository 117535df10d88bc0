"""GET /openapi.json: an OpenAPI 3.1 document generated from the models that validate requests."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel

import jobfleet
from jobfleet.app.dlq import BulkReplayRequest
from jobfleet.app.openapi_paths import REF, dlq_paths, json_body, problem
from jobfleet.app.schemas import Health, JobAccepted, JobEvents, JobStatus, ProblemDetails
from jobfleet.core.job_types import JOB_TYPES

bp = Blueprint("openapi", __name__)


def _collect(schemas: dict[str, Any], model: type[BaseModel], mode: str = "validation") -> None:
    schema = model.model_json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
    for name, sub in schema.pop("$defs", {}).items():
        schemas[name] = sub
    schemas[model.__name__] = schema


def build_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document for this API version."""
    schemas: dict[str, Any] = {}
    for model in (JobAccepted, JobStatus, JobEvents, Health, ProblemDetails):
        _collect(schemas, model, "serialization")
    job_id = {
        "name": "job_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
    }
    paths: dict[str, Any] = {}
    for spec in JOB_TYPES.values():
        _collect(schemas, spec.payload)
        paths[f"/v1/jobs/{spec.name}"] = {
            "post": {
                "operationId": f"enqueue_{spec.name}",
                "summary": f"Enqueue a {spec.name} job",
                "description": (spec.payload.__doc__ or "").strip(),
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 255,
                            "pattern": "^[\\x20-\\x7e]+$",
                        },
                        "description": "Retries with the same key and body return the same job.",
                    },
                    {
                        "name": "delay_seconds",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "number", "minimum": 0},
                        "description": "Start no earlier than this.",
                    },
                    {
                        "name": "not_before",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "format": "date-time"},
                        "description": "Start at this time.",
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": REF.format(model=spec.payload.__name__)}}},
                },
                "responses": {
                    "202": json_body("JobAccepted", "Accepted; poll status_url"),
                    "400": problem("Malformed JSON, bad Idempotency-Key or schedule"),
                    "413": problem("Body too large"),
                    "415": problem("Not JSON"),
                    "422": problem("Validation failed, or Idempotency-Key reused with another body"),
                    "503": problem("Redis unavailable; retry"),
                },
            }
        }
    paths["/v1/jobs/{job_id}"] = {
        "get": {
            "operationId": "get_job",
            "summary": "Job status",
            "parameters": [job_id],
            "responses": {
                "200": json_body("JobStatus", "The job"),
                "404": problem("Unknown job"),
                "503": problem("Redis unavailable"),
            },
        },
        "delete": {
            "operationId": "cancel_job",
            "summary": "Cancel a job",
            "parameters": [job_id],
            "responses": {
                "200": json_body("JobStatus", "Cancelled before it started"),
                "202": json_body("JobStatus", "Running: cancellation requested"),
                "404": problem("Unknown job"),
                "409": problem("Already finished"),
                "503": problem("Redis unavailable"),
            },
        },
    }
    paths["/v1/jobs/{job_id}/events"] = {
        "get": {
            "operationId": "get_job_events",
            "summary": "The job's lifecycle events",
            "parameters": [job_id],
            "responses": {
                "200": json_body("JobEvents", "Events, oldest first"),
                "404": problem("Unknown job"),
                "503": problem("Redis unavailable"),
            },
        }
    }
    _collect(schemas, BulkReplayRequest)
    paths.update(dlq_paths())
    paths["/healthz"] = {
        "get": {
            "operationId": "healthz",
            "summary": "Liveness",
            "responses": {"200": json_body("Health", "Alive")},
        }
    }
    paths["/readyz"] = {
        "get": {
            "operationId": "readyz",
            "summary": "Readiness (Redis reachable)",
            "responses": {"200": json_body("Health", "Ready"), "503": problem("Redis unreachable")},
        }
    }
    _secure(paths)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "jobfleet",
            "version": jobfleet.__version__,
            "description": "Enqueue background jobs and follow them to completion.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key from `jobfleet keys issue` (scopes: jobs:write, jobs:read, dlq:admin). "
                    "Not required when the server runs with JOBFLEET_AUTH=disabled.",
                }
            },
        },
    }


def _scope(path: str, method: str) -> str | None:
    if path.startswith(("/v1/dlq", "/v1/audit")):
        return "dlq:admin"
    if path.startswith("/v1/jobs"):
        return "jobs:read" if method == "get" else "jobs:write"
    return None


def _secure(paths: dict[str, Any]) -> None:
    """Document the scope each operation needs and the auth and rate-limit answers (app/auth.py, app/limits.py)."""
    for path, operations in paths.items():
        for method, operation in operations.items():
            scope = _scope(path, method)
            if scope is None:
                operation["security"] = []
                continue
            operation["security"] = [{"apiKey": [scope]}]
            responses = operation["responses"]
            responses.setdefault(
                "401",
                problem("No API key, or not a valid one: unknown, revoked or expired (WWW-Authenticate says which)"),
            )
            responses.setdefault(
                "403", problem(f"The API key lacks the {scope} scope (or may not write this job type)")
            )
            responses.setdefault(
                "429",
                problem(
                    "Rate limit of this caller (of this client address, without a valid key) exceeded; see Retry-After"
                ),
            )
            if path.startswith("/v1/jobs/") and method == "post":
                responses["400"] = problem("Malformed JSON, JSON too deep/large, bad Idempotency-Key or schedule")
                responses["503"] = problem("Queue full (backpressure) or Redis unavailable; retry after Retry-After")


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI document."""
    return jsonify(build_document())
