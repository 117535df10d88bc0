"""Deliveries: a worker process claims one job per thread, a job is ``running`` only while a thread runs it, the
thread that finishes takes its next job in the same call, claims put back unrun are released, and every claim is
fenced by its token — on real Redis, with the production broker driven directly or by in-process workers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from jobfleet.broker.worker_hooks import FleetLoop
from jobfleet.core.errors import StoreUnavailable
from jobfleet.core.settings import Settings
from jobfleet.store.attempts import Attempts, Ending
from jobfleet.store.delivery import state_of
from jobfleet.store.keys import Keys
from jobfleet.workers.actors import declare_actors
from jobfleet.workers.broker import build_broker
from tests.conftest import Receiver, RunningWorker, running, wait_for_state, waiting

KEYS = Keys("jobfleet")


def _post_webhooks(client: FlaskClient, receiver: Receiver, count: int) -> list[str]:
    return [
        client.post("/v1/jobs/webhook", json={"url": receiver.url, "payload": {"n": n}}).get_json()["job_id"]
        for n in range(count)
    ]


@contextmanager
def consumer_of(settings: Settings, queue: str, *, threads: int) -> Iterator[tuple[Any, Any]]:
    """The production broker set up as a worker with ``threads`` threads sets it up, and a consumer of ``queue``;
    no worker threads: the test drives the consumer itself."""
    broker = build_broker(settings)
    try:
        declare_actors(broker, settings)
        broker.deliveries.slots = threads
        yield broker, broker.consume(queue, timeout=100)
    finally:
        broker.close()


def _states(client: FlaskClient, job_ids: list[str]) -> list[str]:
    return [client.get(f"/v1/jobs/{j}").get_json()["state"] for j in job_ids]


def test_a_process_holds_at_most_one_claim_per_thread(
    client: FlaskClient, receiver: Receiver, start_worker: Any, redis_client: redis.Redis
) -> None:
    # Given six slow webhooks and a worker process with two threads
    receiver.delay = 0.3
    jobs = _post_webhooks(client, receiver, 6)
    start_worker(threads=2)
    # When it works through them, sampled from Redis in one atomic snapshot each time
    most = 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and set(_states(client, jobs)) != {"succeeded"}:
        with redis_client.pipeline(transaction=True) as pipe:
            pipe.zcard(KEYS.running(0, "webhooks"))
            pipe.zcard(KEYS.queue(0, "webhooks"))
            in_flight, _ = pipe.execute()
        most = max(most, in_flight)
        time.sleep(0.02)
    # Then no more than two were ever running, and all succeeded
    assert set(_states(client, jobs)) == {"succeeded"}
    assert 1 <= most <= 2


def test_a_finishing_thread_takes_its_next_job_without_a_fetch(
    client: FlaskClient, receiver: Receiver, start_worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a backlog of twenty webhooks and one worker thread
    fetches = 0
    real_fetch = Attempts.fetch

    def counting_fetch(self: Attempts, *args: Any, **kwargs: Any) -> Any:
        nonlocal fetches
        claimed, held = real_fetch(self, *args, **kwargs)
        fetches += bool(claimed)
        return claimed, held

    monkeypatch.setattr(Attempts, "fetch", counting_fetch)
    jobs = _post_webhooks(client, receiver, 20)
    start_worker(threads=1)
    for job_id in jobs:
        assert wait_for_state(client, job_id, {"succeeded", "dead"})["state"] == "succeeded"
    # Then the consumer fetched once (or a few times) and every other job came with the previous one's finish
    assert fetches <= 3, fetches


def test_claims_put_back_unrun_are_released_not_counted(
    client: FlaskClient, receiver: Receiver, settings: Settings, redis_client: redis.Redis
) -> None:
    """The consumer's two give-back paths: requeue (handed-out messages a stopping worker never ran) and close."""
    jobs = _post_webhooks(client, receiver, 3)
    with consumer_of(settings, "webhooks", threads=3) as (_broker, consumer):
        handed = next(consumer)  # claims all three; hands out one
        while handed is None:
            handed = next(consumer)
        assert state_of(handed).claimed is not None
        assert set(_states(client, jobs)) == {"running"}
        consumer.requeue([handed])  # what Worker.stop does with work-queue messages that never ran
        consumer.close()  # and what a stopping consumer does with the two still claimed
    for job_id in jobs:
        body = client.get(f"/v1/jobs/{job_id}").get_json()
        assert (body["state"], body["attempts"], body["history"]) == ("queued", 0, [])
        events = [e["event"] for e in client.get(f"/v1/jobs/{job_id}/events").get_json()["events"]]
        assert events == ["accepted", "released"]
    assert running(redis_client, "webhooks") == 0
    assert waiting(redis_client, "webhooks") == 3


