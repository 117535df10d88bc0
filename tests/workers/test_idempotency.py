"""Idempotency: the API dedupes client retries by Idempotency-Key (one job per key and body, atomically, for the
window); the broker delivers a job's record at most once at a time, so a side effect runs once per delivery that
ends, whatever lands on the queue twice."""

from __future__ import annotations

import dataclasses
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis
from flask import Flask
from flask.testing import FlaskClient

from jobfleet.app import create_app
from jobfleet.core.settings import Settings
from jobfleet.store.keys import Keys
from tests.conftest import Receiver, RunningWorker, running, wait_for_state, waiting

KEYS = Keys("jobfleet")


def queued_messages(client: redis.Redis, queue: str) -> int:
    return waiting(client, queue, KEYS)


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
    client = create_app(dataclasses.replace(settings, idempotency_window_seconds=1)).test_client()
    first = client.post("/v1/jobs/report", json={}, headers={"Idempotency-Key": "short"}).get_json()["job_id"]
    [key] = redis_client.keys("*:idem:*")
    assert 0 < redis_client.ttl(key) <= 1
    time.sleep(1.2)
    second = client.post("/v1/jobs/report", json={}, headers={"Idempotency-Key": "short"}).get_json()["job_id"]
    assert first != second


def test_a_job_put_back_on_its_queue_after_it_finished_is_not_run_again(
    client: FlaskClient, redis_client: redis.Redis, receiver: Receiver, worker: RunningWorker
) -> None:
    # Given a webhook job that succeeded
    job_id = client.post(
        "/v1/jobs/webhook", json={"url": receiver.url, "payload": {"n": 1}}, headers={"Idempotency-Key": "once"}
    ).get_json()["job_id"]
    body = wait_for_state(client, job_id, {"succeeded", "dead"})
    # When its id lands on the queue again (what a lost reply, an operator or an old release could do)
    redis_client.zadd(KEYS.queue(KEYS.partition_of(job_id), "webhooks"), {job_id: 0})
    deadline = time.monotonic() + 10
    while queued_messages(redis_client, "webhooks") and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    # Then the worker dropped it: the receiver saw one POST and the status is intact
    assert queued_messages(redis_client, "webhooks") == 0
    assert receiver.by_key() == {"anonymous:once": 1}
    status = client.get(f"/v1/jobs/{job_id}").get_json()
    assert status["state"] == "succeeded"
    assert status["attempts"] == 1
    assert status["result"] == body["result"]


def test_one_message_sent_twice_through_the_broker_is_one_job(
    client: FlaskClient, receiver: Receiver, worker: RunningWorker
) -> None:
    # Given a message a producer sends twice (a retry of its own after a timeout)
    actor = worker.broker.get_actor("deliver_webhook")
    message = actor.message(url=receiver.url, payload={"n": 2})
    worker.broker.enqueue(message)
    worker.broker.enqueue(message)
    # Then it is one job, run once
    assert wait_for_state(client, message.message_id, {"succeeded", "dead"})["state"] == "succeeded"
    time.sleep(0.3)
    assert len(receiver.requests) == 1


def test_a_job_running_on_a_live_worker_is_never_given_to_another(
    client: FlaskClient, redis_client: redis.Redis, receiver: Receiver, start_worker: Any
) -> None:
    # Given a job another live worker claimed and runs (its record, running entry and heartbeat say so)
    job_id = client.post("/v1/jobs/webhook", json={"url": receiver.url, "payload": {}}).get_json()["job_id"]
    p = KEYS.partition_of(job_id)
    redis_client.zrem(KEYS.queue(p, "webhooks"), job_id)
    now_ms = int(redis_client.time()[0] * 1000)
    redis_client.hset(KEYS.job(job_id), mapping={"state": "running", "token": 7, "worker": "other", "attempts": 1})
    redis_client.zadd(KEYS.running(p, "webhooks"), {f"{job_id}:7": now_ms - 60_000})
    stop = time.monotonic() + 3.5  # past the heartbeat timeout (3 s) and our worker's reconnect grace
    # When our worker runs next to it for longer than the heartbeat timeout, the other one heartbeating
    start_worker()
    while time.monotonic() < stop:
        redis_client.zadd(KEYS.heartbeats(p), {"other": int(redis_client.time()[0] * 1000)})
        time.sleep(0.2)
    # Then ours never ran it
    assert receiver.requests == []
    assert client.get(f"/v1/jobs/{job_id}").get_json()["state"] == "running"
    # And once the other worker falls silent, ours recovers the job and runs it once
    body = wait_for_state(client, job_id, {"succeeded", "dead"}, timeout=20)
    assert body["state"] == "succeeded"
    assert len(receiver.requests) == 1
    assert body["history"][-1]["outcome"] == "succeeded"
    assert running(redis_client, "webhooks", KEYS) == 0


def test_a_key_reused_with_another_body_after_the_window_runs_its_own_job(
    client: FlaskClient, receiver: Receiver, worker: RunningWorker, redis_client: redis.Redis
) -> None:
    # Given a job with key K that succeeded, and the key's window has since expired
    first = client.post(
        "/v1/jobs/webhook", json={"url": receiver.url, "payload": {"v": 1}}, headers={"Idempotency-Key": "K"}
    ).get_json()["job_id"]
    assert wait_for_state(client, first, {"succeeded", "dead"})["state"] == "succeeded"
    for key in redis_client.keys("*:idem:*"):
        redis_client.delete(key)
    # When a request with key K and another body arrives
    second = client.post(
        "/v1/jobs/webhook", json={"url": receiver.url, "payload": {"v": 2}}, headers={"Idempotency-Key": "K"}
    ).get_json()["job_id"]
    body = wait_for_state(client, second, {"succeeded", "dead"})
    # Then it is a job of its own that ran with its own body, never the first job's result
    assert second != first
    assert body["deduplicated"] is False
    assert [r["body"] for r in receiver.requests] == [{"v": 1}, {"v": 2}]


def test_concurrent_requests_with_one_key_each_see_one_job(app: Flask, redis_client: redis.Redis) -> None:
    # Given 8 distinct keys, each sent by 8 concurrent requests
    keys = [f"k-{uuid.uuid4()}" for _ in range(8)]

    def post(key: str) -> str:
        response = app.test_client().post("/v1/jobs/report", json={}, headers={"Idempotency-Key": key})
        assert response.status_code == 202
        job_id: str = response.get_json()["job_id"]
        return job_id

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(post, keys * 8))
    # Then each key made exactly one job
    assert len(set(results)) == len(keys)
    assert queued_messages(redis_client, "reports") == len(keys)
