"""GET /openapi.json: an OpenAPI 3.1 document generated from the models that validate requests."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel

import jobfleet
from jobfleet.app.dlq import BulkReplayRequest, DlqListQuery
from jobfleet.app.schemas import Health, JobAccepted, JobEvents, JobStatus, ProblemDetails
from jobfleet.core.job_types import JOB_TYPES

bp = Blueprint("openapi", __name__)

_REF = "#/components/schemas/{model}"


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": _REF.format(model="ProblemDetails")}}},
    }


def _json(model: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF.format(model=model)}}},
    }


def _collect(schemas: dict[str, Any], model: type[BaseModel], mode: str = "validation") -> None:
    schema = model.model_json_schema(ref_template=_REF, mode=mode)  # type: ignore[arg-type]
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
                    "content": {"application/json": {"schema": {"$ref": _REF.format(model=spec.payload.__name__)}}},
                },
                "responses": {
                    "202": _json("JobAccepted", "Accepted; poll status_url"),
                    "400": _problem("Malformed JSON, bad Idempotency-Key or schedule"),
                    "413": _problem("Body too large"),
                    "415": _problem("Not JSON"),
                    "422": _problem("Validation failed, or Idempotency-Key reused with another body"),
                    "503": _problem("Redis unavailable; retry"),
                },
            }
        }
    paths["/v1/jobs/{job_id}"] = {
        "get": {
            "operationId": "get_job",
            "summary": "Job status",
            "parameters": [job_id],
            "responses": {
                "200": _json("JobStatus", "The job"),
                "404": _problem("Unknown job"),
                "503": _problem("Redis unavailable"),
            },
        },
        "delete": {
            "operationId": "cancel_job",
            "summary": "Cancel a job",
            "parameters": [job_id],
            "responses": {
                "200": _json("JobStatus", "Cancelled before it started"),
                "202": _json("JobStatus", "Running: cancellation requested"),
                "404": _problem("Unknown job"),
                "409": _problem("Already finished"),
                "503": _problem("Redis unavailable"),
            },
        },
    }
    paths["/v1/jobs/{job_id}/events"] = {
        "get": {
            "operationId": "get_job_events",
            "summary": "The job's lifecycle events",
            "parameters": [job_id],
            "responses": {
                "200": _json("JobEvents", "Events, oldest first"),
                "404": _problem("Unknown job"),
                "503": _problem("Redis unavailable"),
            },
        }
    }
    _collect(schemas, BulkReplayRequest)
    dl_id = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
    any_json = {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}
    filters = [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
        for name in ("type", "queue", "exception", "reason")
    ]
    paths["/v1/dlq"] = {
        "get": {
            "operationId": "list_dead_letters",
            "summary": "Dead letters, newest first",
            "parameters": [
                *filters,
                {
                    "name": "cursor",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "pattern": DlqListQuery.model_fields["cursor"].metadata[0].pattern},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 500},
                },
            ],
            "responses": {"200": any_json, "422": _problem("Bad filter"), "503": _problem("Redis unavailable")},
        }
    }
    paths["/v1/dlq/{job_id}"] = {
        "get": {
            "operationId": "get_dead_letter",
            "summary": "One dead letter in full",
            "parameters": [dl_id],
            "responses": {
                "200": any_json,
                "404": _problem("No such dead letter"),
                "503": _problem("Redis unavailable"),
            },
        },
        "delete": {
            "operationId": "purge_dead_letter",
            "summary": "Purge a dead letter (the job becomes failed)",
            "parameters": [dl_id],
            "responses": {
                "204": {"description": "Purged"},
                "404": _problem("No such dead letter"),
                "503": _problem("Redis unavailable"),
            },
        },
    }
    paths["/v1/dlq/{job_id}/replay"] = {
        "post": {
            "operationId": "replay_dead_letter",
            "summary": "Replay one dead letter with fresh attempts",
            "parameters": [dl_id],
            "responses": {
                "202": any_json,
                "404": _problem("No such dead letter"),
                "409": _problem("Poison message: cannot be replayed"),
                "503": _problem("Redis unavailable"),
            },
        }
    }
    paths["/v1/dlq/replay"] = {
        "post": {
            "operationId": "bulk_replay_dead_letters",
            "summary": "Replay dead letters matching a filter (bounded, throttled, dry run)",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": _REF.format(model="BulkReplayRequest")}}},
            },
            "responses": {
                "200": any_json,
                "400": _problem("Malformed JSON"),
                "415": _problem("Not JSON"),
                "422": _problem("Bad request"),
                "503": _problem("Redis unavailable"),
            },
        }
    }
    paths["/v1/audit"] = {
        "get": {
            "operationId": "audit_log",
            "summary": "Operator actions, newest first",
            "parameters": [
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                },
                {
                    "name": "before",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "pattern": "^[0-9]{1,19}-[0-9]{1,19}$"},
                },
            ],
            "responses": {
                "200": any_json,
                "400": _problem("Bad limit or cursor"),
                "503": _problem("Redis unavailable"),
            },
        }
    }
    paths["/healthz"] = {
        "get": {
            "operationId": "healthz",
            "summary": "Liveness",
            "responses": {"200": _json("Health", "Alive")},
        }
    }
    paths["/readyz"] = {
        "get": {
            "operationId": "readyz",
            "summary": "Readiness (Redis reachable)",
            "responses": {"200": _json("Health", "Ready"), "503": _problem("Redis unreachable")},
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
            responses.setdefault("401", _problem("No API key, or not a valid one (WWW-Authenticate says which)"))
            responses.setdefault("403", _problem(f"The API key lacks the {scope} scope (or this job type)"))
            responses.setdefault("429", _problem("Rate limit of this caller exceeded; retry after Retry-After"))
            if path.startswith("/v1/jobs/") and method == "post":
                responses["400"] = _problem("Malformed JSON, JSON too deep/large, bad Idempotency-Key or schedule")
                responses["503"] = _problem("Queue full (backpressure) or Redis unavailable; retry after Retry-After")


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI document."""
    return jsonify(build_document())