def test_claims_a_lost_reply_made_are_reconciled(
    client: FlaskClient, receiver: Receiver, settings: Settings, redis_client: redis.Redis
) -> None:
    # Given a fetch that claimed two jobs for this worker, whose reply never arrived (the worker knows nothing)
    jobs = _post_webhooks(client, receiver, 2)
    with consumer_of(settings, "webhooks", threads=2) as (broker, consumer):
        lost, _ = broker.attempts.fetch(0, "webhooks", 2)
        assert len(lost) == 2
        broker.deliveries.suspect.add((0, "webhooks"))  # what a failed fetch call leaves
        # When the consumer goes on, it first gives back what Redis says it holds and it does not
        first = next(consumer)
        while first is None:
            first = next(consumer)
        # Then the two jobs were released and claimed afresh under new tokens
        assert sorted(c.job_id for c in lost) == sorted(jobs)
        held = broker.deliveries.held_in(0, "webhooks")
        assert {c.token for c in held} == {2}
        assert running(redis_client, "webhooks") == 2
        consumer.requeue([first])
        consumer.close()
    assert waiting(redis_client, "webhooks") == 2


def test_a_stale_worker_finish_changes_nothing_and_a_rerun_finish_is_idempotent(
    client: FlaskClient, receiver: Receiver, settings: Settings, redis_client: redis.Redis
) -> None:
    # Given a job claimed by a worker that then stalled: recovery gave it back and another delivery claimed it
    [job_id] = _post_webhooks(client, receiver, 1)
    with consumer_of(settings, "webhooks", threads=1) as (broker, _consumer):
        attempts = broker.attempts
        [stale], _ = attempts.fetch(0, "webhooks", 1)
        assert attempts.release(0, "webhooks", [stale]) == 1  # stands in for recovery's give-back
        [current], _ = attempts.fetch(0, "webhooks", 1)
        assert current.token == stale.token + 1
        ending = Ending("succeeded", job_type="webhook", caller="anonymous", result={"n": 1})
        # When the stale delivery finishes late, it changes nothing
        assert attempts.finish(stale, Ending("dead", job_type="webhook", caller="anonymous"))[0] == "stale"
        assert client.get(f"/v1/jobs/{job_id}").get_json()["state"] == "running"
        # And the current delivery's finish, run twice (a lost reply), records once
        assert attempts.finish(current, ending)[0] == "succeeded"
        assert attempts.finish(current, ending)[0] == "done"
    body = client.get(f"/v1/jobs/{job_id}").get_json()
    assert (body["state"], body["result"]) == ("succeeded", {"n": 1})
    assert [h["outcome"] for h in body["history"]] == ["succeeded"]


def test_redis_down_at_consumer_close_keeps_the_claims_for_the_next_consumer(
    client: FlaskClient, receiver: Receiver, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = _post_webhooks(client, receiver, 2)
    with consumer_of(settings, "webhooks", threads=2) as (broker, consumer):
        first = next(consumer)
        while first is None:
            first = next(consumer)

        def down(*args: Any, **kwargs: Any) -> int:
            raise StoreUnavailable("injected: Redis is down", "connection")

        monkeypatch.setattr(Attempts, "release", down)
        consumer.close()  # must not raise
        # Then the claim not handed out is still held by this process, for the next consumer to hand out
        [kept] = broker.deliveries.pending["webhooks"]
        assert kept.job_id in jobs
        assert kept.job_id != state_of(first).claimed.job_id  # type: ignore[union-attr]
        monkeypatch.undo()
        second = broker.consume("webhooks", timeout=100)
        handed = next(second)
        assert handed is not None
        assert handed.message_id == kept.job_id


def test_a_worker_handles_concurrent_consumers_sharing_its_slots(
    client: FlaskClient, receiver: Receiver, worker: RunningWorker
) -> None:
    # Given jobs on two queues of one process (webhooks and reports) at once
    hooks = _post_webhooks(client, receiver, 5)
    reports = [client.post("/v1/jobs/report", json={"rows": 10}).get_json()["job_id"] for _ in range(5)]
    threading.Event().wait(0.1)
    # Then every job of both queues succeeds
    for job_id in hooks + reports:
        assert wait_for_state(client, job_id, {"succeeded", "dead"})["state"] == "succeeded"


def test_drain_marks_attempts_still_running_so_their_recovery_counts_no_crash(
    client: FlaskClient, settings: Settings, redis_client: redis.Redis
) -> None:
    # Given a job a worker runs when it stops and the drain deadline passes (its thread still busy)
    [job_id] = _post_webhooks(client, Receiver(url="http://127.0.0.1:9/hook"), 1)
    with consumer_of(settings, "webhooks", threads=1) as (broker, consumer):
        handed = next(consumer)
        while handed is None:
            handed = next(consumer)
        claimed = state_of(handed).claimed
        assert claimed is not None
        # What WorkerHooks does when the worker stops: the loop exits with the attempts still running
        FleetLoop(broker.deliveries, SimpleNamespace(consumers={})).exit(broker.deliveries.running())
    # Then the job is marked drained and this worker's heartbeat is aged, so another worker recovers it soon and
    # gives it back instead of counting an interruption
    assert redis_client.hget(KEYS.job(job_id), "drain") == b"1"
    with consumer_of(settings, "webhooks", threads=1) as (other, _):
        deadline = time.monotonic() + 10
        recovered = 0
        while not recovered and time.monotonic() < deadline:
            recovered, dead, _ = other.attempts.recover(
                0, "webhooks", heartbeat_timeout_ms=3000, max_interruptions=1, offset=0, limit=10
            )
            time.sleep(0.1)
        assert (recovered, dead) == (1, 0)
    body = client.get(f"/v1/jobs/{job_id}").get_json()
    assert (body["state"], body["attempts"], body["history"]) == ("queued", 0, [])
