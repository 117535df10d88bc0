"""Claims at fetch time (fetch.lua + claim.lua): a delivery costs no round trip of its own, a job is ``running``
only while a thread runs it, and claims put back unrun (graceful shutdown) are undone — on real Redis, with real
in-process Dramatiq workers."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from dramatiq.errors import ConnectionClosed
from flask.testing import FlaskClient

from jobfleet.broker import redis_broker
from jobfleet.core.errors import StoreUnavailable
from jobfleet.core.settings import Settings
from jobfleet.middleware.lifecycle import JobLifecycle
from jobfleet.store.delivery import state_of
from jobfleet.store.jobs import JobStore, script_source
from jobfleet.store.keys import Keys
from jobfleet.workers.actors import declare_actors
from jobfleet.workers.broker import build_broker
from tests.conftest import Receiver, RedisServer, RunningWorker, wait_for_state


def _post_webhooks(client: FlaskClient, receiver: Receiver, count: int) -> list[str]:
    return [
        client.post(
            "/v1/jobs/webhook", json={"url": receiver.url, "payload": {"n": n}}, headers={"Idempotency-Key": f"k{n}"}
        ).get_json()["job_id"]
        for n in range(count)
    ]


@contextmanager
def claiming_consumer(settings: Settings, *, threads: int) -> Iterator[tuple[Any, Any]]:
    """A production broker set up as a worker with ``threads`` threads would set it up (claims on), and a
    consumer of the webhooks queue; no worker threads, so the test drives the consumer itself."""
    broker = build_broker(settings)
    try:
        declare_actors(broker, settings)
        lifecycle = next(m for m in broker.middleware if isinstance(m, JobLifecycle))
        lifecycle.before_worker_boot(broker, SimpleNamespace(worker_threads=threads))
        yield broker, broker.consume("webhooks", prefetch=threads, timeout=100)
    finally:
        broker.close()


def _script_calls(redis_url: str, sha: str, first_key: str = "") -> tuple[Callable[[], int], threading.Event]:
    """Count EVALSHA calls of the script ``sha`` (whose first key is ``first_key``, when given) with MONITOR;
    returns (stop and read the count, ready event)."""
    client = redis.Redis.from_url(redis_url)
    calls = 0
    stop = threading.Event()
    ready = threading.Event()

    def watch() -> None:
        nonlocal calls
        with client.monitor() as monitor:  # type: ignore[no-untyped-call]
            ready.set()
            while not stop.is_set():
                command = monitor.next_command()["command"]
                if command.startswith(f"EVALSHA {sha}") and (not first_key or f" {first_key} " in command):
                    calls += 1

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()

    def finish() -> int:
        stop.set()
        client.set("test:wake-monitor", 1)
        thread.join(5)
        client.close()
        return calls

    return finish, ready


def test_jobs_are_claimed_in_the_fetch_not_by_a_begin_call_per_job(
    client: FlaskClient,
    redis_client: redis.Redis,
    redis_url: str,
    start_worker: Callable[..., RunningWorker],
    receiver: Receiver,
) -> None:
    job_ids = _post_webhooks(client, receiver, 12)
    begin_sha = hashlib.sha1(script_source("begin").encode(), usedforsecurity=False).hexdigest()
    finish_monitor, ready = _script_calls(redis_url, begin_sha)
    assert ready.wait(5)
    running = start_worker(threads=4)
    bodies = [wait_for_state(client, job_id, {"succeeded", "dead"}) for job_id in job_ids]
    begins = finish_monitor()
    assert [b["state"] for b in bodies] == ["succeeded"] * 12
    assert begins == 0  # no delivery needed the per-job begin round trip
    keys = Keys(running.settings.namespace)
    for n, body in enumerate(bodies):
        assert body["attempts"] == 1
        assert _events(client, body["id"])[:2] == ["accepted", "started"]
        # fetch.lua derived the same ledger key as Keys.ledger: the finished entry is where Python looks.
        assert redis_client.hget(keys.ledger("webhook", f"anonymous:k{n}"), "state") == b"done"
    assert len(receiver.requests) == 12
    assert redis_client.zcard(keys.running()) == 0  # fetch.lua's running-set member is the one finish removes


def test_a_finishing_thread_takes_its_next_message_in_the_finish_call(
    client: FlaskClient, redis_url: str, start_worker: Callable[..., RunningWorker], receiver: Receiver
) -> None:
    """With one thread busy on a backlog, its slot is never free: the consumer does not fetch from the queue at
    all, each finish hands over the next message (stock Dramatiq: a fetch after nearly every ack)."""
    receiver.delay = 0.05
    job_ids = _post_webhooks(client, receiver, 12)
    fetch_sha = hashlib.sha1(script_source("fetch").encode(), usedforsecurity=False).hexdigest()
    finish_monitor, ready = _script_calls(redis_url, fetch_sha, first_key=Keys("jobfleet").queue("webhooks"))
    assert ready.wait(5)
    start_worker(threads=1)
    bodies = [wait_for_state(client, job_id, {"succeeded", "dead"}) for job_id in job_ids]
    fetches = finish_monitor()
    assert [b["state"] for b in bodies] == ["succeeded"] * 12
    assert [b["attempts"] for b in bodies] == [1] * 12
    # The first fetch, plus idle polls after the backlog is gone (before the monitor stops): never one per job.
    assert 1 <= fetches <= 4, fetches


def test_a_job_is_running_only_while_a_thread_runs_it(
    client: FlaskClient, redis_client: redis.Redis, start_worker: Callable[..., RunningWorker], receiver: Receiver
) -> None:
    receiver.delay = 0.3
    job_ids = _post_webhooks(client, receiver, 8)
    keys = Keys(start_worker(threads=2).settings.namespace)
    busiest: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        snapshot = redis_client.pipeline(transaction=True)  # one atomic read of every job's state
        for job_id in job_ids:
            snapshot.hget(keys.job(job_id), "state")
        states = [state.decode() for state in snapshot.execute()]
        if states.count("running") > busiest.count("running"):
            busiest = states
        if states.count("succeeded") == len(job_ids):
            break
        time.sleep(0.02)
    assert states.count("succeeded") == len(job_ids), states
    # Dramatiq would prefetch 2 x threads; claims are capped at the thread count, so at most 2 show running.
    assert 1 <= busiest.count("running") <= 2, busiest


def test_claims_of_messages_put_back_at_shutdown_are_released(
    client: FlaskClient, start_worker: Callable[..., RunningWorker], receiver: Receiver
) -> None:
    receiver.delay = 0.3
    job_ids = _post_webhooks(client, receiver, 10)
    first = start_worker(threads=2)
    deadline = time.monotonic() + 10
    while len(receiver.requests) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    first.worker.stop(timeout=10_000)  # graceful: running jobs finish; claimed-but-unrun ones go back
    after_stop = _states(client, job_ids)
    assert {b["state"] for b in after_stop} <= {"succeeded", "queued"}, [b["state"] for b in after_stop]
    released = [b for b in after_stop if b["state"] == "queued" and "released" in _events(client, b["id"])]
    for body in released:  # (a deterministic test of release is below; here the stop may put none back)
        assert body["attempts"] == 0
        assert body["history"] == []
    start_worker(threads=4)
    bodies = [wait_for_state(client, job_id, {"succeeded", "dead"}) for job_id in job_ids]
    assert [b["state"] for b in bodies] == ["succeeded"] * 10
    for body in bodies:
        # Released claims left no trace in the attempt count: one attempt, never interrupted.
        assert body["attempts"] == 1, body
        assert [h["outcome"] for h in body["history"]] == ["succeeded"]
    assert sorted(receiver.by_key().values()) == [1] * 10


def _states(client: FlaskClient, job_ids: list[str]) -> list[dict[str, Any]]:
    return [client.get(f"/v1/jobs/{job_id}").get_json() for job_id in job_ids]


def _events(client: FlaskClient, job_id: str) -> list[str]:
    return [e["event"] for e in client.get(f"/v1/jobs/{job_id}/events").get_json()["events"]]


def test_release_undoes_a_claim_that_never_ran(
    client: FlaskClient, redis_client: redis.Redis, settings: Settings, receiver: Receiver
) -> None:
    """The consumer's two give-back paths (shutdown requeue of handed-out messages, close with prefetched ones)."""
    job_ids = _post_webhooks(client, receiver, 3)
    with claiming_consumer(settings, threads=3) as (_broker, consumer):
        handed = next(consumer)  # fetches and claims all three; hands out one
        assert handed is not None
        assert state_of(handed).claim.verdict == "run"  # type: ignore[union-attr]
        assert {b["state"] for b in _states(client, job_ids)} == {"running"}
        consumer.requeue([handed])  # what Worker.stop does with work-queue messages that never ran
        consumer.close()  # and what a stopping consumer does with the two still prefetched
        keys = Keys(settings.namespace)
        for n, body in enumerate(_states(client, job_ids)):
            assert (body["state"], body["attempts"], body["history"]) == ("queued", 0, []), body
            assert _events(client, body["id"]) == ["accepted", "started", "released"]
            assert not redis_client.exists(keys.ledger("webhook", f"anonymous:k{n}"))  # lease given back
        assert redis_client.zcard(keys.running()) == 0
        assert redis_client.llen(keys.queue("webhooks")) == 3  # and the messages are back on their queue


