"""Retries, dead letters, replay, poison messages, cancellation and scheduling — on real Redis."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import dramatiq
import pytest
import redis
from flask.testing import FlaskClient

from jobfleet.app.enqueue import submit
from jobfleet.core.errors import StoreUnavailable
from jobfleet.core.job_types import JobType
from jobfleet.core.payloads import ReportPayload
from jobfleet.store.attempts import Attempts
from jobfleet.store.keys import Keys
from tests.conftest import Receiver, RunningWorker, running, wait_for_state, waiting

KEYS = Keys("jobfleet")
FINAL = {"succeeded", "dead", "cancelled", "failed"}


def enqueue_webhook(client: FlaskClient, receiver: Receiver, key: str | None = None, **payload: Any) -> str:
    headers = {"Idempotency-Key": key} if key else {}
    response = client.post("/v1/jobs/webhook", json={"url": receiver.url, "payload": payload}, headers=headers)
    assert response.status_code == 202, response.get_json()
    job_id: str = response.get_json()["job_id"]
    return job_id


def test_a_dead_letter_holds_everything_needed_to_understand_and_replay_it(
    client: FlaskClient, worker: RunningWorker, receiver: Receiver
) -> None:
    receiver.statuses = [503, 503, 410]  # transient, transient, then permanent on the final attempt
    job_id = enqueue_webhook(client, receiver, key="dl-1", order=1)
    assert wait_for_state(client, job_id, FINAL)["state"] == "dead"

    letter = client.get(f"/v1/dlq/{job_id}").get_json()
    assert letter["job_id"] == job_id
    assert (letter["type"], letter["queue"], letter["actor"]) == ("webhook", "webhooks", "deliver_webhook")
    assert letter["payload"]["payload"] == {"order": 1}
    assert letter["idempotency_key"] == "anonymous:dl-1"
    assert letter["reason"] == "permanent"
    assert letter["attempts"] == 3
    # The traceback is the final attempt's (the 410), not the previous one's (503)
    assert letter["error"]["type"] == "PermanentError"
    assert "410" in letter["error"]["message"]
    assert "410" in letter["error"]["traceback"]
    assert "PermanentError" in letter["error"]["traceback"]
    assert letter["first_failure_at"] < letter["last_failure_at"]
    assert "trace_id" in letter

    listing = client.get("/v1/dlq").get_json()
    assert listing["total"] == 1
    assert listing["items"][0]["job_id"] == job_id
    assert listing["items"][0]["replayable"] is True


def test_no_message_gets_both_a_retry_and_a_dead_letter(
    client: FlaskClient, worker: RunningWorker, receiver: Receiver, redis_client: redis.Redis
) -> None:
    receiver.statuses = [400]
    job_id = enqueue_webhook(client, receiver)
    assert wait_for_state(client, job_id, FINAL)["state"] == "dead"
    time.sleep(0.3)
    assert len(receiver.requests) == 1
    # Nothing waits to run it again and nothing has it running: the dead letter is the job's only future
    assert waiting(redis_client, "webhooks") == 0
    assert running(redis_client, "webhooks") == 0
    assert redis_client.zrange(KEYS.dlq(0), 0, -1) == [job_id.encode()]


def test_replay_from_the_dlq_succeeds_once_the_cause_is_fixed(
    client: FlaskClient, worker: RunningWorker, receiver: Receiver
) -> None:
    # Given a job dead-lettered by a 404 from its receiver
    receiver.statuses = [404]
    job_id = enqueue_webhook(client, receiver, key="replay-me")
    assert wait_for_state(client, job_id, FINAL)["state"] == "dead"
    # When the receiver is fixed and an operator replays it
    response = client.post(f"/v1/dlq/{job_id}/replay")
    assert response.status_code == 202
    assert response.get_json()["replay"] == 1
    body = wait_for_state(client, job_id, {"succeeded", "dead"})
    # Then it succeeds with fresh attempts, the same idempotency key, and its status shows the replay
    assert body["state"] == "succeeded"
    assert body["replays"] == 1
    assert body["attempts"] == 1
    assert [h["outcome"] for h in body["history"]] == ["dead", "succeeded"]
    assert [h.get("replay") for h in body["history"]] == [0, 1]
    assert receiver.by_key() == {"anonymous:replay-me": 2}
    assert client.get(f"/v1/dlq/{job_id}").status_code == 404
    events = [e["event"] for e in client.get(f"/v1/jobs/{job_id}/events").get_json()["events"]]
    assert events.index("dead") < events.index("replayed") < events.index("succeeded")
    [audit] = client.get("/v1/audit").get_json()["items"]
    assert (audit["who"], audit["action"], audit["target"], audit["count"]) == ("anonymous", "replay", job_id, 1)


def test_bulk_replay_filters_bounds_and_has_a_dry_run(
    client: FlaskClient, worker: RunningWorker, receiver: Receiver
) -> None:
    receiver.responder = lambda request: 404 if request["body"].get("fail") else 200
    failing = [enqueue_webhook(client, receiver, fail=True, n=n) for n in range(5)]
    for job_id in failing:
        assert wait_for_state(client, job_id, FINAL)["state"] == "dead"

    dry = client.post("/v1/dlq/replay", json={"type": "webhook", "limit": 3, "dry_run": True}).get_json()
    assert (dry["dry_run"], dry["matched"], dry["replayed"]) == (True, 3, 0)
    assert set(dry["job_ids"]) <= set(failing)
    assert client.get("/v1/dlq").get_json()["total"] == 5
    none = client.post("/v1/dlq/replay", json={"type": "email"}).get_json()
    assert none["matched"] == 0

    receiver.responder = None  # the cause is fixed
    done = client.post("/v1/dlq/replay", json={"exception": "PermanentError", "limit": 3, "per_second": 100}).get_json()
    assert (done["matched"], done["replayed"]) == (3, 3)
    for job_id in done["job_ids"]:
        assert wait_for_state(client, job_id, FINAL)["state"] == "succeeded"
    assert client.get("/v1/dlq").get_json()["total"] == 2
    actions = [(a["action"], a["count"]) for a in client.get("/v1/audit").get_json()["items"]]
    assert actions == [("bulk_replay", 3), ("bulk_replay", 0)]
    bad = client.post("/v1/dlq/replay", json={"limit": 100_000})
    assert bad.status_code == 422


def test_dlq_listing_paginates_and_purge_marks_the_job_failed(
    client: FlaskClient, worker: RunningWorker, receiver: Receiver
) -> None:
    receiver.statuses = [404] * 3
    jobs = [enqueue_webhook(client, receiver, n=n) for n in range(3)]
    for job_id in jobs:
        assert wait_for_state(client, job_id, FINAL)["state"] == "dead"
    first = client.get("/v1/dlq?limit=2").get_json()
    second = client.get(f"/v1/dlq?limit=2&cursor={first['next_cursor']}").get_json()
    seen = [i["job_id"] for i in first["items"] + second["items"]]
    assert sorted(seen) == sorted(jobs)
    assert client.get("/v1/dlq?limit=0").status_code == 422

    assert client.delete(f"/v1/dlq/{jobs[0]}").status_code == 204
    assert client.get(f"/v1/jobs/{jobs[0]}").get_json()["state"] == "failed"
    assert client.delete(f"/v1/dlq/{jobs[0]}").status_code == 404
    assert client.get("/v1/dlq").get_json()["total"] == 2
    assert client.get("/v1/audit?limit=1").get_json()["items"][0]["action"] == "purge"


def forge_job(redis_client: redis.Redis, job_id: str, message: bytes, *, actor: str, queue: str = "reports") -> None:
    """Put a job straight into Redis, as someone with access to it could (or an older or newer jobfleet)."""
    redis_client.hset(
        KEYS.job(job_id),
        mapping={"msg": message, "state": "queued", "type": "report", "queue": queue, "actor": actor, "attempts": 0},
    )
    redis_client.zadd(KEYS.queue(KEYS.partition_of(job_id), queue), {job_id: 0})


def test_poison_messages_go_to_the_dlq_and_the_worker_keeps_processing(
    client: FlaskClient, worker: RunningWorker, redis_client: redis.Redis
) -> None:
    # Given an undecodable message among good jobs in one queue
    good_before = client.post("/v1/jobs/report", json={"rows": 10}).get_json()["job_id"]
    garbage = uuid.uuid4().hex
    forge_job(redis_client, garbage, b"\xff not json", actor="build_report")
    good_after = [client.post("/v1/jobs/report", json={"rows": 10}).get_json()["job_id"] for _ in range(5)]
    # Then every good job succeeds and the poison message is a dead letter that says what it was
    for job_id in [good_before, *good_after]:
        assert wait_for_state(client, job_id, FINAL)["state"] == "succeeded"
    assert wait_for_state(client, garbage, FINAL)["state"] == "dead"
    [item] = client.get("/v1/dlq?reason=poison").get_json()["items"]
    assert item["job_id"] == garbage
    assert "undecodable" in item["message"]
    assert item["replayable"] is False
    assert client.get(f"/v1/dlq/{garbage}").get_json()["raw"].endswith("not json")
    assert client.post(f"/v1/dlq/{garbage}/replay").status_code == 409
    # And nothing stays running
    assert running(redis_client, "reports") == 0


def test_a_job_for_an_actor_this_worker_lacks_is_held_back_never_dead_lettered(
    client: FlaskClient, worker: RunningWorker, redis_client: redis.Redis
) -> None:
    # Given a job for an actor only a newer worker has (a rolling deploy), queued before good jobs
    newer = uuid.uuid4().hex
    message = {
        "queue_name": "reports",
        "actor_name": "build_report_v2",
        "args": [],
        "kwargs": {},
        "options": {},
        "message_id": newer,
        "message_timestamp": 0,
    }
    forge_job(redis_client, newer, json.dumps(message).encode(), actor="build_report_v2")
    good = [client.post("/v1/jobs/report", json={"rows": 10}).get_json()["job_id"] for _ in range(3)]
    for job_id in good:
        assert wait_for_state(client, job_id, FINAL)["state"] == "succeeded"
    # Then this worker held it back for another worker: still queued, on its queue, counted, never in the DLQ
    body = client.get(f"/v1/jobs/{newer}").get_json()
    assert body["state"] == "queued"
    assert waiting(redis_client, "reports") == 1
    assert redis_client.hget(KEYS.held_back(0), "reports|build_report_v2") == b"1"
    assert client.get("/v1/dlq").get_json()["total"] == 0
    events = [e["event"] for e in client.get(f"/v1/jobs/{newer}/events").get_json()["events"]]
    assert events == ["held"]  # a forged record has no accepted time
    # And a worker that has the actor runs it once it is due again (here: declared on this broker)
    ran: list[int] = []

    def build_report_v2() -> None:
        ran.append(1)

    dramatiq.actor(build_report_v2, broker=worker.broker, queue_name="reports")
    redis_client.zadd(KEYS.queue(KEYS.partition_of(newer), "reports"), {newer: 0})
    assert wait_for_state(client, newer, FINAL)["state"] == "succeeded"
    assert ran == [1]


def test_cancelling_a_queued_job_means_it_never_starts(
    client: FlaskClient, receiver: Receiver, start_worker: Any
) -> None:
    job_id = enqueue_webhook(client, receiver)
    response = client.delete(f"/v1/jobs/{job_id}")
    assert response.status_code == 200
    assert response.get_json()["state"] == "cancelled"
    start_worker()
    time.sleep(1.0)
    assert receiver.requests == []
    assert client.get(f"/v1/jobs/{job_id}").get_json()["state"] == "cancelled"
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 409
    assert client.get("/v1/audit").get_json()["items"][0]["action"] == "cancel"


def test_cancelling_a_running_job_stops_it_at_its_next_progress_report(
    client: FlaskClient, worker: RunningWorker
) -> None:
    job_id = client.post("/v1/jobs/report", json={"rows": 1_000_000}).get_json()["job_id"]
    wait_for_state(client, job_id, {"running"})
    response = client.delete(f"/v1/jobs/{job_id}")
    assert response.status_code in {202, 409}, response.get_json()
    if response.status_code == 409:  # it finished before the cancel landed: nothing to assert on
        return
    assert response.get_json()["cancel_requested"] is True
    body = wait_for_state(client, job_id, FINAL)
    assert body["state"] == "cancelled"
    assert body["history"][-1]["outcome"] == "cancelled"
    assert body["error"]["type"] == "JobCancelled"


def test_cancelling_a_finished_job_is_409(client: FlaskClient, worker: RunningWorker) -> None:
    job_id = client.post("/v1/jobs/report", json={"rows": 5}).get_json()["job_id"]
    wait_for_state(client, job_id, FINAL)
    response = client.delete(f"/v1/jobs/{job_id}")
    assert response.status_code == 409
    assert response.get_json()["state"] == "succeeded"


def test_a_delayed_job_is_scheduled_until_due(client: FlaskClient, worker: RunningWorker) -> None:
    response = client.post("/v1/jobs/report?delay_seconds=1.5", json={"rows": 5})
    job_id = response.get_json()["job_id"]
    assert client.get(f"/v1/jobs/{job_id}").get_json()["state"] == "scheduled"
    body = wait_for_state(client, job_id, FINAL)
    assert body["state"] == "succeeded"
    from datetime import datetime

    waited = datetime.fromisoformat(body["started_at"]) - datetime.fromisoformat(body["enqueued_at"])
    assert waited.total_seconds() >= 1.4


def test_schedule_bounds_are_enforced(client: FlaskClient) -> None:
    assert client.post("/v1/jobs/report?delay_seconds=-1", json={}).status_code == 400
    assert client.post("/v1/jobs/report?delay_seconds=99999999", json={}).status_code == 400
    assert client.post("/v1/jobs/report?not_before=tomorrow", json={}).status_code == 400
    assert client.post("/v1/jobs/report?not_before=2020-01-01T00:00:00", json={}).status_code == 400
    past = client.post("/v1/jobs/report?not_before=2020-01-01T00:00:00Z", json={})
    assert past.get_json()["state"] == "queued"


def test_a_retry_redis_could_not_record_is_recorded_later_not_lost(
    client: FlaskClient, worker: RunningWorker, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given Redis refuses the calls that record a retry (outcome and retry are one script call), where stock
    # Dramatiq would ack the delivery and lose the message when its re-enqueue fails (dramatiq#545)
    receiver.statuses = [503]
    real_finish = Attempts.finish
    failures = {"left": 5}

    def flaky_finish(self: Attempts, claimed: Any, ending: Any, **kwargs: Any) -> Any:
        if ending.outcome == "retrying" and failures["left"] > 0:
            failures["left"] -= 1
            raise StoreUnavailable("injected: Redis blip while recording the retry", "connection")
        return real_finish(self, claimed, ending, **kwargs)

    monkeypatch.setattr(Attempts, "finish", flaky_finish)
    job_id = enqueue_webhook(client, receiver)
    # Then the worker keeps the outcome, records it once Redis takes it, and the retry runs and succeeds
    body = wait_for_state(client, job_id, FINAL, timeout=30)
    assert failures["left"] == 0
    assert body["state"] == "succeeded"
    assert len(receiver.requests) == 2
    assert [h["outcome"] for h in body["history"]] == ["retrying", "succeeded"]


def test_a_time_limit_hit_is_transient_and_retried_up_to_the_cap(
    client: FlaskClient, worker: RunningWorker, redis_client: redis.Redis
) -> None:
    # Given an actor that overruns its 200 ms limit (declared on the real broker)
    def overrun() -> None:
        time.sleep(2)

    dramatiq.actor(overrun, broker=worker.broker, queue_name="reports", time_limit=200, job_type="overrun")
    spec = JobType("overrun", "overrun", "reports", ReportPayload, time_limit_seconds=1)
    submitted = submit(worker.broker.store, spec, {}, caller="test", idempotency_key=None, idempotency_ttl=60)
    body = wait_for_state(client, submitted.job_id, FINAL, timeout=30)
    assert body["state"] == "dead"
    assert body["attempts"] == 3
    assert {h["error"]["type"] for h in body["history"]} == {"TimeLimitExceeded"}
    assert client.get(f"/v1/dlq/{submitted.job_id}").get_json()["reason"] == "exhausted"
