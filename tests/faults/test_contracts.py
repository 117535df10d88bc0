"""What a job keeps through failures (store v2, part 1, items 4, 7, 11 and 12): its payload byte for byte, a cancel
over every retry and redelivery, its record for as long as it waits, and a replayable dead letter after a crash."""

from __future__ import annotations

import json
import time

import pytest

from tests.faults.stage import KEYS, IntervalReceiver, Stage, post_webhooks

pytestmark = pytest.mark.slow
BOUND_S = 30

# JSON that a decode/re-encode in Lua's cjson would alter: [] becomes {}, big integers lose digits, and so on.
TRICKY = {
    "empty_list": [],
    "nested": {"list": [[], {}], "null": None},
    "big": 12345678901234567,
    "bigger": 2**63 + 1,
    "float": 0.1,
    "exp": 1e-7,
    "text": "ünïcödé ✓ \u2028",
}


def test_a_replayed_dead_letter_sends_exactly_the_payload_that_was_accepted(
    stage: Stage, receiver_log: IntervalReceiver
) -> None:
    # Given a webhook with JSON Lua's cjson would alter, refused (400) so that it is dead-lettered
    receiver_log.status = lambda body: 400 if len(receiver_log.deliveries) == 1 else 200
    api = stage.api()
    [job_id] = post_webhooks(api, receiver_log.url, 1, **TRICKY)
    stage.worker()
    assert stage.wait_final([job_id], BOUND_S)[0] == {job_id: "dead"}
    # Then the dead letter holds the payload exactly (integers past 2^53 included)
    letter = api.get(f"/v1/dlq/{job_id}").get_json()
    assert letter["payload"]["payload"] == {"n": 0, **TRICKY}
    # And its replay sends the very bytes the first delivery sent
    assert api.post(f"/v1/dlq/{job_id}/replay").status_code == 202
    assert stage.wait_final([job_id], BOUND_S)[0] == {job_id: "succeeded"}
    first, replayed = receiver_log.raw_bodies
    assert replayed == first
    assert json.loads(replayed) == {"n": 0, **TRICKY}


def test_a_cancel_wins_over_the_retry_the_attempt_would_make(stage: Stage, receiver_log: IntervalReceiver) -> None:
    # Given a webhook whose receiver takes 1.5 s and then answers 503 (a transient error: normally retried)
    receiver_log.delay = 1.5
    receiver_log.status = lambda body: 503
    api = stage.api()
    [job_id] = post_webhooks(api, receiver_log.url, 1)
    stage.worker()
    assert receiver_log.started.wait(30)
    # When the operator cancels it while the delivery is in flight
    response = api.delete(f"/v1/jobs/{job_id}")
    assert response.status_code == 202
    # Then the attempt ends cancelled, and the webhook is never POSTed again
    assert stage.wait_final([job_id], BOUND_S)[0] == {job_id: "cancelled"}
    time.sleep(2)
    assert len(receiver_log.deliveries) == 1


def test_a_cancel_wins_over_the_redelivery_after_a_crash(stage: Stage, receiver_log: IntervalReceiver) -> None:
    # Given a webhook in flight on a worker that is then killed, after a cancel was requested
    receiver_log.delay = 2.0
    api = stage.api()
    [job_id] = post_webhooks(api, receiver_log.url, 1)
    first = stage.worker()
    assert receiver_log.started.wait(30)
    assert api.delete(f"/v1/jobs/{job_id}").status_code == 202
    first.kill()
    # When another worker recovers the dead worker's job
    stage.worker()
    # Then it is cancelled, not delivered again
    assert stage.wait_final([job_id], BOUND_S)[0] == {job_id: "cancelled"}
    time.sleep(1)
    assert len(receiver_log.deliveries) == 1


def test_a_waiting_job_has_no_ttl_so_a_schedule_longer_than_the_retention_keeps_it(
    stage: Stage, receiver_log: IntervalReceiver
) -> None:
    # Given a retention of one minute and a job scheduled an hour out
    api = stage.api(job_retention_seconds=60, succeeded_retention_seconds=60)
    response = api.post("/v1/jobs/report?delay_seconds=3600", json={"rows": 5})
    job_id = response.get_json()["job_id"]
    # Then its record lives until it has run (no TTL while it waits), with its caller
    client = stage.client()
    assert client.ttl(KEYS.job(job_id)) == -1
    assert api.get(f"/v1/jobs/{job_id}").get_json()["state"] == "scheduled"
    assert client.hget(KEYS.job(job_id), "caller") == b"anonymous"
    # And once it ran, its retention counts from its end
    client.zadd(KEYS.queue(0, "reports"), {job_id: 0})  # make it due now
    stage.worker(extra_env={"JOBFLEET_SUCCEEDED_RETENTION_SECONDS": "60"})
    assert stage.wait_final([job_id], BOUND_S)[0] == {job_id: "succeeded"}
    assert 0 < client.ttl(KEYS.job(job_id)) <= 60


def test_bulk_replay_works_after_a_worker_crash_interrupted_the_job(
    stage: Stage, receiver_log: IntervalReceiver
) -> None:
    # Given a webhook whose first delivery died with its worker and whose second was refused (dead-lettered)
    receiver_log.delay = 2.0
    receiver_log.status = lambda body: 404
    api = stage.api()
    [job_id] = post_webhooks(api, receiver_log.url, 1)
    first = stage.worker()
    assert receiver_log.started.wait(30)
    first.kill()
    receiver_log.delay = 0.0
    stage.worker()
    assert stage.wait_final([job_id], BOUND_S)[0] == {job_id: "dead"}
    outcomes = [h["outcome"] for h in api.get(f"/v1/jobs/{job_id}").get_json()["history"]]
    assert outcomes == ["interrupted", "dead"]
    # When an operator replays the dead letters in bulk once the receiver is fixed
    receiver_log.status = lambda body: 200
    response = api.post("/v1/dlq/replay", json={"limit": 10})
    # Then the replay goes through and the job succeeds
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["replayed"] == 1
    assert stage.wait_final([job_id], BOUND_S)[0] == {job_id: "succeeded"}
