"""Messages are JSON, never pickle; a message forged in Redis with an invalid payload is dead-lettered as
permanent before its side effect."""

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

from jobfleet.store.keys import Keys
from tests.conftest import Receiver, RunningWorker, wait_for_state

KEYS = Keys("jobfleet")
ROOT = Path(__file__).parent.parent.parent


def test_the_dramatiq_encoder_is_json_and_the_stored_message_is_plain_json(
    client: FlaskClient, worker: RunningWorker, redis_client: redis.Redis
) -> None:
    assert type(dramatiq.get_encoder()) is JSONEncoder
    worker.worker.stop()  # keep the message in Redis to look at it
    job_id = client.post("/v1/jobs/report", json={"rows": 3}).get_json()["job_id"]
    [raw] = redis_client.hvals(KEYS.queue_messages("reports"))
    decoded = json.loads(raw)
    assert decoded["message_id"] == job_id
    assert decoded["kwargs"] == {"rows": 3, "format": "csv", "seed": 0}


def test_no_module_uses_pickle_or_marshal() -> None:
    for folder in ("app", "workers", "middleware", "jobfleet"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            for module in ("pickle", "marshal", "shelve", "dill"):
                assert f"import {module}" not in text, f"{path} imports {module}"
                assert f"from {module}" not in text, f"{path} imports {module}"


def forge(client: redis.Redis, queue: str, actor: str, kwargs: dict[str, Any], job_type: str) -> str:
    """Push a message straight into Redis, the way an attacker with Redis access (not the API) would."""
    job_id = uuid.uuid4().hex
    redis_id = uuid.uuid4().hex
    message: Message[Any] = Message(
        queue_name=queue,
        actor_name=actor,
        args=(),
        kwargs=kwargs,
        options={"job_type": job_type, "idempotency_key": job_id, "redis_message_id": redis_id},
        message_id=job_id,
        message_timestamp=int(time.time() * 1000),
    )
    client.hset(KEYS.queue_messages(queue), redis_id, message.encode())
    client.rpush(KEYS.queue(queue), redis_id)
    return job_id


def test_a_forged_message_with_an_invalid_payload_is_dead_lettered_without_its_side_effect(
    client: FlaskClient, worker: RunningWorker, receiver: Receiver, redis_client: redis.Redis
) -> None:
    # Given a webhook message forged in Redis: a valid receiver URL but a header injection and an extra field
    job_id = forge(
        redis_client,
        "webhooks",
        "deliver_webhook",
        {"url": receiver.url, "payload": {}, "headers": {"X-A": "b\r\nHost: evil"}, "shell": "rm -rf /"},
        "webhook",
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
