"""API metrics: requests by route rule (never the raw path), latency, enqueue rejections by reason, Redis errors."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry

from jobfleet.app import create_app
from jobfleet.core.settings import Settings
from tests.conftest import socket_closed_port
from tests.observability.conftest import promtool_check


def registry_of(app: Flask) -> CollectorRegistry:
    registry: CollectorRegistry = app.extensions["jobfleet_metrics"].registry
    return registry


def test_requests_are_counted_by_route_rule_method_and_status(app: Flask, client: FlaskClient) -> None:
    job_id = client.post("/v1/jobs/report", json={}).get_json()["job_id"]
    client.get(f"/v1/jobs/{job_id}")
    client.get(f"/v1/jobs/{'0' * 32}")
    client.get("/nowhere")

    registry = registry_of(app)
    sample = registry.get_sample_value
    assert sample("jobfleet_http_requests_total", {"route": "/v1/jobs/<job_type>", "method": "POST", "status": "202"})
    assert sample("jobfleet_http_requests_total", {"route": "/v1/jobs/<job_id>", "method": "GET", "status": "200"})
    assert sample("jobfleet_http_requests_total", {"route": "/v1/jobs/<job_id>", "method": "GET", "status": "404"})
    assert sample("jobfleet_http_requests_total", {"route": "unmatched", "method": "GET", "status": "404"})
    assert sample("jobfleet_http_request_duration_seconds_count", {"route": "/v1/jobs/<job_id>", "method": "GET"}) == 2
    exposition = client.get("/metrics").get_data(as_text=True)
    assert job_id not in exposition  # ids never become labels


def test_enqueue_rejections_are_counted_by_job_type_and_reason(app: Flask, client: FlaskClient) -> None:
    client.post("/v1/jobs/webhook", json={"url": "not a url"})
    client.post("/v1/jobs/report", data="{", content_type="application/json")
    client.post("/v1/jobs/report", data="rows=1", content_type="text/plain")
    client.post("/v1/jobs/nonsense", json={})
    client.post("/v1/jobs/report", json={}, headers={"Idempotency-Key": "\x01bad"})
    client.post("/v1/jobs/report?delay_seconds=-1", json={})
    client.post(
        "/v1/jobs/report",
        data=b"{" + b" " * (app.config["MAX_CONTENT_LENGTH"] + 1) + b"}",
        content_type="application/json",
    )

    sample = registry_of(app).get_sample_value
    for job_type, reason in [
        ("webhook", "validation"),
        ("report", "malformed_json"),
        ("report", "unsupported_media_type"),
        ("unknown", "unknown_type"),
        ("report", "bad_idempotency_key"),
        ("report", "bad_schedule"),
        ("report", "too_large"),
    ]:
        assert sample("jobfleet_enqueue_rejections_total", {"job_type": job_type, "reason": reason}) == 1, reason


def test_redis_outage_is_a_rejection_and_a_redis_error(settings: Settings) -> None:
    down = Settings.from_env(
        {}, redis_url=f"redis://127.0.0.1:{socket_closed_port()}/0", redis_timeout_seconds=0.2, auth="disabled"
    )
    app = create_app(down)
    client = app.test_client()

    assert client.post("/v1/jobs/report", json={}).status_code == 503
    assert client.get("/readyz").status_code == 503

    sample = registry_of(app).get_sample_value
    assert sample("jobfleet_enqueue_rejections_total", {"job_type": "report", "reason": "redis_unavailable"}) == 1
    assert sample("jobfleet_redis_errors_total", {"operation": "jobs.enqueue"}) == 1
    assert sample("jobfleet_redis_errors_total", {"operation": "health.readyz"}) == 1


def test_api_metrics_endpoint_passes_promtool(client: FlaskClient) -> None:
    client.post("/v1/jobs/report", json={})
    client.post("/v1/jobs/nonsense", json={})
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=0.0.4")
    promtool_check(response.get_data())