def test_a_message_the_worker_cannot_decode_is_never_claimed(
    client: FlaskClient, redis_client: redis.Redis, start_worker: Callable[..., RunningWorker], receiver: Receiver
) -> None:
    """fetch.lua claims only well-formed messages: one Dramatiq would refuse (an unknown field) is left to the
    worker, which dead-letters it as poison — no attempt, no lease and no running entry left behind."""
    [job_id] = _post_webhooks(client, receiver, 1)
    keys = Keys("jobfleet")
    [redis_id] = redis_client.lrange(keys.queue("webhooks"), 0, -1)
    message = json.loads(redis_client.hget(keys.queue_messages("webhooks"), redis_id) or b"")
    message["surprise"] = 1  # valid JSON, known actor, but Message(**fields) raises
    redis_client.hset(keys.queue_messages("webhooks"), redis_id, json.dumps(message))
    start_worker(threads=2)
    body = wait_for_state(client, job_id, {"succeeded", "dead"})
    assert body["state"] == "dead"
    assert (body["attempts"], body["history"]) == (0, [])
    assert "started" not in _events(client, job_id)
    assert redis_client.zcard(keys.running()) == 0
    assert not redis_client.exists(keys.ledger("webhook", "anonymous:k0"))
    assert receiver.requests == []


