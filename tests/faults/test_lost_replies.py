"""Replies lost in flight (store v2, part 1, item 2): a call that ran in Redis but whose reply never reached the
caller is never applied twice, and nothing it claimed is stranded.

Invariant for each: one request makes one job; every accepted job reaches a final state within a bound; each is
delivered once; nothing stays running without a live holder."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator

import pytest

from jobfleet.store.scripts import SCRIPTS, script_source
from tests.faults.stage import IntervalReceiver, Stage, post_webhooks
from tests.faults.toolkit import ReplyProxy

pytestmark = pytest.mark.slow
BOUND_S = 30


def sha(script: str) -> bytes:
    """How an EVALSHA of ``script`` names it on the wire."""
    return hashlib.sha1(script_source(script).encode(), usedforsecurity=False).hexdigest().encode()


@pytest.fixture
def proxy(stage: Stage) -> Iterator[ReplyProxy]:
    """A proxy in front of the stage's Redis, which already holds every script: the reply a test drops is then the
    reply of a script that ran (not a NOSCRIPT error sent before any script runs)."""
    client = stage.client()
    for name in SCRIPTS:
        client.script_load(script_source(name))
    started = ReplyProxy(stage.redis.port).start()
    yield started
    started.stop()


def test_a_submit_whose_reply_is_lost_makes_one_job(
    stage: Stage, proxy: ReplyProxy, receiver_log: IntervalReceiver
) -> None:
    # Given the API talks to Redis through a proxy that swallows the reply of the next submit (it ran in Redis)
    api = stage.api(redis_url=proxy.url)
    proxy.drop_next_reply(matching=sha("submit"))
    # When a client enqueues a webhook (without an Idempotency-Key)
    response = api.post("/v1/jobs/webhook", json={"url": receiver_log.url, "payload": {"n": 1}})
    # Then the API's retry found the job the lost call made: one job on the queue, and a worker runs it once
    assert proxy.dropped == 1
    assert response.status_code == 202, response.get_json()
    job_id = response.get_json()["job_id"]
    assert stage.client().zcard("{jobfleet:0}:q:webhooks") == 1
    stage.worker()
    states, _ = stage.wait_final([job_id], BOUND_S)
    assert states == {job_id: "succeeded"}
    time.sleep(0.3)
    assert receiver_log.per_key() == {job_id: 1}


def test_a_submit_stalled_past_the_socket_timeout_is_one_job_after_the_client_retries(
    stage: Stage, proxy: ReplyProxy, receiver_log: IntervalReceiver
) -> None:
    # Given every Redis reply to the API is held 3 s, past its 2 s socket timeout (the commands still run)
    api = stage.api(redis_url=proxy.url)
    proxy.delay_replies(3.0)
    body = {"url": receiver_log.url, "payload": {"n": 2}}
    headers = {"Idempotency-Key": "stalled-1"}
    first = api.post("/v1/jobs/webhook", json=body, headers=headers)
    # When the client, told 503, retries with its Idempotency-Key once Redis answers in time again
    assert first.status_code == 503, first.get_json()
    proxy.delay_replies(0)
    again = api.post("/v1/jobs/webhook", json=body, headers=headers)
    # Then it gets the one job the stalled calls made, and that job runs once
    assert again.status_code == 202, again.get_json()
    job_id = again.get_json()["job_id"]
    assert stage.client().zcard("{jobfleet:0}:q:webhooks") == 1
    stage.worker()
    states, _ = stage.wait_final([job_id], BOUND_S)
    assert states == {job_id: "succeeded"}
    time.sleep(0.3)
    assert receiver_log.per_key() == {"anonymous:stalled-1": 1}


@pytest.mark.parametrize("script", ["finish", "fetch"])
def test_a_worker_call_whose_reply_is_lost_strands_nothing(
    stage: Stage, proxy: ReplyProxy, receiver_log: IntervalReceiver, script: str
) -> None:
    # Given 12 webhooks and a worker talking to Redis through the proxy
    receiver_log.delay = 0.1
    api = stage.api()
    jobs = post_webhooks(api, receiver_log.url, 12)
    if script == "fetch":
        proxy.drop_next_reply(matching=sha("fetch"))  # the first fetch claims jobs and its reply is lost
    worker = stage.worker(url=proxy.url, threads=2)
    if script == "finish":
        deadline = time.monotonic() + 30
        while not receiver_log.deliveries and time.monotonic() < deadline:
            time.sleep(0.01)
        proxy.drop_next_reply(matching=sha("finish"))  # a finish records its outcome, takes the next job: lost
    # Then every job ends within the bound, each delivered once, and nothing stays running
    states, took = stage.wait_final(jobs, BOUND_S)
    print(f"\n{script} reply lost: all final in {took:.1f}s, {proxy.dropped} reply dropped")
    assert proxy.dropped == 1
    assert set(states.values()) == {"succeeded"}, (states, worker.tail())
    assert receiver_log.per_key() == dict.fromkeys(jobs, 1)
    assert stage.running_entries("webhooks") == 0
    assert worker.alive(), worker.tail()
