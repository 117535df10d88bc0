"""Idempotency in two layers: the API dedupes client retries by Idempotency-Key; the worker ledger runs the
side effect once per key, whatever the broker delivers."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dramatiq
import pytest
import redis
from dramatiq.brokers.stub import StubBroker
from flask import Flask
from flask.testing import FlaskClient

from jobfleet.core.errors import LedgerUnavailable
from jobfleet.core.redis_client import make_client
from jobfleet.core.settings import Settings
from jobfleet.middleware.lifecycle import JobLifecycle
from jobfleet.middleware.retry_policy import RetryPolicy
from jobfleet.store.jobs import JobStore
from jobfleet.store.keys import Keys
from tests.conftest import Receiver, RunningWorker, socket_closed_port, wait_for_state

KEYS = Keys("jobfleet")


def queued_messages(client: redis.Redis, queue: str) -> int:
    return int(client.llen(KEYS.queue(queue)))


def test_same_key_and_body_returns_the_same_job_without_a_second_enqueue(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    first = client.post("/v1/jobs/report", json={"rows": 5, "format": "csv"}, headers={"Idempotency-Key": "k1"})
    # Same body with keys in another order and other whitespace: canonical JSON makes it the same request.
    again = client.post(
        "/v1/jobs/report",
        data='{ "format":"csv",  "rows":5 }',
        content_type="application/json",
        headers={"Idempotency-Key": "k1"},
    )
    assert first.status_code == again.status_code == 202
    assert first.get_json()["job_id"] == again.get_json()["job_id"]
    assert again.get_json()["idempotent_replay"] is True
    assert again.headers["Idempotent-Replayed"] == "true"
    assert queued_messages(redis_client, "reports") == 1


def test_same_key_with_another_body_is_422_naming_the_conflict(client: FlaskClient) -> None:
    first = client.post("/v1/jobs/report", json={"rows": 5}, headers={"Idempotency-Key": "k2"}).get_json()
    response = client.post("/v1/jobs/report", json={"rows": 6}, headers={"Idempotency-Key": "k2"})
    assert response.status_code == 422
    body = response.get_json()
    assert body["type"] == "urn:jobfleet:problem:idempotency-key-reused"
    assert body["job_id"] == first["job_id"]
    assert "different request body" in body["detail"]


def test_keys_are_scoped_by_job_type_and_absent_keys_make_new_jobs(client: FlaskClient) -> None:
    report = client.post("/v1/jobs/report", json={}, headers={"Idempotency-Key": "shared"}).get_json()
    email = client.post(
        "/v1/jobs/email", json={"to": "a@b.co", "subject": "s", "body": "b"}, headers={"Idempotency-Key": "shared"}
    ).get_json()
    assert report["job_id"] != email["job_id"]
    without = {client.post("/v1/jobs/report", json={}).get_json()["job_id"] for _ in range(3)}
    assert len(without) == 3


def test_concurrent_requests_with_one_key_create_exactly_one_job(app: Flask, redis_client: redis.Redis) -> None:
    key = f"race-{uuid.uuid4()}"

    def post(_: int) -> tuple[int, str]:
        response = app.test_client().post("/v1/jobs/report", json={"rows": 3}, headers={"Idempotency-Key": key})
        return response.status_code, response.get_json()["job_id"]

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(post, range(64)))
    assert {status for status, _ in results} == {202}
    assert len({job_id for _, job_id in results}) == 1
    assert queued_messages(redis_client, "reports") == 1


def test_the_idempotency_window_is_configurable(settings: Settings, redis_client: redis.Redis) -> None:
    import dataclasses

    from jobfleet.app import create_app

    client = create_app(dataclasses.replace(settings, idempotency_window_seconds=1)).test_client()
    first = client.post("/v1/jobs/report", json={}, headers={"Idempotency-Key": "short"}).get_json()["job_id"]
    [key] = redis_client.keys("jobfleet:idem:*")
    assert 0 < redis_client.ttl(key) <= 1
    time.sleep(1.2)
    second = client.post("/v1/jobs/report", json={}, headers={"Idempotency-Key": "short"}).get_json()["job_id"]
    assert first != second


def duplicate_message(client: redis.Redis, queue: str, job_id: str) -> None:
    """Deliver the job's message a second time at broker level (what a lost ack or a replica failover does)."""
    for data in client.hgetall(KEYS.queue_messages(queue)).values():
        message = json.loads(data)
        if message["message_id"] == job_id:
            message["options"]["redis_message_id"] = copy_id = uuid.uuid4().hex
            client.hset(KEYS.queue_messages(queue), copy_id, json.dumps(message))
            client.rpush(KEYS.queue(queue), copy_id)
            return
    raise AssertionError(f"no message for {job_id}")


def test_duplicate_delivery_runs_the_side_effect_once(
    client: FlaskClient, redis_client: redis.Redis, receiver: Receiver, start_worker: Any
) -> None:
    # Given a webhook job whose message sits in the queue twice
    job_id = client.post(
        "/v1/jobs/webhook", json={"url": receiver.url, "payload": {"n": 1}}, headers={"Idempotency-Key": "once"}
    ).get_json()["job_id"]
    duplicate_message(redis_client, "webhooks", job_id)
    assert queued_messages(redis_client, "webhooks") == 2
    # When one worker thread processes both deliveries
    start_worker(threads=1)
    body = wait_for_state(client, job_id, {"succeeded", "dead"})
    deadline = time.monotonic() + 10
    while queued_messages(redis_client, "webhooks") and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    # Then the receiver saw one POST, the status is intact and the duplicate is recorded
    assert receiver.by_key() == {"anonymous:once": 1}
    status = client.get(f"/v1/jobs/{job_id}").get_json()
    assert status["state"] == "succeeded"
    assert status["attempts"] == 1
    assert status["result"] == body["result"]
    events = [e["event"] for e in client.get(f"/v1/jobs/{job_id}/events").get_json()["events"]]
    assert events.count("started") == events.count("succeeded") == 1


