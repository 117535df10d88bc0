"""The enqueue API: 202 + Location, status shape, scheduling, readiness, OpenAPI."""

from __future__ import annotations

import re

import redis
from flask.testing import FlaskClient

STATUS_FIELDS = {
    "id",
    "type",
    "state",
    "progress",
    "result",
    "error",
    "attempts",
    "enqueued_at",
    "started_at",
    "finished_at",
}


def test_enqueue_answers_202_with_status_url_and_location(client: FlaskClient) -> None:
    response = client.post("/v1/jobs/report", json={})
    assert response.status_code == 202
    body = response.get_json()
    assert re.fullmatch(r"[0-9a-f]{32}", body["job_id"])
    assert body["status_url"] == f"/v1/jobs/{body['job_id']}"
    assert response.headers["Location"] == body["status_url"]
    assert body["state"] == "queued"


def test_status_of_a_new_job_is_queued_with_every_documented_field(client: FlaskClient) -> None:
    job_id = client.post("/v1/jobs/report", json={"rows": 10}).get_json()["job_id"]
    body = client.get(f"/v1/jobs/{job_id}").get_json()
    assert set(body) >= STATUS_FIELDS
    assert body["state"] == "queued"
    assert body["type"] == "report"
    assert body["attempts"] == 0
    assert body["progress"] == 0
    assert body["enqueued_at"].endswith("+00:00")
    assert body["started_at"] is None


def test_a_delayed_job_shows_scheduled(client: FlaskClient) -> None:
    response = client.post("/v1/jobs/report?delay_seconds=60", json={})
    assert response.get_json()["state"] == "scheduled"
    body = client.get(response.headers["Location"]).get_json()
    assert body["state"] == "scheduled"
    assert body["ready_at"] > body["enqueued_at"]


def test_readyz_is_ok_when_redis_answers_and_says_how_full_redis_is(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    redis_client.config_set("maxmemory", 512 * 1024 * 1024)
    try:
        ready = client.get("/readyz").get_json()
    finally:
        redis_client.config_set("maxmemory", 0)
    assert ready["status"] == "ok"
    memory = ready["redis_memory"]
    assert memory["max_bytes"] == 512 * 1024 * 1024
    assert 0 < memory["used_ratio"] == round(memory["used_bytes"] / memory["max_bytes"], 4)
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_openapi_document_is_generated_from_the_request_models(client: FlaskClient) -> None:
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"] == "3.1.0"
    schemas = doc["components"]["schemas"]
    for model, required in (("WebhookPayload", {"url", "payload"}), ("EmailPayload", {"to", "subject", "body"})):
        assert set(schemas[model]["required"]) == required
        assert schemas[model]["additionalProperties"] is False
        assert schemas[model]["examples"]
    assert "required" not in schemas["ReportPayload"]  # {} is a valid report request
    for job_type in ("webhook", "report", "email"):
        operation = doc["paths"][f"/v1/jobs/{job_type}"]["post"]
        assert set(operation["responses"]) >= {"202", "400", "413", "415", "422", "503"}
    assert set(doc["paths"]["/v1/jobs/{job_id}"]) == {"get", "delete"}


def test_every_example_in_the_openapi_document_is_accepted(client: FlaskClient) -> None:
    doc = client.get("/openapi.json").get_json()
    for job_type, model in (("webhook", "WebhookPayload"), ("report", "ReportPayload"), ("email", "EmailPayload")):
        for example in doc["components"]["schemas"][model]["examples"]:
            assert client.post(f"/v1/jobs/{job_type}", json=example).status_code == 202, example