def test_a_finish_whose_reply_was_lost_strands_no_message(
    client: FlaskClient,
    start_worker: Callable[..., RunningWorker],
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first finish runs in Redis (taking the next message into this worker's acks set) but its reply is
    lost: the retried finish takes nothing, and the consumer requeues the message nobody here holds."""
    real_finish = JobStore.finish
    calls = 0

    def reply_lost_once(self: JobStore, **kwargs: Any) -> list[bytes]:
        nonlocal calls
        reply = real_finish(self, **kwargs)
        calls += 1
        if calls == 1:
            raise StoreUnavailable("Redis finish failed: ConnectionError: reply lost (injected)")
        return reply

    monkeypatch.setattr(JobStore, "finish", reply_lost_once)
    job_ids = _post_webhooks(client, receiver, 4)
    start_worker(threads=1)
    bodies = [wait_for_state(client, job_id, {"succeeded", "dead"}) for job_id in job_ids]
    assert [b["state"] for b in bodies] == ["succeeded"] * 4
    assert sorted(receiver.by_key().values()) == [1] * 4  # every webhook sent exactly once


def test_orphans_are_requeued_only_when_they_stay_unheld(
    redis_client: redis.Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message in this worker's unacked set that nothing here holds is an orphan only if it stays so: one a
    finishing thread took is handed over a moment later, and requeueing it would run it twice."""
    monkeypatch.setattr(redis_broker, "_ORPHAN_AGE_S", 0.2)
    with claiming_consumer(settings, threads=4) as (broker, consumer):
        keys = Keys(settings.namespace)
        acks = keys.acks(broker.broker_id, "webhooks")
        for redis_id in ("lost", "taken"):
            redis_client.hset(keys.queue_messages("webhooks"), redis_id, b"{}")
            redis_client.sadd(acks, redis_id)
        consumer._requeue_orphans()  # first sighting: nothing requeued yet
        assert redis_client.llen(keys.queue("webhooks")) == 0
        broker.adopt("webhooks", [b"taken", b"{}", b"", b"", b"", b""])  # the finish's reply arrives
        time.sleep(0.25)
        consumer._requeue_orphans()
        assert redis_client.lrange(keys.queue("webhooks"), 0, -1) == [b"lost"]
        assert redis_client.smembers(acks) == {b"taken"}
        assert "webhooks" not in broker.orphans_suspected


def test_prefetched_messages_keep_their_claims_when_redis_is_down_at_close(
    client: FlaskClient, redis_server: RedisServer, settings: Settings, receiver: Receiver
) -> None:
    """Neither the release nor the requeue can reach Redis: the prefetched messages stay on the broker with their
    claims (still valid in Redis), for the next consumer of the queue to hand out."""
    _post_webhooks(client, receiver, 3)
    with claiming_consumer(settings, threads=3) as (broker, consumer):
        assert next(consumer) is not None  # all three fetched and claimed, one handed out
        redis_server.stop()
        try:
            consumer.close()  # must not raise
            kept = broker.pending["webhooks"]
            assert len(kept) == 2
            assert all(claim is not None and claim.verdict == "run" for _, _, claim in kept)
        finally:
            redis_server.start()


def test_a_poison_message_met_while_redis_is_down_is_dead_lettered_once_redis_is_back(
    client: FlaskClient, redis_client: redis.Redis, redis_server: RedisServer, settings: Settings
) -> None:
    """The consumer fetched a poison message, then Redis went away before it could be dead-lettered: the consumer
    restarts (ConnectionClosed) with the message still first in line, and dead-letters it when Redis is back."""
    keys = Keys(settings.namespace)
    redis_client.hset(keys.queue_messages("webhooks"), "garbage-1", b"\xff not json")
    redis_client.rpush(keys.queue("webhooks"), "garbage-1")
    with claiming_consumer(settings, threads=2) as (broker, consumer):
        assert consumer._fetch()  # the garbage is now prefetched, not yet decoded
        redis_server.stop()
        try:
            with pytest.raises(ConnectionClosed):
                next(consumer)
            assert [redis_id for redis_id, _, _ in broker.pending["webhooks"]] == ["garbage-1"]
        finally:
            redis_server.start()  # (this test Redis keeps no data across a restart: only the letter is checked)
        assert next(consumer) is None  # dead-lettered and acked, nothing to hand out
    [letter] = client.get("/v1/dlq?reason=poison").get_json()["items"]
    assert letter["job_id"] == "poison-garbage-1"
    assert "undecodable" in letter["message"]