def test_a_delivery_whose_key_is_leased_by_a_live_worker_waits_instead_of_running_twice(
    client: FlaskClient, redis_client: redis.Redis, receiver: Receiver, start_worker: Any
) -> None:
    # Given another live worker holds the lease of this job's idempotency key
    job_id = client.post(
        "/v1/jobs/webhook", json={"url": receiver.url, "payload": {}}, headers={"Idempotency-Key": "leased"}
    ).get_json()["job_id"]
    ledger = KEYS.ledger("webhook", "anonymous:leased")
    now_ms = int(time.time() * 1000)
    redis_client.zadd(KEYS.heartbeats(), {"other-worker": now_ms})
    redis_client.hset(
        ledger, mapping={"state": "running", "token": "t", "worker": "other-worker", "lease_until": now_ms + 60_000}
    )
    # When our worker gets the delivery
    start_worker()
    time.sleep(1.5)
    # Then it did not run the side effect; the job is waiting for the lease
    assert receiver.requests == []
    assert client.get(f"/v1/jobs/{job_id}").get_json()["state"] == "queued"
    # And once the other worker releases the lease, the job runs once
    redis_client.delete(ledger)
    assert wait_for_state(client, job_id, {"succeeded", "dead"})["state"] == "succeeded"
    assert receiver.by_key() == {"anonymous:leased": 1}


def test_a_lease_held_by_a_dead_worker_is_taken_over(
    client: FlaskClient, redis_client: redis.Redis, receiver: Receiver, start_worker: Any
) -> None:
    job_id = client.post(
        "/v1/jobs/webhook", json={"url": receiver.url, "payload": {}}, headers={"Idempotency-Key": "orphan"}
    ).get_json()["job_id"]
    stale = int(time.time() * 1000) - 600_000
    redis_client.zadd(KEYS.heartbeats(), {"dead-worker": stale})
    redis_client.hset(
        KEYS.ledger("webhook", "anonymous:orphan"),
        mapping={"state": "running", "token": "t", "worker": "dead-worker", "lease_until": stale + 10**9},
    )
    start_worker()
    assert wait_for_state(client, job_id, {"succeeded", "dead"})["state"] == "succeeded"


def test_redis_errors_in_the_ledger_hook_fail_closed_the_actor_never_runs() -> None:
    # Given the lifecycle middleware's store points at a Redis that does not answer
    down = make_client(Settings.from_env({}, redis_url=f"redis://127.0.0.1:{socket_closed_port()}/0"))
    store = JobStore(down, KEYS, job_ttl_seconds=60, dlq_ttl_seconds=60, ledger_ttl_seconds=60)
    broker = StubBroker(
        middleware=[JobLifecycle(store=store, policy=RetryPolicy(), heartbeat_timeout_ms=1000, max_interruptions=3)]
    )
    ran: list[int] = []

    @dramatiq.actor(broker=broker, queue_name="q")
    def side_effect() -> None:
        ran.append(1)

    errors: list[BaseException] = []
    redeliveries: list[int | None] = []

    class Spy(dramatiq.Middleware):
        def after_enqueue(self, broker: Any, message: Any, delay: int | None) -> None:
            redeliveries.append(delay)

        def after_process_message(
            self, broker: Any, message: Any, *, result: Any = None, exception: Any = None
        ) -> None:
            if exception is not None:
                errors.append(exception)

    broker.add_middleware(Spy())
    side_effect.send()
    worker = dramatiq.Worker(broker, worker_timeout=50)
    worker.start()
    started = time.monotonic()
    try:
        deadline = time.monotonic() + 10
        while not errors and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        worker.stop()
    print(f"fail-closed verdict after {time.monotonic() - started:.2f}s")
    # Then the actor did not run unguarded, the delivery failed with LedgerUnavailable and was postponed
    assert ran == []
    assert [type(e) for e in errors] == [LedgerUnavailable]
    assert redeliveries[1:] == [2000]  # after the original send: one redelivery scheduled, nothing lost


@pytest.mark.parametrize("outcome", ["succeeded"])
def test_a_completed_key_is_not_run_again_by_a_new_job_with_that_key(
    client: FlaskClient, receiver: Receiver, worker: RunningWorker, redis_client: redis.Redis, outcome: str
) -> None:
    # Given a job with key K completed, and the API's key window has since expired (the ledger's has not)
    first = client.post(
        "/v1/jobs/webhook", json={"url": receiver.url, "payload": {}}, headers={"Idempotency-Key": "K"}
    ).get_json()["job_id"]
    assert wait_for_state(client, first, {"succeeded", "dead"})["state"] == outcome
    for key in redis_client.keys("jobfleet:idem:*"):
        redis_client.delete(key)
    # When a new request with key K arrives
    second = client.post(
        "/v1/jobs/webhook", json={"url": receiver.url, "payload": {}}, headers={"Idempotency-Key": "K"}
    ).get_json()["job_id"]
    body = wait_for_state(client, second, {"succeeded", "dead"})
    # Then the side effect is not repeated: the job reports the earlier result, marked deduplicated
    assert second != first
    assert body["deduplicated"] is True
    assert len(receiver.requests) == 1
