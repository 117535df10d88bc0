"""Redis that stops answering or is full (store v2, part 1, item 1): workers ride it out and nothing wedges.

Invariant for each: every accepted job reaches a final state within a bound after the fault ends, each job is
delivered once (an outcome that could not be recorded during the fault is recorded after it, not re-run), no two
deliveries of one job overlap, nothing stays running, and the worker process is still alive."""

from __future__ import annotations

import time

import pytest

from tests.faults.stage import FINAL, IntervalReceiver, Stage, post_webhooks
from tests.faults.toolkit import pause_redis, redis_full

pytestmark = pytest.mark.slow

# After the fault ends, every job must be final within this many seconds (heartbeat timeout 2 s, socket timeout 5 s).
BOUND_S = 30


def _wait_some_started(receiver: IntervalReceiver, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while len(receiver.deliveries) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(receiver.deliveries) >= count


def test_redis_paused_longer_than_the_socket_and_heartbeat_timeouts(
    stage: Stage, receiver_log: IntervalReceiver
) -> None:
    # Given 40 webhooks, a worker with 4 threads working through them (each delivery takes 0.2 s)
    receiver_log.delay = 0.2
    api = stage.api()
    jobs = post_webhooks(api, receiver_log.url, 40)
    worker = stage.worker(threads=4)
    _wait_some_started(receiver_log, 6)
    # When Redis stops answering (SIGSTOP) for 7 s: past the worker's 5 s socket timeout and 2 s heartbeat timeout
    with pause_redis(stage.redis):
        time.sleep(7)
    resumed = time.monotonic()
    # Then every job ends within the bound, once each, never two at a time, and nothing stays running
    states, took = stage.wait_final(jobs, BOUND_S)
    print(f"\nall final {took:.1f}s after Redis answered again; deliveries {len(receiver_log.deliveries)}")
    assert set(states.values()) == {"succeeded"}, (states, worker.tail())
    assert receiver_log.per_key() == dict.fromkeys(jobs, 1)
    assert receiver_log.overlaps() == []
    assert stage.running_entries("webhooks") == 0
    assert worker.alive(), worker.tail()
    assert time.monotonic() - resumed < BOUND_S


def test_redis_at_maxmemory_under_noeviction_then_freed(stage: Stage, receiver_log: IntervalReceiver) -> None:
    # Given 40 webhooks and a worker working through them
    receiver_log.delay = 0.2
    api = stage.api()
    jobs = post_webhooks(api, receiver_log.url, 40)
    worker = stage.worker(threads=4)
    _wait_some_started(receiver_log, 6)
    # When Redis refuses every write (OOM under noeviction) for 6 s while jobs finish, then has room again
    client = stage.client()
    with redis_full(client):
        refused = api.post("/v1/jobs/webhook", json={"url": receiver_log.url, "payload": {"n": -1}})
        time.sleep(6)
    # Then a request made while Redis was full was refused with a 503 (nothing accepted, nothing half-written)
    assert refused.status_code == 503, refused.get_json()
    # And every accepted job ends within the bound, once each, and nothing stays running
    states, took = stage.wait_final(jobs, BOUND_S)
    print(f"\nall final {took:.1f}s after Redis had room again")
    assert set(states.values()) <= FINAL
    assert set(states.values()) == {"succeeded"}, (states, worker.tail())
    assert receiver_log.per_key() == dict.fromkeys(jobs, 1)
    assert stage.running_entries("webhooks") == 0
    assert worker.alive(), worker.tail()
