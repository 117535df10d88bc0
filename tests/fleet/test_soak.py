"""The soak: thousands of jobs with injected transient and permanent failures, a worker SIGKILL and a Redis
restart, ending with the invariant accepted = succeeded + dead + cancelled and lost = 0.

Small by default (keeps `make test` quick); `make test-soak` (JOBFLEET_SOAK_FULL=1) runs 5,000 jobs."""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from jobfleet.app import create_app
from jobfleet.core.settings import Settings
from jobfleet.ops.embedded_redis import free_port
from jobfleet.store.keys import Keys
from tests.conftest import Receiver, RedisServer
from tests.fleet.workers import WorkerProcess

pytestmark = [pytest.mark.soak, pytest.mark.slow]
KEYS = Keys("jobfleet")

FULL = os.environ.get("JOBFLEET_SOAK_FULL") == "1"
N = 5000 if FULL else 400


@pytest.fixture
def soak_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), tmp_path / "aof", appendonly=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(url: str) -> WorkerProcess:
        worker = WorkerProcess(url, tmp_path, processes=2, threads=8)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop(timeout=15)


@pytest.mark.timeout(1500 if FULL else 240)
def test_soak_with_faults_loses_nothing(
    soak_redis: RedisServer, receiver: Receiver, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    rng = random.Random(20261127)
    settings = Settings.from_env({}, redis_url=soak_redis.url, report_dir=str(tmp_path / "reports"), auth="disabled")
    api = create_app(settings).test_client()

    # Receiver: "transient" jobs fail their first delivery with 503, "permanent" ones always get 404.
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def respond(request: dict[str, Any]) -> int:
        mode = request["body"]["mode"]
        key = request["headers"]["Idempotency-Key"]
        with lock:
            seen[key] += 1
            first = seen[key] == 1
        if mode == "permanent":
            return 404
        return 503 if mode == "transient" and first else 200

    receiver.responder = respond

    # Given N accepted jobs: 10% transient failures, 2% permanent, 1% cancelled before they run
    plan: dict[str, str] = {}
    for n in range(N):
        roll = rng.random()
        mode = "transient" if roll < 0.10 else "permanent" if roll < 0.12 else "ok"
        if n % 5 == 0:
            body = {"rows": 50}
            response = api.post("/v1/jobs/report", json=body)
            mode = "report"
        else:
            response = api.post(
                "/v1/jobs/webhook",
                json={"url": receiver.url, "payload": {"mode": mode, "n": n}},
                headers={"Idempotency-Key": f"soak-{n}"},
            )
        assert response.status_code == 202
        plan[response.get_json()["job_id"]] = mode
    cancelled = [job_id for job_id, mode in list(plan.items())[: N // 100]]
    for job_id in cancelled:
        assert api.delete(f"/v1/jobs/{job_id}").status_code == 200
        plan[job_id] = "cancelled"

    client = redis.Redis.from_url(soak_redis.url)

    def states() -> Counter[str]:
        with client.pipeline(transaction=False) as pipe:
            for job_id in plan:
                pipe.hget(KEYS.job(job_id), "state")
            return Counter((s or b"lost").decode() for s in pipe.execute())

    def final_count() -> int:
        c = states()
        return c["succeeded"] + c["dead"] + c["cancelled"]

    def wait_until(count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while final_count() < count and time.monotonic() < deadline:
            time.sleep(0.2)

    # When workers run them, one worker fleet is SIGKILLed at 25% and Redis restarts at 60%
    started = time.monotonic()
    first = workers(soak_redis.url)
    wait_until(N // 4, 300)
    first.kill()
    second = workers(soak_redis.url)
    wait_until(int(N * 0.6), 600)
    soak_redis.stop()
    time.sleep(1.0)
    soak_redis.start()
    wait_until(N, 900 if FULL else 150)
    elapsed = time.monotonic() - started

    # Then: accepted = succeeded + dead + cancelled, lost = 0, and each outcome is the one planned
    final = states()
    expected_dead = sum(1 for m in plan.values() if m == "permanent")
    rows = [
        ("accepted", N),
        ("succeeded", final["succeeded"]),
        ("dead", final["dead"]),
        ("cancelled", final["cancelled"]),
        ("not final (lost)", N - final["succeeded"] - final["dead"] - final["cancelled"]),
        ("planned permanent failures", expected_dead),
        ("webhook deliveries", sum(seen.values())),
        ("seconds", round(elapsed, 1)),
    ]
    print("\n" + "\n".join(f"  {name:28} {value:>8}" for name, value in rows))
    stuck = {
        job_id: {k.decode(): v.decode()[:300] for k, v in client.hgetall(KEYS.job(job_id)).items() if k != b"msg"}
        for job_id in plan
        if (client.hget(KEYS.job(job_id), "state") or b"lost") not in {b"succeeded", b"dead", b"cancelled"}
    }
    cancelled_attempts = {j: int(client.hget(KEYS.job(j), "tries") or 0) for j in cancelled}
    client.close()
    api.application.extensions["jobfleet"].client.close()
    assert second.alive(), second.tail()
    assert not stuck, (dict(final), stuck)
    assert final["succeeded"] + final["dead"] + final["cancelled"] == N
    assert final["dead"] == expected_dead
    assert final["cancelled"] == len(cancelled)
    # Cancelled jobs never ran: no attempt recorded, no delivery with their key
    assert not any(attempts for job_id, attempts in cancelled_attempts.items()), cancelled_attempts
