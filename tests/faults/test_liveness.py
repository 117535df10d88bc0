"""Who is alive is judged by Redis's clock, and a delivery is fenced by its own token (store v2, part 1, item 3).

Invariants: a skewed worker clock or an outage longer than the heartbeat timeout never makes a healthy worker's job
run twice (no two deliveries of one job overlap, each job delivered once); a worker paused past the heartbeat
timeout loses its job to another worker, and its late finish changes nothing (the job ends once, as the newer
attempt ended it); nothing stays running."""

from __future__ import annotations

import time

import pytest

from tests.faults.stage import IntervalReceiver, Stage, post_webhooks
from tests.faults.toolkit import FakeTime, pause_process, pause_redis

pytestmark = pytest.mark.slow
BOUND_S = 40


def _wait_in_flight(receiver: IntervalReceiver, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while sum(1 for d in receiver.deliveries if not d.ended) < count and time.monotonic() < deadline:
        time.sleep(0.02)


def test_a_worker_whose_clock_runs_20s_ahead_runs_nobody_elses_job(
    stage: Stage, receiver_log: IntervalReceiver, faketime: FakeTime
) -> None:
    # Given two workers, one with its clock 20 s ahead (heartbeat timeout 2 s), and deliveries that take 3 s
    receiver_log.delay = 3.0
    api = stage.api()
    jobs = post_webhooks(api, receiver_log.url, 8)
    stage.worker(threads=2)
    stage.worker(threads=2, extra_env=faketime.env(20))
    # Then every job ends once, no two deliveries of one job ever overlap, and nothing stays running
    states, took = stage.wait_final(jobs, BOUND_S)
    print(f"\nall final in {took:.1f}s")
    assert set(states.values()) == {"succeeded"}
    assert receiver_log.overlaps() == []
    assert receiver_log.per_key() == dict.fromkeys(jobs, 1)
    assert stage.running_entries("webhooks") == 0


def test_redis_away_longer_than_the_heartbeat_timeout_requeues_nobody(
    stage: Stage, receiver_log: IntervalReceiver
) -> None:
    # Given two workers busy with deliveries that take 4 s
    receiver_log.delay = 4.0
    api = stage.api()
    jobs = post_webhooks(api, receiver_log.url, 4)
    stage.worker(threads=2)
    stage.worker(threads=2)
    _wait_in_flight(receiver_log, 4)
    # When Redis does not answer for 3 s (past the 2 s heartbeat timeout) while they run
    with pause_redis(stage.redis):
        time.sleep(3)
    # Then no worker takes another's job when Redis is back: each ends once, none overlapping
    states, _ = stage.wait_final(jobs, BOUND_S)
    assert set(states.values()) == {"succeeded"}
    assert receiver_log.overlaps() == []
    assert receiver_log.per_key() == dict.fromkeys(jobs, 1)


def test_a_worker_paused_past_the_heartbeat_timeout_loses_its_job_and_its_late_finish_changes_nothing(
    stage: Stage, receiver_log: IntervalReceiver
) -> None:
    # Given a worker running a webhook whose delivery takes 2 s, and a second idle worker
    receiver_log.delay = 2.0
    api = stage.api()
    [job_id] = post_webhooks(api, receiver_log.url, 1)
    paused = stage.worker(threads=1)
    _wait_in_flight(receiver_log, 1)
    other = stage.worker(threads=1)
    # When the first worker is frozen (SIGSTOP) for 6 s, past the 2 s heartbeat timeout, mid-delivery
    with pause_process(paused.proc.pid, group=True):
        states, _ = stage.wait_final([job_id], 20)
        # Then the other worker recovered the job and ran it to the end while the first was frozen
        assert states == {job_id: "succeeded"}, other.tail()
        done = api.get(f"/v1/jobs/{job_id}").get_json()
        time.sleep(max(0.0, 6 - 4))
    # And the frozen worker's late finish, once it wakes, changes nothing: the job ended once
    time.sleep(3)
    body = api.get(f"/v1/jobs/{job_id}").get_json()
    assert body["state"] == "succeeded"
    assert body["history"] == done["history"]
    assert [h["outcome"] for h in body["history"]] == ["interrupted", "succeeded"]
    assert stage.running_entries("webhooks") == 0
    assert paused.alive(), paused.tail()
