"""The dead-letter and audit operations of the OpenAPI document (app/openapi.py assembles it), and the small
builders every part uses."""

from __future__ import annotations

from typing import Any

from jobfleet.app.dlq import DlqListQuery

REF = "#/components/schemas/{model}"


def problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": REF.format(model="ProblemDetails")}}},
    }


def json_body(model: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(model=model)}}},
    }


def dlq_paths() -> dict[str, Any]:
    """The /v1/dlq* and /v1/audit operations."""
    dl_id = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
    any_json = {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}
    filters = [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
        for name in ("type", "queue", "exception", "reason")
    ]
    paths: dict[str, Any] = {}
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
            "responses": {"200": any_json, "422": problem("Bad filter"), "503": problem("Redis unavailable")},
        }
    }
    paths["/v1/dlq/{job_id}"] = {
        "get": {
            "operationId": "get_dead_letter",
            "summary": "One dead letter in full",
            "parameters": [dl_id],
            "responses": {
                "200": any_json,
                "404": problem("No such dead letter"),
                "503": problem("Redis unavailable"),
            },
        },
        "delete": {
            "operationId": "purge_dead_letter",
            "summary": "Purge a dead letter (the job becomes failed)",
            "parameters": [dl_id],
            "responses": {
                "204": {"description": "Purged"},
                "404": problem("No such dead letter"),
                "503": problem("Redis unavailable"),
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
                "404": problem("No such dead letter"),
                "409": problem("Poison message: cannot be replayed"),
                "503": problem("Redis unavailable"),
            },
        }
    }
    paths["/v1/dlq/replay"] = {
        "post": {
            "operationId": "bulk_replay_dead_letters",
            "summary": "Replay dead letters matching a filter (bounded, throttled, dry run)",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": REF.format(model="BulkReplayRequest")}}},
            },
            "responses": {
                "200": any_json,
                "400": problem("Malformed JSON"),
                "415": problem("Not JSON"),
                "422": problem("Bad request"),
                "503": problem("Redis unavailable"),
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
                "400": problem("Bad limit or cursor"),
                "503": problem("Redis unavailable"),
            },
        }
    }
    return paths
