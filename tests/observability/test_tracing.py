"""Traces: one trace from the HTTP request through the queue to the worker's CONSUMER span, retries included."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import dramatiq
import structlog
from dramatiq.broker import MessageProxy
from flask.testing import FlaskClient
from opentelemetry.trace import SpanKind, StatusCode

from jobfleet.core.telemetry import build_tracer_provider, trace_exporters
from jobfleet.middleware.tracing import Tracing
from tests.conftest import Receiver, RunningWorker, wait_for_state
from tests.observability.conftest import Spans

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def consumer_spans(spans: Spans, count: int) -> list[Any]:
    found = spans.wait_for(lambda s: len([x for x in s if x.kind == SpanKind.CONSUMER]) >= count)
    return sorted((s for s in found if s.kind == SpanKind.CONSUMER), key=lambda s: s.start_time or 0)


def test_one_trace_from_the_http_request_to_the_worker_span(
    traced_client: FlaskClient, traced_worker: RunningWorker, receiver: Receiver, spans: Spans
) -> None:
    response = traced_client.post(
        "/v1/jobs/webhook", json={"url": receiver.url, "payload": {}}, headers={"traceparent": TRACEPARENT}
    )
    job_id = response.get_json()["job_id"]
    assert wait_for_state(traced_client, job_id, {"succeeded", "dead"})["state"] == "succeeded"

    [consumer] = consumer_spans(spans, 1)
    [server] = [s for s in spans.finished() if s.kind == SpanKind.SERVER and s.name == "POST /v1/jobs/<job_type>"]
    assert format(server.context.trace_id, "032x") == TRACE_ID  # continues the caller's trace
    assert server.attributes is not None
    assert server.attributes["http.route"] == "/v1/jobs/<job_type>"
    assert server.attributes["http.response.status_code"] == 202
    assert consumer.context.trace_id == server.context.trace_id
    assert consumer.parent is not None
    assert consumer.parent.span_id == server.context.span_id
    assert consumer.name == "process webhooks"
    attributes = dict(consumer.attributes or {})
    for key, expected in {
        "messaging.system": "dramatiq",
        "messaging.operation.type": "process",
        "messaging.destination.name": "webhooks",
        "messaging.message.id": job_id,
        "jobfleet.job_id": job_id,
        "jobfleet.attempt": 1,
        "jobfleet.outcome": "succeeded",
    }.items():
        assert attributes.get(key) == expected, key
    # The job record names the trace, so an operator can go from a job to its trace.
    assert traced_client.application.extensions["jobfleet"].store.get(job_id)["trace_id"] == TRACE_ID


def test_a_retry_stays_in_the_trace_and_the_failed_attempt_records_its_exception(
    traced_client: FlaskClient, traced_worker: RunningWorker, receiver: Receiver, spans: Spans
) -> None:
    receiver.statuses = [503]
    job_id = traced_client.post("/v1/jobs/webhook", json={"url": receiver.url, "payload": {}}).get_json()["job_id"]
    assert wait_for_state(traced_client, job_id, {"succeeded", "dead"})["state"] == "succeeded"

    first, second = consumer_spans(spans, 2)
    assert first.context.trace_id == second.context.trace_id
    assert (first.attributes or {})["jobfleet.attempt"] == 1
    assert (second.attributes or {})["jobfleet.attempt"] == 2
    assert (first.attributes or {})["jobfleet.outcome"] == "retrying"
    assert first.status.status_code == StatusCode.ERROR
    assert [e.name for e in first.events] == ["exception"]
    assert (first.events[0].attributes or {})["exception.type"].endswith("TransientError")
    assert second.status.status_code != StatusCode.ERROR


def test_progress_is_recorded_as_span_events(
    traced_client: FlaskClient, traced_worker: RunningWorker, spans: Spans
) -> None:
    job_id = traced_client.post("/v1/jobs/report", json={"rows": 200}).get_json()["job_id"]
    assert wait_for_state(traced_client, job_id, {"succeeded", "dead"})["state"] == "succeeded"

    [consumer] = consumer_spans(spans, 1)
    progress = [(e.attributes or {})["jobfleet.progress"] for e in consumer.events if e.name == "progress"]
    assert progress[0] == 0
    assert progress[-1] == 100


def test_a_replayed_dead_letter_starts_a_new_trace_linked_to_the_original(
    traced_worker: RunningWorker, receiver: Receiver, spans: Spans
) -> None:
    # Given a message that carries the original traceparent and the replay marker the DLQ replay sets
    traced_worker.broker.enqueue(
        dramatiq.Message(
            queue_name="webhooks",
            actor_name="deliver_webhook",
            args=(),
            kwargs={"url": receiver.url, "payload": {}},
            options={"job_type": "webhook", "traceparent": TRACEPARENT, "replay_of": TRACEPARENT},
            message_id="ab" * 16,
            message_timestamp=int(time.time() * 1000),
        )
    )

    [consumer] = consumer_spans(spans, 1)
    assert format(consumer.context.trace_id, "032x") != TRACE_ID
    assert consumer.parent is None
    [link] = consumer.links
    assert format(link.context.trace_id, "032x") == TRACE_ID
    assert (consumer.attributes or {})["jobfleet.replay"] is True


def test_enqueue_never_replaces_a_traceparent_already_in_the_options(spans: Spans) -> None:
    middleware = Tracing(tracer_provider=spans.provider)
    message = dramatiq.Message(
        queue_name="webhooks", actor_name="deliver_webhook", args=(), kwargs={}, options={"traceparent": TRACEPARENT}
    )
    with spans.provider.get_tracer("t").start_as_current_span("another"):
        middleware.before_enqueue(None, message, None)  # type: ignore[arg-type]
    assert message.options["traceparent"] == TRACEPARENT

    fresh = dramatiq.Message(queue_name="webhooks", actor_name="deliver_webhook", args=(), kwargs={}, options={})
    with spans.provider.get_tracer("t").start_as_current_span("enqueuer") as span:
        middleware.before_enqueue(None, fresh, None)  # type: ignore[arg-type]
    assert fresh.options["traceparent"].split("-")[1] == format(span.get_span_context().trace_id, "032x")


def test_without_otel_variables_there_is_no_exporter_and_nothing_is_recorded() -> None:
    assert trace_exporters({}) == []
    assert trace_exporters({"OTEL_TRACES_EXPORTER": "none"}) == []
    assert len(trace_exporters({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})) == 1

    provider = build_tracer_provider("jobfleet-test", {})
    span = provider.get_tracer("t").start_span("root")
    # Ids still exist (logs and job records carry them), but the span is not recorded.
    assert span.get_span_context().is_valid
    assert not span.is_recording()
    provider.shutdown()


def test_an_unsampled_delivery_still_logs_its_ids_and_leaves_the_log_context_as_it_found_it() -> None:
    # Given a worker with no exporter (nothing recorded) and a message from an unsampled trace
    provider = build_tracer_provider("jobfleet-test", {})
    middleware = Tracing(tracer_provider=provider)
    unsampled = f"00-{TRACE_ID}-00f067aa0ba902b7-00"
    message = MessageProxy(
        dramatiq.Message(
            queue_name="webhooks.DQ",
            actor_name="deliver_webhook",
            args=(),
            kwargs={},
            options={"traceparent": unsampled},
            message_id="job-1",
        )
    )
    attempt = SimpleNamespace(attempt=2, job_type="webhook")
    structlog.contextvars.bind_contextvars(request="outer")

    # When it is processed
    middleware.before_process_message(None, message)  # type: ignore[arg-type]
    middleware.attempt_started(message, attempt)
    during = structlog.contextvars.get_contextvars()
    middleware.after_process_message(None, message)  # type: ignore[arg-type]

    # Then log lines during the job name its trace, span, job, actor, base queue and attempt; afterwards only the
    # context bound before it remains
    assert during["trace_id"] == TRACE_ID
    assert len(during["span_id"]) == 16
    assert during["span_id"] != "00f067aa0ba902b7"
    assert (during["job_id"], during["actor"], during["queue"], during["attempt"]) == (
        "job-1",
        "deliver_webhook",
        "webhooks",
        2,
    )
    assert structlog.contextvars.get_contextvars() == {"request": "outer"}
    structlog.contextvars.clear_contextvars()
    provider.shutdown()
