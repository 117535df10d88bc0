"""What is logged (README "Security"): one access-log line per request (not for /metrics scrapes) and a WARNING for
every refused credential, naming the key's id when it is known and never the key."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from jobfleet.app import create_app
from jobfleet.core.settings import Settings
from jobfleet.core.telemetry import build_tracer_provider
from tests.security.conftest import bearer, key

Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def logged_client(secure_settings: Settings, json_logs: Lines) -> Iterator[FlaskClient]:
    provider = build_tracer_provider("jobfleet-test", {})  # ids propagated, nothing exported
    yield create_app(secure_settings, tracer_provider=provider).test_client()
    provider.shutdown()


def access_lines(lines: Lines) -> list[dict[str, Any]]:
    return [line for line in lines() if line.get("event") == "request"]


def refusals(lines: Lines) -> list[dict[str, Any]]:
    return [line for line in lines() if line.get("event") == "credentials refused"]


def test_every_request_gets_one_access_log_line(logged_client: FlaskClient, json_logs: Lines) -> None:
    accepted = logged_client.post("/v1/jobs/report", json={}, headers=bearer("alice"))
    assert accepted.status_code == 202
    job_id = accepted.get_json()["job_id"]
    logged_client.get(f"/v1/jobs/{job_id}", headers=bearer("alice"))
    [post, get] = access_lines(json_logs)
    assert post["level"] == "info"
    assert (post["method"], post["route"], post["status"]) == ("POST", "/v1/jobs/<job_type>", 202)
    assert (post["caller"], post["key_id"]) == ("alice", "alice")
    assert isinstance(post["duration_ms"], float)
    assert post["duration_ms"] >= 0
    assert len(post["trace_id"]) == 32
    assert post["trace_id"] != get["trace_id"]
    assert (get["method"], get["route"], get["status"]) == ("GET", "/v1/jobs/<job_id>", 200)
    assert job_id not in str(post)  # the route rule, not the path: no ids, no tenant data


def test_metrics_scrapes_are_not_logged_and_public_routes_are(logged_client: FlaskClient, json_logs: Lines) -> None:
    logged_client.get("/metrics")
    logged_client.get("/healthz")
    [line] = access_lines(json_logs)
    assert (line["route"], line["status"], line["caller"], line["key_id"]) == ("/healthz", 200, "anonymous", "")


@pytest.mark.parametrize(
    ("headers", "status", "key_id"),
    [
        ({}, 401, ""),
        ({"Authorization": "Bearer jf_not_a_key_at_all"}, 401, ""),
        (bearer("expired"), 401, "expired"),
        (bearer("reader"), 403, "reader"),
    ],
)
def test_each_refused_credential_is_a_warning_with_the_key_id_never_the_key(
    logged_client: FlaskClient, json_logs: Lines, headers: dict[str, str], status: int, key_id: str
) -> None:
    assert logged_client.post("/v1/jobs/report", json={}, headers=headers).status_code == status
    [warning] = refusals(json_logs)
    assert warning["level"] == "warning"
    assert (warning["status"], warning["key_id"], warning["route"]) == (status, key_id, "/v1/jobs/<job_type>")
    assert warning["reason"]
    [line] = access_lines(json_logs)
    assert (line["status"], line["key_id"]) == (status, key_id)
    output = str(json_logs())
    for role in ("expired", "reader"):
        assert key(role) not in output
    assert "jf_not_a_key_at_all" not in output


def test_a_refusal_by_the_view_is_logged_too(logged_client: FlaskClient, json_logs: Lines) -> None:
    job_id = logged_client.post("/v1/jobs/report", json={}, headers=bearer("carol")).get_json()["job_id"]
    assert logged_client.delete(f"/v1/jobs/{job_id}", headers=bearer("webhooks_only")).status_code == 403
    [warning] = refusals(json_logs)
    assert (warning["key_id"], warning["route"]) == ("webhooks_only", "/v1/jobs/<job_id>")
    assert "'report'" in warning["reason"]
