"""Logs: JSON lines that carry the request's and the job's ids; secrets never reach the output."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from flask.testing import FlaskClient

from jobfleet.app import create_app
from jobfleet.core.settings import Settings
from jobfleet.core.telemetry import build_tracer_provider
from tests.conftest import Receiver, RunningWorker, socket_closed_port, wait_for_state
from tests.observability.conftest import Spans

SECRETS = ("hunter2", "s3cr3t-token", "smtp-pa55", "dXNlcjpwYXNz")


@pytest.fixture
def spans() -> Iterator[Spans]:
    """Tracing as configured with no OTEL_* variables: nothing recorded or exported, ids still propagated."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = build_tracer_provider("jobfleet-test", {})
    yield Spans(InMemorySpanExporter(), provider)
    provider.shutdown()


def wait_for_line(lines: Callable[[], list[dict[str, Any]]], predicate: Callable[[dict[str, Any]], bool]) -> Any:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [line for line in lines() if predicate(line)]
        if found:
            return found[0]
        time.sleep(0.02)
    raise AssertionError(f"no such log line in {lines()}")


def test_log_lines_inside_a_job_carry_trace_job_actor_and_attempt(
    json_logs: Callable[[], list[dict[str, Any]]],
    traced_client: FlaskClient,
    traced_worker: RunningWorker,
    receiver: Receiver,
) -> None:
    receiver.statuses = [404]
    job_id = traced_client.post("/v1/jobs/webhook", json={"url": receiver.url, "payload": {}}).get_json()["job_id"]
    assert wait_for_state(traced_client, job_id, {"succeeded", "dead"})["state"] == "dead"

    # Dramatiq's own "Failed to process message" line is logged inside the job.
    line = wait_for_line(json_logs, lambda entry: entry.get("job_id") == job_id and entry.get("level") == "error")
    assert line["actor"] == "deliver_webhook"
    assert line["attempt"] == 1
    assert len(line["trace_id"]) == 32
    assert len(line["span_id"]) == 16
    trace_id = traced_client.application.extensions["jobfleet"].store.get(job_id)["trace_id"]
    assert line["trace_id"] == trace_id  # the same trace the API request started


def test_log_lines_inside_a_request_carry_its_trace_and_span(
    json_logs: Callable[[], list[dict[str, Any]]], settings: Settings, spans: Spans
) -> None:
    down = Settings.from_env(
        {}, redis_url=f"redis://127.0.0.1:{socket_closed_port()}/0", redis_timeout_seconds=0.2, auth="disabled"
    )
    client = create_app(down, tracer_provider=spans.provider).test_client()
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    assert client.post("/v1/jobs/report", json={}, headers={"traceparent": traceparent}).status_code == 503

    line = wait_for_line(json_logs, lambda entry: "redis unavailable" in entry.get("event", ""))
    assert line["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert len(line["span_id"]) == 16
    # Nothing stays bound once the request is over.
    assert "trace_id" not in structlog.contextvars.get_contextvars()


def test_secrets_never_reach_the_logs(
    json_logs: Callable[[], list[dict[str, Any]]],
    traced_client: FlaskClient,
    traced_worker: RunningWorker,
    receiver: Receiver,
) -> None:
    # Given a webhook whose headers hold a bearer token (Dramatiq logs the message's kwargs when it fails)
    receiver.statuses = [404]
    job_id = traced_client.post(
        "/v1/jobs/webhook",
        json={"url": receiver.url, "payload": {}, "headers": {"Authorization": "Bearer s3cr3t-token"}},
    ).get_json()["job_id"]
    assert wait_for_state(traced_client, job_id, {"succeeded", "dead"})["state"] == "dead"
    wait_for_line(json_logs, lambda entry: entry.get("job_id") == job_id and entry.get("level") == "error")

    # And code that logs URLs with passwords, SMTP credentials, request headers and exceptions
    log = structlog.get_logger("test")
    log.info("connecting", url="redis://:hunter2@127.0.0.1:6379/0", smtp_password="smtp-pa55")
    log.info("outbound", headers={"Authorization": "Basic dXNlcjpwYXNz", "X-Ok": "visible"})
    logging.getLogger("stdlib").warning("smtp login as bob with password=smtp-pa55 to smtp://bob:hunter2@mail")
    try:
        raise RuntimeError("could not reach https://bob:hunter2@example.com (Authorization: Bearer s3cr3t-token)")
    except RuntimeError:
        log.exception("failed")
        logging.getLogger("stdlib").exception("failed too")

    # Then none of the secrets appear, and the rest of the line is intact
    output = json.dumps(json_logs())
    for secret in SECRETS:
        assert secret not in output, secret
    assert "visible" in output
    assert "redis://:***@127.0.0.1:6379/0" in output
