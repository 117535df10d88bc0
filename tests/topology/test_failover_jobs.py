"""Failovers under load (store v2, part 3): a Sentinel failover and a Cluster master SIGKILLed mid-run.

Invariants: the API and the workers reconnect by themselves (no restart); with replicated acceptance on
(JOBFLEET_ACCEPT_REPLICAS=1) every job the API answered 202 for reaches a final state (lost = 0), a refused request
retried with its Idempotency-Key gets its job back, and nothing stays running. Without it, the test reports how
many accepted jobs the failover lost (the window the README states)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dramatiq
import pytest
import redis
from flask.testing import FlaskClient

from jobfleet.app import create_app
from jobfleet.core.redis_client import make_client
from jobfleet.core.settings import Settings
from jobfleet.store.keys import Keys
from jobfleet.workers.broker import install
from tests.conftest import Receiver
from tests.topology.cluster import RedisClusterSetup
from tests.topology.sentinel import RedisSentinelSetup

pytestmark = pytest.mark.slow
FINAL = {"succeeded", "dead", "cancelled", "failed"}


def _settings(url: str, tmp: Path, **overrides: Any) -> Settings:
    return Settings.from_env(
        {},
        redis_url=url,
        auth="disabled",
        webhook_allowed_networks="127.0.0.1/32",
        report_dir=str(tmp / "reports"),
        data_dir=str(tmp / "state"),
        heartbeat_timeout_seconds=3.0,
        redis_timeout_seconds=1.0,
        **overrides,
    )


class Run:
    """Posts webhooks from a thread, retrying refusals with the request's Idempotency-Key, and records each 202."""

    def __init__(self, api: FlaskClient, url: str) -> None:
        self.api, self.url = api, url
        self.accepted: dict[str, str] = {}
        self.refusals = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._post, daemon=True)

    def _post(self) -> None:
        n = 0
        while not self.stop.is_set():
            key = f"job-{n}"
            deadline = time.monotonic() + 60
            while not self.stop.is_set() and time.monotonic() < deadline:
                response = self.api.post(
                    "/v1/jobs/webhook", json={"url": self.url, "payload": {"n": n}}, headers={"Idempotency-Key": key}
                )
                if response.status_code == 202:
                    self.accepted[key] = response.get_json()["job_id"]
                    break
                self.refusals += 1
                time.sleep(0.1)
            n += 1
            time.sleep(0.02)


def _worker(settings: Settings) -> Iterator[Any]:
    broker = install(settings)
    broker.emit_after("process_boot")
    worker = dramatiq.Worker(broker, worker_threads=4, worker_timeout=100)
    worker.start()
    yield broker
    worker.stop(timeout=10_000)
    broker.close()


def _final_states(client: redis.Redis, keys: Keys, job_ids: list[str], timeout: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        states = {}
        for job_id in job_ids:
            try:
                states[job_id] = (client.hget(keys.job(job_id), "state") or b"lost").decode()
            except redis.RedisError:
                states[job_id] = "unreadable"
        if set(states.values()) <= FINAL | {"lost"} and "lost" not in states.values():
            return states
        time.sleep(0.3)
    return states


@pytest.mark.parametrize("replicas", [1, 0])
def test_a_sentinel_failover_mid_run_loses_no_job_accepted_with_replicated_acceptance(
    redis_sentinel: RedisSentinelSetup, receiver: Receiver, tmp_path: Path, replicas: int
) -> None:
    settings = _settings(redis_sentinel.url, tmp_path, accept_replicas=replicas)
    app = create_app(settings)
    run = Run(app.test_client(), receiver.url)
    workers = _worker(settings)
    next(workers)
    try:
        # Given jobs flowing in and being worked on through the Sentinel URL
        run.thread.start()
        time.sleep(2)
        # When the primary is SIGKILLed and the sentinels promote the replica
        failover = redis_sentinel.failover(kill=True)
        time.sleep(6)
        run.stop.set()
        run.thread.join(70)
        # Then every accepted job ends, the components having reconnected by themselves
        client = make_client(settings)
        states = _final_states(client, Keys("jobfleet"), list(run.accepted.values()), timeout=60)
        client.close()
    finally:
        run.stop.set()
        next(workers, None)
        app.extensions["jobfleet"].client.close()
    lost = [j for j, s in states.items() if s not in FINAL]
    print(
        f"\nreplicas={replicas}: failover {failover.seconds:.1f}s; accepted {len(run.accepted)}, refused-and-retried "
        f"{run.refusals}, lost {len(lost)}"
    )
    assert run.accepted
    if replicas:
        assert lost == [], {j: states[j] for j in lost}


def test_a_cluster_master_killed_mid_run_loses_no_job_accepted_with_replicated_acceptance(
    redis_cluster: RedisClusterSetup, receiver: Receiver, tmp_path: Path
) -> None:
    settings = _settings(redis_cluster.url, tmp_path, accept_replicas=1, queue_partitions=4)
    app = create_app(settings)
    run = Run(app.test_client(), receiver.url)
    workers = _worker(settings)
    next(workers)
    try:
        run.thread.start()
        time.sleep(2)
        keys = Keys("jobfleet", 4)
        killed = redis_cluster.kill_master(keys.tag(0))  # the master of partition 0
        time.sleep(4)
        run.stop.set()
        run.thread.join(70)
        client = make_client(settings)
        states = _final_states(client, keys, list(run.accepted.values()), timeout=60)
        client.close()
        redis_cluster.revive()
    finally:
        run.stop.set()
        next(workers, None)
        app.extensions["jobfleet"].client.close()
    lost = [j for j, s in states.items() if s not in FINAL]
    print(f"\ncluster master killed ({killed.seconds:.1f}s to promote): accepted {len(run.accepted)}, lost {len(lost)}")
    assert run.accepted
    assert lost == [], {j: states[j] for j in lost}
