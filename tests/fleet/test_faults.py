"""Real processes, real Redis, real faults: SIGKILLed workers, crash loops, Redis restarts."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from jobfleet.app import create_app
from jobfleet.app.enqueue import submit
from jobfleet.core.job_types import JobType
from jobfleet.core.payloads import ReportPayload
from jobfleet.core.settings import Settings
from jobfleet.ops.embedded_redis import free_port
from jobfleet.store.factory import open_store
from jobfleet.store.keys import Keys
from tests.conftest import Receiver, RedisServer, wait_for_state
from tests.fleet.workers import WorkerProcess

pytestmark = pytest.mark.slow
KEYS = Keys("jobfleet")
FINAL = {"succeeded", "dead", "cancelled", "failed"}


@pytest.fixture
def start_workers(tmp_path: Path, redis_url: str) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(url: str | None = None, **kwargs: Any) -> WorkerProcess:
        worker = WorkerProcess(url or redis_url, tmp_path, **kwargs)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop(timeout=10)


def test_a_worker_killed_mid_delivery_is_recovered_and_the_duplicate_carries_the_same_key(
    client: FlaskClient, receiver: Receiver, start_workers: Callable[..., WorkerProcess]
) -> None:
    # Given a webhook whose receiver holds the POST for a while
    receiver.delay = 2.0
    job_id = client.post(
        "/v1/jobs/webhook", json={"url": receiver.url, "payload": {"n": 1}}, headers={"Idempotency-Key": "crash-1"}
    ).get_json()["job_id"]
    first = start_workers()
    assert receiver.in_flight.wait(timeout=30), first.tail()
    # When the worker dies with SIGKILL while the POST is in flight (after sending, before the ledger write)
    first.kill()
    killed_at = time.monotonic()
    receiver.in_flight.clear()
    second = start_workers()
    # Then another worker redelivers it within the bound (heartbeat timeout 2 s + recovery tick 1 s + start-up)
    assert receiver.in_flight.wait(timeout=30), second.tail()
    recovered_after = time.monotonic() - killed_at
    body = wait_for_state(client, job_id, FINAL, timeout=30)
    assert body["state"] == "succeeded"
    # The crash fell between the POST and the ledger write: the receiver sees the same Idempotency-Key twice
    assert receiver.by_key() == {"anonymous:crash-1": 2}
    assert [h["outcome"] for h in body["history"]] == ["interrupted", "succeeded"]
    assert body["history"][0]["error"]["type"] == "WorkerLost"
    assert recovered_after < 15, f"redelivered {recovered_after:.1f}s after the kill"
    print(f"\nredelivered {recovered_after:.1f}s after SIGKILL (heartbeat timeout 2 s)")


def test_a_job_that_keeps_killing_workers_is_dead_lettered_instead_of_looping(
    settings: Settings, client: FlaskClient, start_workers: Callable[..., WorkerProcess]
) -> None:
    store = open_store(settings)
    spec = JobType("crash", "crash_worker", "crashes", ReportPayload, time_limit_seconds=60)
    job_id = submit(store, spec, {}, caller="test", idempotency_key=None, idempotency_ttl=60).job_id
    crashes = 0
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        state = client.get(f"/v1/jobs/{job_id}").get_json()["state"]
        if state == "dead":
            break
        worker = start_workers(boot="tests.fleet.crash_boot:setup")
        while worker.alive() and time.monotonic() < deadline:
            if client.get(f"/v1/jobs/{job_id}").get_json()["state"] == "dead":
                break
            time.sleep(0.1)
        if not worker.alive():
            crashes += 1
        worker.stop(timeout=5)
    body = client.get(f"/v1/jobs/{job_id}").get_json()
    assert body["state"] == "dead", body
    assert crashes == settings.max_crash_redeliveries  # 3 deliveries died; the 4th was dead-lettered unrun
    letter = client.get(f"/v1/dlq/{job_id}").get_json()
    assert letter["reason"] == "crash_loop"
    assert letter["error"]["type"] == "WorkerLost"
    assert [h["outcome"] for h in letter["history"]] == ["interrupted"] * 3


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), tmp_path / "aof", appendonly=True)
    server.start()
    yield server
    server.stop()


def test_restarting_redis_loses_no_accepted_job(
    aof_redis: RedisServer, tmp_path: Path, start_workers: Callable[..., WorkerProcess]
) -> None:
    settings = Settings.from_env({}, redis_url=aof_redis.url, report_dir=str(tmp_path / "reports"), auth="disabled")
    api = create_app(settings).test_client()
    # Given 120 accepted jobs and a worker busy with them
    jobs = [api.post("/v1/jobs/report", json={"rows": 3000}).get_json()["job_id"] for _ in range(120)]
    worker = start_workers(aof_redis.url, threads=4)
    client = redis.Redis.from_url(aof_redis.url)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = sum(client.hget(KEYS.job(j), "state") == b"succeeded" for j in jobs)
        if done >= 20:
            break
        time.sleep(0.05)
    # When Redis restarts (from its AOF) while jobs are queued and running, and is down for a second
    aof_redis.stop()
    time.sleep(1.0)
    aof_redis.start()
    # Then the worker reconnects and every accepted job (and new ones) finishes, none lost
    jobs += [api.post("/v1/jobs/report", json={"rows": 100}).get_json()["job_id"] for _ in range(20)]
    states: dict[str, int] = {}
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        states = {}
        for job_id in jobs:
            state = (client.hget(KEYS.job(job_id), "state") or b"lost").decode()
            states[state] = states.get(state, 0) + 1
        if states.get("succeeded") == len(jobs):
            break
        time.sleep(0.2)
    client.close()
    api.application.extensions["jobfleet"].client.close()
    assert worker.alive(), worker.tail()
    assert states == {"succeeded": len(jobs)}, worker.tail()
