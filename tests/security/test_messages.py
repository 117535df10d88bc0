"""Messages are JSON, never pickle; a job forged in Redis (its record and its place on the queue) with an invalid
payload is dead-lettered as permanent before its side effect, and one whose message cannot be decoded as poison."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import dramatiq
import redis
from dramatiq import Message
from dramatiq.encoder import JSONEncoder
from flask.testing import FlaskClient

from jobfleet.core.job_types import JOB_TYPES, JobType
from jobfleet.store.factory import keys_for
from jobfleet.store.keys import Keys
from jobfleet.store.records import new_job_fields
from tests.conftest import Receiver, RunningWorker, wait_for_state
from tests.observability.conftest import wait_for_sample, worker_registry

ROOT = Path(__file__).parent.parent.parent


def test_the_dramatiq_encoder_is_json_and_the_stored_message_is_plain_json(
    client: FlaskClient, worker: RunningWorker, redis_client: redis.Redis
) -> None:
    assert type(dramatiq.get_encoder()) is JSONEncoder
    worker.worker.stop()  # keep the job waiting to look at it
    job_id = client.post("/v1/jobs/report", json={"rows": 3}).get_json()["job_id"]
    keys = keys_for(worker.settings)
    # The job's record holds the encoded message (field msg); the queue holds only the job's id
    decoded = json.loads(redis_client.hget(keys.job(job_id), "msg") or b"")
    assert decoded["message_id"] == job_id
    assert decoded["kwargs"] == {"rows": 3, "format": "csv", "seed": 0}
    assert redis_client.zrange(keys.queue(keys.partition_of(job_id), "reports"), 0, -1) == [job_id.encode()]


def test_no_module_uses_pickle_or_marshal() -> None:
    for folder in ("app", "workers", "middleware", "jobfleet"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            for module in ("pickle", "marshal", "shelve", "dill"):
                assert f"import {module}" not in text, f"{path} imports {module}"
                assert f"from {module}" not in text, f"{path} imports {module}"


def forge_record(client: redis.Redis, keys: Keys, job_id: str, job_type: JobType, encoded_message: bytes) -> None:
    """Write a job record straight into Redis and put it on its queue, the way an attacker with Redis access (not
    the API) would: the fields submit.lua writes, with a message no API check has seen."""
    seconds, micros = client.time()
    now_ms = seconds * 1000 + micros // 1000
    fields = new_job_fields(
        encoded_message=encoded_message,
        job_type=job_type.name,
        queue=job_type.queue_name,
        actor=job_type.actor_name,
        caller="mallory",
        scoped_key=job_id,
        trace_id="",
    )
    client.hset(
        keys.job(job_id),
        mapping={**fields, "state": "queued", "attempts": 0, "token": 0, "enqueued": now_ms, "due": now_ms},
    )
    client.zadd(keys.queue(keys.partition_of(job_id), job_type.queue_name), {job_id: now_ms})


def forge(client: redis.Redis, keys: Keys, kwargs: dict[str, Any], job_type: JobType) -> str:
    """Forge a job whose message is a well-formed Dramatiq message with ``kwargs`` as its payload."""
    job_id = uuid.uuid4().hex
    message: Message[Any] = Message(
        queue_name=job_type.queue_name,
        actor_name=job_type.actor_name,
        args=(),
        kwargs=kwargs,
        options={"job_type": job_type.name, "idempotency_key": job_id},
        message_id=job_id,
        message_timestamp=int(time.time() * 1000),
    )
    forge_record(client, keys, job_id, job_type, message.encode())
    return job_id


def test_a_forged_message_with_an_invalid_payload_is_dead_lettered_without_its_side_effect(
    client: FlaskClient, worker: RunningWorker, receiver: Receiver, redis_client: redis.Redis
) -> None:
    # Given a webhook job forged in Redis: a valid receiver URL but a header injection and an extra field
    job_id = forge(
        redis_client,
        keys_for(worker.settings),
        {"url": receiver.url, "payload": {}, "headers": {"X-A": "b\r\nHost: evil"}, "shell": "rm -rf /"},
        JOB_TYPES["webhook"],
    )
    # Then the actor's re-validation refuses it: dead, permanent, one attempt, and no request was made
    body = wait_for_state(client, job_id, {"succeeded", "dead"})
    assert body["state"] == "dead"
    assert body["attempts"] == 1
    assert body["error"]["type"] == "PermanentError"
    assert "invalid WebhookPayload" in body["error"]["message"]
    assert client.get(f"/v1/dlq/{job_id}").get_json()["reason"] == "permanent"
    time.sleep(0.2)
    assert receiver.requests == []


def test_a_forged_record_whose_message_cannot_be_decoded_is_dead_lettered_as_poison_unrun(
    client: FlaskClient, worker: RunningWorker, receiver: Receiver, redis_client: redis.Redis
) -> None:
    # Given forged webhook jobs whose message is not a Dramatiq message: bytes that are not JSON, and JSON that
    # names the receiver but lacks the message's fields
    keys = keys_for(worker.settings)
    garbage, not_a_message = uuid.uuid4().hex, uuid.uuid4().hex
    forge_record(redis_client, keys, garbage, JOB_TYPES["webhook"], b"\xff not json")
    forge_record(
        redis_client,
        keys,
        not_a_message,
        JOB_TYPES["webhook"],
        json.dumps({"kwargs": {"url": receiver.url, "payload": {}}}).encode(),
    )
    # And a real job behind them
    good = client.post("/v1/jobs/webhook", json={"url": receiver.url, "payload": {}}).get_json()["job_id"]

    # Then each is dead-lettered as poison, its actor never ran, and the worker went on to the good job
    for job_id in (garbage, not_a_message):
        body = wait_for_state(client, job_id, {"succeeded", "dead"})
        assert body["state"] == "dead"
        assert body["error"]["type"] == "PoisonMessage"
        assert "undecodable message" in body["error"]["message"]
        letter = client.get(f"/v1/dlq/{job_id}").get_json()
        assert letter["reason"] == "poison"
        assert letter["summary"]["replayable"] is False
        refused = client.post(f"/v1/dlq/{job_id}/replay")  # its message would only be poison again
        assert refused.status_code == 409
        assert "poison" in refused.get_json()["detail"]
        assert client.get(f"/v1/jobs/{job_id}").get_json()["state"] == "dead"
    assert wait_for_state(client, good, {"succeeded", "dead"})["state"] == "succeeded"
    registry = worker_registry(worker)
    wait_for_sample(registry, "jobfleet_jobs_succeeded_total", {"queue": "webhooks", "actor": "deliver_webhook"}, 1)
    assert (
        registry.get_sample_value("jobfleet_jobs_started_total", {"queue": "webhooks", "actor": "deliver_webhook"}) == 1
    )
    # Only the good job's webhook was sent (a job without an Idempotency-Key is keyed by its id)
    assert [r["headers"].get("Idempotency-Key") for r in receiver.requests] == [good]
