"""End to end on real Redis: POST through the API, a real Dramatiq Worker runs the job, GET shows the result."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from tests.conftest import Receiver, RunningWorker, SmtpSink, wait_for_state


def test_report_job_succeeds_with_artifact_path_and_size(client: FlaskClient, worker: RunningWorker) -> None:
    job_id = client.post("/v1/jobs/report", json={"rows": 2000, "format": "json"}).get_json()["job_id"]
    body = wait_for_state(client, job_id, {"succeeded", "dead"})
    assert body["state"] == "succeeded", body
    artifact = Path(body["result"]["path"])
    assert artifact.read_bytes()  # the artifact exists where the result says
    assert body["result"]["size_bytes"] == artifact.stat().st_size
    assert body["result"]["sha256"] == hashlib.sha256(artifact.read_bytes()).hexdigest()
    assert body["progress"] == 100
    assert body["attempts"] == 1
    assert body["history"][0]["outcome"] == "succeeded"
    events = [e["event"] for e in client.get(f"/v1/jobs/{job_id}/events").get_json()["events"]]
    assert events[:2] == ["accepted", "started"]
    assert events[-1] == "succeeded"
    progress = [
        e["data"]["progress"]
        for e in client.get(f"/v1/jobs/{job_id}/events").get_json()["events"]
        if e["event"] == "progress"
    ]
    assert progress == sorted(progress)
    assert (progress[0], progress[-1]) == (0, 100)


def test_default_report_request_is_the_empty_object(client: FlaskClient, worker: RunningWorker) -> None:
    job_id = client.post("/v1/jobs/report", json={}).get_json()["job_id"]
    body = wait_for_state(client, job_id, {"succeeded", "dead"})
    assert body["state"] == "succeeded"
    assert body["result"]["format"] == "csv"
    assert Path(body["result"]["path"]).read_text().startswith("region,product,orders,units,revenue")


def test_webhook_job_posts_payload_with_the_idempotency_key(
    client: FlaskClient, worker: RunningWorker, receiver: Receiver
) -> None:
    response = client.post(
        "/v1/jobs/webhook",
        json={"url": receiver.url, "payload": {"order": 7}, "headers": {"X-Source": "test"}},
        headers={"Idempotency-Key": "order-7-paid"},
    )
    body = wait_for_state(client, response.get_json()["job_id"], {"succeeded", "dead"})
    assert body["state"] == "succeeded", body
    assert body["result"]["status"] == 200
    [delivery] = receiver.requests
    assert delivery["body"] == {"order": 7}
    assert delivery["headers"]["X-Source"] == "test"
    assert delivery["headers"]["Idempotency-Key"] == "anonymous:order-7-paid"
    assert delivery["headers"]["Content-Type"] == "application/json"


def test_webhook_4xx_is_permanent_and_dead_letters_after_one_attempt(
    client: FlaskClient, worker: RunningWorker, receiver: Receiver
) -> None:
    receiver.statuses = [404]
    job_id = client.post("/v1/jobs/webhook", json={"url": receiver.url, "payload": {}}).get_json()["job_id"]
    body = wait_for_state(client, job_id, {"succeeded", "dead"})
    assert body["state"] == "dead"
    assert body["attempts"] == 1
    assert body["error"]["type"] == "PermanentError"
    assert "404" in body["error"]["message"]
    assert len(receiver.requests) == 1


def test_webhook_5xx_is_retried_with_backoff_then_succeeds(
    client: FlaskClient, worker: RunningWorker, receiver: Receiver
) -> None:
    receiver.statuses = [503, 500]
    job_id = client.post("/v1/jobs/webhook", json={"url": receiver.url, "payload": {}}).get_json()["job_id"]
    body = wait_for_state(client, job_id, {"succeeded", "dead"})
    assert body["state"] == "succeeded", body
    assert [h["outcome"] for h in body["history"]] == ["retrying", "retrying", "succeeded"]
    assert all(h["next_retry_at"] for h in body["history"][:2])
    assert body["history"][0]["error"]["type"] == "TransientError"
    assert len(receiver.requests) == 3


def test_webhook_transient_failures_exhaust_retries_then_dead_letter(
    client: FlaskClient, worker: RunningWorker, receiver: Receiver
) -> None:
    receiver.statuses = [502] * 10
    job_id = client.post("/v1/jobs/webhook", json={"url": receiver.url, "payload": {}}).get_json()["job_id"]
    body = wait_for_state(client, job_id, {"succeeded", "dead"})
    assert body["state"] == "dead"
    assert body["attempts"] == 3  # max_retries=2 in the test settings: one attempt + two retries
    assert [h["outcome"] for h in body["history"]] == ["retrying", "retrying", "dead"]
    assert len(receiver.requests) == 3


def test_email_job_is_delivered_to_the_smtp_server(
    client: FlaskClient, start_worker: Callable[..., RunningWorker], smtp_sink: SmtpSink, settings: object
) -> None:
    start_worker(dataclasses.replace(settings, smtp_port=smtp_sink.port))  # type: ignore[type-var]
    response = client.post(
        "/v1/jobs/email", json={"to": "oncall@example.com", "subject": "Nightly", "body": "All green."}
    )
    body = wait_for_state(client, response.get_json()["job_id"], {"succeeded", "dead"})
    assert body["state"] == "succeeded", body
    [envelope] = smtp_sink.messages
    assert envelope.rcpt_tos == ["oncall@example.com"]
    content = envelope.content.decode()
    assert "Subject: Nightly" in content
    assert "All green." in content
    assert body["result"]["message_id"] in content


def test_email_to_an_unreachable_smtp_server_is_retried_then_dead(
    client: FlaskClient, start_worker: Callable[..., RunningWorker], settings: object
) -> None:
    from tests.conftest import socket_closed_port

    start_worker(dataclasses.replace(settings, smtp_port=socket_closed_port()))  # type: ignore[type-var]
    response = client.post("/v1/jobs/email", json={"to": "a@example.com", "subject": "s", "body": "b"})
    body = wait_for_state(client, response.get_json()["job_id"], {"succeeded", "dead"})
    assert body["state"] == "dead"
    assert body["attempts"] == 3
    # The email job translates the refused connection into a transient error, as the webhook job does
    assert body["error"]["type"] == "TransientError"
    assert "ConnectionRefusedError" in body["error"]["message"]


def test_a_message_sent_with_send_is_a_job_from_the_moment_it_exists(client: FlaskClient, start_worker: Any) -> None:
    # Given a report sent straight through Dramatiq's API, with no worker running yet
    running = start_worker(threads=1)
    running.worker.stop(timeout=5_000)
    message = running.broker.get_actor("build_report").send(rows=10)
    # Then its job is visible through the HTTP API at once, queued, under Dramatiq's own id (a UUID with dashes)
    assert "-" in message.message_id
    body = client.get(f"/v1/jobs/{message.message_id}").get_json()
    assert body["state"] == "queued"
    assert body["type"] == "report"
    # And a worker runs it to success
    start_worker()
    assert wait_for_state(client, message.message_id, {"succeeded", "dead"})["state"] == "succeeded"


def test_a_succeeded_record_drops_its_payload_and_is_kept_compact_for_its_retention(
    client: FlaskClient, worker: RunningWorker, receiver: Receiver, redis_client: Any
) -> None:
    # Invariant (store v2 cost): a succeeded small job keeps its record without the payload, in Redis's listpack
    # encoding (a hash a long value once made a hashtable never converts back: ~3x the memory for a day).
    from jobfleet.store.keys import Keys

    job_id = client.post("/v1/jobs/webhook", json={"url": receiver.url, "payload": {"pad": "x" * 300}}).get_json()[
        "job_id"
    ]
    body = wait_for_state(client, job_id, {"succeeded", "dead"})
    assert body["state"] == "succeeded", body
    key = Keys("jobfleet").job(job_id)
    assert not redis_client.hexists(key, "msg")
    assert redis_client.object("encoding", key) == b"listpack"
    assert 0 < redis_client.ttl(key) <= 86400
    assert body["history"][0]["outcome"] == "succeeded"
