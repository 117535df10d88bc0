"""Every client error is application/problem+json with a message that says what to fix."""

from __future__ import annotations

import time

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from jobfleet.core.settings import Settings
from tests.conftest import socket_closed_port


def assert_problem(response: TestResponse, status: int, slug: str, mentions: str) -> dict[str, object]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status
    assert body["type"] == f"urn:jobfleet:problem:{slug}"
    assert body["title"]
    assert mentions in body["detail"], body["detail"]
    return body


def test_malformed_json_is_400_with_the_parse_error(client: FlaskClient) -> None:
    response = client.post("/v1/jobs/report", data=b'{"rows": 5,', content_type="application/json")
    assert_problem(response, 400, "malformed-json", "not valid JSON")


def test_wrong_content_type_is_415_naming_the_expected_one(client: FlaskClient) -> None:
    response = client.post("/v1/jobs/report", data="rows=5", content_type="application/x-www-form-urlencoded")
    assert_problem(response, 415, "unsupported-media-type", "application/json")


def test_body_over_the_limit_is_413(settings: Settings) -> None:
    from jobfleet.app import create_app

    small = Settings.from_env({}, redis_url=settings.redis_url, max_body_bytes=100, auth="disabled")
    client = create_app(small).test_client()
    response = client.post("/v1/jobs/email", json={"to": "a@b.c", "subject": "s", "body": "x" * 200})
    assert_problem(response, 413, "body-too-large", "100 bytes")


def test_unknown_job_type_is_404_listing_the_known_ones(client: FlaskClient) -> None:
    response = client.post("/v1/jobs/fax", json={})
    assert_problem(response, 404, "unknown-job-type", "available: email, report, webhook")


def test_validation_failure_is_422_listing_each_field(client: FlaskClient) -> None:
    response = client.post("/v1/jobs/email", json={"to": "not-an-address", "subject": "hi", "extra": 1})
    body = assert_problem(response, 422, "validation-failed", "3 invalid field(s)")
    fields = {e["field"]: e["type"] for e in body["errors"]}  # type: ignore[attr-defined]
    assert fields == {"to": "value_error", "body": "missing", "extra": "extra_forbidden"}


def test_a_json_array_body_is_422_not_500(client: FlaskClient) -> None:
    response = client.post("/v1/jobs/report", json=[1, 2])
    assert_problem(response, 422, "validation-failed", "(body)")


def test_unknown_job_id_is_404(client: FlaskClient) -> None:
    assert_problem(client.get("/v1/jobs/" + "0" * 32), 404, "job-not-found", "unknown id")
    assert_problem(client.get("/v1/jobs/not-an-id"), 404, "job-not-found", "32 hex characters")


def test_unknown_route_and_wrong_method_are_problems(client: FlaskClient) -> None:
    assert_problem(client.get("/nope"), 404, "not-found", "check the URL")
    response = client.put("/v1/jobs/report", json={})
    assert_problem(response, 405, "method-not-allowed", "not supported")
    assert "POST" in response.headers["Allow"]


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\tkey", "é"])
def test_bad_idempotency_key_is_400(client: FlaskClient, key: str) -> None:
    response = client.post("/v1/jobs/report", json={}, headers={"Idempotency-Key": key})
    assert_problem(response, 400, "bad-idempotency-key", "1-255 printable")


def test_redis_outage_is_a_fast_503_not_a_500() -> None:
    from jobfleet.app import create_app

    down = Settings.from_env(
        {}, redis_url=f"redis://127.0.0.1:{socket_closed_port()}/0", redis_timeout_seconds=0.5, auth="disabled"
    )
    client = create_app(down).test_client()
    started = time.monotonic()
    enqueue = client.post("/v1/jobs/report", json={})
    status = client.get("/v1/jobs/" + "a" * 32)
    elapsed = time.monotonic() - started
    for response in (enqueue, status):
        body = assert_problem(response, 503, "redis-unavailable", "Retry after")
        assert response.headers["Retry-After"] == "5"
        assert "Traceback" not in str(body)
    assert_problem(client.get("/readyz"), 503, "not-ready", "Redis is unreachable")
    assert client.get("/healthz").status_code == 200
    # Bounded: two requests against a closed port, each limited by the 0.5 s socket timeout (generous margin).
    assert elapsed < 5, elapsed
