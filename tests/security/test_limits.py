"""Backpressure and limits: the per-caller rate limit (429) and per-queue depth (503), both with Retry-After and
without losing an accepted job; bounded JSON checked before Redis is touched."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable

import pytest
import redis
from flask.testing import FlaskClient

from jobfleet.app import create_app
from jobfleet.core.settings import Settings
from jobfleet.store.keys import Keys
from tests.conftest import RunningWorker, wait_for_state
from tests.security.conftest import bearer

KEYS = Keys("jobfleet")


def test_a_caller_over_its_rate_gets_429_with_retry_after_and_others_are_unaffected(
    secure_settings: Settings,
) -> None:
    client = create_app(dataclasses.replace(secure_settings, rate_limit_per_second=1, rate_limit_burst=3)).test_client()
    statuses = [client.post("/v1/jobs/report", json={}, headers=bearer("alice")).status_code for _ in range(5)]
    assert statuses == [202, 202, 202, 429, 429]
    refused = client.get("/v1/jobs/" + "0" * 32, headers=bearer("alice"))  # reads share the caller's budget
    assert refused.status_code == 429
    assert refused.mimetype == "application/problem+json"
    assert int(refused.headers["Retry-After"]) >= 1
    assert client.post("/v1/jobs/report", json={}, headers=bearer("bob")).status_code == 202  # per caller
    time.sleep(1.1)
    assert client.post("/v1/jobs/report", json={}, headers=bearer("alice")).status_code == 202  # refilled


def test_requests_that_fail_validation_use_up_the_callers_rate_too(secure_settings: Settings) -> None:
    client = create_app(dataclasses.replace(secure_settings, rate_limit_per_second=1, rate_limit_burst=3)).test_client()
    # Admission comes before the body is read: invalid payloads, malformed JSON and unknown types all count
    assert client.post("/v1/jobs/report", json={"rows": -1}, headers=bearer("alice")).status_code == 422
    malformed = client.post("/v1/jobs/report", data="{", content_type="application/json", headers=bearer("alice"))
    assert malformed.status_code == 400
    assert client.post("/v1/jobs/nope", json={}, headers=bearer("alice")).status_code == 404
    refused = client.post("/v1/jobs/report", data="{", content_type="application/json", headers=bearer("alice"))
    assert refused.status_code == 429
    assert client.post("/v1/jobs/report", json={}, headers=bearer("bob")).status_code == 202


def test_unauthenticated_requests_are_limited_per_client_address(secure_settings: Settings) -> None:
    client = create_app(dataclasses.replace(secure_settings, rate_limit_per_second=1, rate_limit_burst=3)).test_client()
    scanner = {"REMOTE_ADDR": "203.0.113.7"}
    wrong = {"Authorization": "Bearer jf_guess"}
    statuses = [client.get("/v1/dlq", headers=wrong, environ_base=scanner).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    limited = client.post("/v1/jobs/report", json={}, environ_base=scanner)
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    # Other addresses and authenticated callers (even from that address) have buckets of their own
    assert client.get("/v1/dlq", environ_base={"REMOTE_ADDR": "203.0.113.8"}).status_code == 401
    assert client.post("/v1/jobs/report", json={}, headers=bearer("alice"), environ_base=scanner).status_code == 202
    # Public routes are never limited
    assert client.get("/healthz", environ_base=scanner).status_code == 200


def test_the_rate_limit_bucket_expires_once_full_again(secure_settings: Settings, redis_client: redis.Redis) -> None:
    client = create_app(
        dataclasses.replace(secure_settings, rate_limit_per_second=100, rate_limit_burst=5)
    ).test_client()
    client.get("/v1/dlq", headers=bearer("admin"))
    ttl = redis_client.pttl(KEYS.rate_bucket("ops"))
    assert 0 < ttl <= 1050 + 50  # burst/rate s + 1 s: idle callers leave nothing behind


def test_a_full_queue_answers_503_with_retry_after_and_no_accepted_job_is_lost(
    settings: Settings, redis_client: redis.Redis, start_worker: Callable[..., RunningWorker]
) -> None:
    # Given a reports queue limited to 5 jobs and no worker yet (one partition: the limit is per queue partition)
    assert settings.queue_partitions == 1
    client = create_app(dataclasses.replace(settings, max_queue_depth=5)).test_client()
    answers = [client.post("/v1/jobs/report", json={"rows": 1}) for _ in range(8)]
    # Then the first 5 are accepted and the rest refused with 503 + Retry-After, counted by reason
    accepted = [a.get_json()["job_id"] for a in answers if a.status_code == 202]
    refused = [a for a in answers if a.status_code != 202]
    assert len(accepted) == 5
    assert {r.status_code for r in refused} == {503}
    assert refused[0].get_json()["type"] == "urn:jobfleet:problem:queue-full"
    assert refused[0].get_json()["queue"] == "reports"
    assert int(refused[0].headers["Retry-After"]) >= 1
    # Nothing half-written for refused requests: five ids on the queue, five job records
    assert sorted(m.decode() for m in redis_client.zrange(KEYS.queue(0, "reports"), 0, -1)) == sorted(accepted)
    assert len(list(redis_client.scan_iter(match=KEYS.job_prefix(0) + "*"))) == 5
    registry = client.application.extensions["jobfleet_metrics"].registry
    assert registry.get_sample_value(
        "jobfleet_enqueue_rejections_total", {"job_type": "report", "reason": "queue_full"}
    ) == len(refused)
    # Delayed jobs count towards the depth too
    assert client.post("/v1/jobs/report?delay_seconds=60", json={}).status_code == 503
    # A client retrying a request that was accepted gets its job back even while the queue is full
    keyed = create_app(dataclasses.replace(settings, max_queue_depth=6)).test_client()
    first = keyed.post("/v1/jobs/report", json={"rows": 2}, headers={"Idempotency-Key": "retry-me"})
    assert first.status_code == 202
    again = keyed.post("/v1/jobs/report", json={"rows": 2}, headers={"Idempotency-Key": "retry-me"})
    assert (again.status_code, again.get_json()["job_id"]) == (202, first.get_json()["job_id"])
    accepted.append(first.get_json()["job_id"])
    # And other queues are not affected
    assert client.post("/v1/jobs/email", json={"to": "a@example.com", "subject": "s", "body": ""}).status_code == 202
    # When a worker drains the queue, every accepted job succeeds and the queue takes jobs again
    start_worker()
    for job_id in accepted:
        assert wait_for_state(client, job_id, {"succeeded", "dead"})["state"] == "succeeded"
    assert client.post("/v1/jobs/report", json={"rows": 1}).status_code == 202


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"url": "https://example.com/", "payload": json.loads("[" * 40 + "]" * 40)}, "nests deeper"),
        ({"url": "https://example.com/", "payload": list(range(20_000))}, "more than"),
        ({"url": "https://example.com/", "payload": {"k": "x" * 300_000}}, "characters long"),
        ({"url": "https://example.com/", "payload": {"k" * 300_000: 1}}, "object key"),
    ],
)
def test_json_bodies_are_bounded_before_redis_is_touched(
    client: FlaskClient, redis_client: redis.Redis, body: object, why: str
) -> None:
    response = client.post("/v1/jobs/webhook", json=body)
    assert response.status_code == 400
    assert response.get_json()["type"] == "urn:jobfleet:problem:json-too-complex"
    assert why in response.get_json()["detail"]
    assert redis_client.dbsize() == 0


def test_json_nested_past_the_parsers_stack_is_a_400_not_a_500(client: FlaskClient) -> None:
    response = client.post("/v1/jobs/report", data="[" * 200_000 + "]" * 200_000, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["type"] == "urn:jobfleet:problem:json-too-complex"


def test_an_invalid_payload_never_reaches_redis(client: FlaskClient, redis_client: redis.Redis) -> None:
    assert client.post("/v1/jobs/webhook", json={"url": "ftp://x", "payload": {}}).status_code == 422
    assert client.post("/v1/jobs/report", json={"rows": -1}).status_code == 422
    assert redis_client.dbsize() == 0


def test_without_auth_there_is_no_rate_limit_but_depth_still_applies(settings: Settings) -> None:
    client = create_app(dataclasses.replace(settings, rate_limit_per_second=1, rate_limit_burst=1)).test_client()
    assert {client.post("/v1/jobs/report", json={}).status_code for _ in range(5)} == {202}


def test_redis_down_during_admission_is_a_503_not_a_500(settings: Settings) -> None:
    from tests.conftest import socket_closed_port

    down = dataclasses.replace(
        settings, redis_url=f"redis://127.0.0.1:{socket_closed_port()}/0", redis_timeout_seconds=0.2
    )
    response = create_app(down).test_client().post("/v1/jobs/report", json={})
    assert response.status_code == 503
    assert response.get_json()["type"] == "urn:jobfleet:problem:redis-unavailable"
