"""Delayed work and a big keyspace (store v2, part 1, items 9 and 10).

Invariants: a job that is due starts about when it is due, whatever number of far-future jobs sits ahead of it
(nothing is held in worker memory, nothing is served first-in-first-out); listing dead letters and recovering a dead
worker's job never run a command that walks the keyspace (KEYS, SCAN), however many keys Redis holds."""

from __future__ import annotations

import os
import threading
from datetime import datetime

import pytest
import redis

from tests.faults.stage import KEYS, IntervalReceiver, Stage
from tests.faults.toolkit import KeyFiller

pytestmark = pytest.mark.slow
SOAK = os.environ.get("JOBFLEET_SOAK_FULL") == "1"


def test_a_job_due_in_a_second_starts_on_time_behind_a_thousand_far_future_ones(
    stage: Stage, receiver_log: IntervalReceiver
) -> None:
    # Given 1,000 jobs scheduled an hour out, then a job due in 1 s and a webhook that fails once (a short retry)
    api = stage.api()
    for _ in range(1000):
        assert api.post("/v1/jobs/report?delay_seconds=3600", json={"rows": 1}).status_code == 202
    soon = api.post("/v1/jobs/report?delay_seconds=1", json={"rows": 1}).get_json()["job_id"]
    receiver_log.status = lambda body: 503 if len(receiver_log.deliveries) == 1 else 200
    retried = api.post("/v1/jobs/webhook", json={"url": receiver_log.url, "payload": {}}).get_json()["job_id"]
    # When one single-threaded worker runs (its min backoff is 0.05 s)
    stage.worker(threads=1)
    # Then the 1 s job started within 3 s of being due, and the retry ran right after its backoff
    states, _ = stage.wait_final([soon, retried], 15)
    assert states == {soon: "succeeded", retried: "succeeded"}
    body = api.get(f"/v1/jobs/{soon}").get_json()
    late = datetime.fromisoformat(body["started_at"]) - datetime.fromisoformat(body["ready_at"])
    print(f"\nthe 1 s job started {late.total_seconds():.2f}s after it was due")
    assert late.total_seconds() < 3
    assert len(receiver_log.deliveries) == 2
    # And the far-future jobs still wait in Redis, scheduled
    assert stage.client().zcount(KEYS.queue(0, "reports"), "-inf", "+inf") == 1000


def _commands_seen(url: str, stop: threading.Event, seen: list[str], ready: threading.Event) -> None:
    client = redis.Redis.from_url(url)
    with client.monitor() as monitor:  # type: ignore[no-untyped-call]
        ready.set()
        while not stop.is_set():
            seen.append(monitor.next_command()["command"].split(" ", 1)[0].upper())
    client.close()


def test_dlq_listing_and_dead_worker_recovery_never_walk_the_keyspace(
    stage: Stage, receiver_log: IntervalReceiver
) -> None:
    # Given Redis holding many unrelated keys (1 M with JOBFLEET_SOAK_FULL=1), dead letters, and a job whose worker died
    client = stage.client()
    report = KeyFiller(client).fill(1_000_000 if SOAK else 50_000)
    print(f"\nfilled {report.keys} keys in {report.seconds:.1f}s ({report.method})")
    receiver_log.status = lambda body: 404 if body.get("dead") else 200
    api = stage.api()
    dead = [
        api.post("/v1/jobs/webhook", json={"url": receiver_log.url, "payload": {"dead": 1}}).get_json()["job_id"]
        for _ in range(5)
    ]
    first = stage.worker()
    assert set(stage.wait_final(dead, 30)[0].values()) == {"dead"}
    receiver_log.delay = 3.0
    receiver_log.started.clear()
    orphan = api.post("/v1/jobs/webhook", json={"url": receiver_log.url, "payload": {}}).get_json()["job_id"]
    assert receiver_log.started.wait(30)
    first.kill()
    # When the DLQ is listed page by page and another worker recovers the dead worker's job, under MONITOR
    seen: list[str] = []
    stop, ready = threading.Event(), threading.Event()
    watcher = threading.Thread(target=_commands_seen, args=(stage.redis.url, stop, seen, ready), daemon=True)
    watcher.start()
    assert ready.wait(5)
    page = api.get("/v1/dlq?limit=2").get_json()
    while page["next_cursor"]:
        page = api.get(f"/v1/dlq?limit=2&cursor={page['next_cursor']}").get_json()
    receiver_log.delay = 0.0
    stage.worker()
    states, took = stage.wait_final([orphan], 30)
    stop.set()
    client.set("wake-monitor", 1)
    watcher.join(5)
    # Then the job was recovered, and nothing walked the keyspace to do either
    assert states == {orphan: "succeeded"}
    history = api.get(f"/v1/jobs/{orphan}").get_json()["history"]
    assert [h["outcome"] for h in history] == ["interrupted", "succeeded"]
    print(f"recovered in {took:.1f}s; commands seen: {len(seen)}")
    assert {"KEYS", "SCAN"} & set(seen) == set()
