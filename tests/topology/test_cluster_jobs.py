"""jobfleet on a real 3-master Redis Cluster with 4 partitions per queue (store v2, part 3): the core paths — enqueue,
idempotency, retry, dead letter and replay, cancel, delayed jobs — work unchanged, every script touches one slot,
jobs spread over the partitions and the masters, and no slot error (MOVED, ASK, CROSSSLOT) reaches a client."""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from flask.testing import FlaskClient

from jobfleet.app import create_app
from jobfleet.core.settings import Settings
from jobfleet.store.keys import Keys
from jobfleet.workers.broker import install
from tests.conftest import Receiver, wait_for_state
from tests.topology.cluster import RedisClusterSetup
from tests.topology.servers import ask

pytestmark = pytest.mark.slow
PARTITIONS = 4
FINAL = {"succeeded", "dead", "cancelled", "failed"}


@pytest.fixture(scope="module")
def cluster_settings(redis_cluster: RedisClusterSetup, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    tmp = tmp_path_factory.mktemp("cluster-jobs")
    return Settings.from_env(
        {},
        redis_url=redis_cluster.url,
        queue_partitions=PARTITIONS,
        auth="disabled",
        webhook_allowed_networks="127.0.0.1/32",
        report_dir=str(tmp / "reports"),
        data_dir=str(tmp / "state"),
        min_backoff_seconds=0.05,
        max_backoff_seconds=0.2,
        max_retries=2,
        heartbeat_timeout_seconds=3.0,
    )


@pytest.fixture(scope="module")
def cluster_api(cluster_settings: Settings) -> Iterator[FlaskClient]:
    app = create_app(cluster_settings)
    yield app.test_client()
    app.extensions["jobfleet"].client.close()


@pytest.fixture(scope="module")
def cluster_worker(cluster_settings: Settings) -> Iterator[Any]:
    broker = install(cluster_settings)
    broker.emit_after("process_boot")
    worker = dramatiq.Worker(broker, worker_threads=4, worker_timeout=100)
    worker.start()
    yield broker
    worker.stop(timeout=10_000)
    broker.close()


def test_the_core_paths_work_on_a_cluster_with_four_partitions(
    redis_cluster: RedisClusterSetup, cluster_api: FlaskClient, cluster_worker: Any, receiver: Receiver
) -> None:
    keys = Keys("jobfleet", PARTITIONS)
    # Enqueue: 24 reports land in every partition, and the partitions on more than one master
    reports = [cluster_api.post("/v1/jobs/report", json={"rows": 5}).get_json()["job_id"] for _ in range(24)]
    assert {keys.partition_of(j) for j in reports} == set(range(PARTITIONS))
    masters = {redis_cluster.master_for_key(keys.tag(p)) for p in range(PARTITIONS)}
    assert len(masters) > 1
    for job_id in reports:
        assert wait_for_state(cluster_api, job_id, FINAL)["state"] == "succeeded"
    # Idempotency: one key, one job, whichever partition its record lives in
    first = cluster_api.post("/v1/jobs/report", json={}, headers={"Idempotency-Key": "k1"}).get_json()
    again = cluster_api.post("/v1/jobs/report", json={}, headers={"Idempotency-Key": "k1"}).get_json()
    assert again["job_id"] == first["job_id"]
    assert again["idempotent_replay"] is True
    assert cluster_api.post("/v1/jobs/report", json={"rows": 2}, headers={"Idempotency-Key": "k1"}).status_code == 422
    # Retry: a webhook that fails once with a 503 is retried and succeeds
    receiver.statuses = [503]
    retried = cluster_api.post("/v1/jobs/webhook", json={"url": receiver.url, "payload": {}}).get_json()["job_id"]
    body = wait_for_state(cluster_api, retried, FINAL)
    assert [h["outcome"] for h in body["history"]] == ["retrying", "succeeded"]
    # Dead letters: listed across partitions, replayed
    receiver.statuses = [404] * 6
    dead = [
        cluster_api.post("/v1/jobs/webhook", json={"url": receiver.url, "payload": {"n": n}}).get_json()["job_id"]
        for n in range(6)
    ]
    for job_id in dead:
        assert wait_for_state(cluster_api, job_id, FINAL)["state"] == "dead"
    listing = cluster_api.get("/v1/dlq?limit=4").get_json()
    more = cluster_api.get(f"/v1/dlq?limit=4&cursor={listing['next_cursor']}").get_json()
    assert sorted(i["job_id"] for i in listing["items"] + more["items"]) == sorted(dead)
    assert listing["total"] == 6
    receiver.statuses = []
    assert cluster_api.post(f"/v1/dlq/{dead[0]}/replay").status_code == 202
    assert wait_for_state(cluster_api, dead[0], {"succeeded"})["replays"] == 1
    bulk = cluster_api.post("/v1/dlq/replay", json={"limit": 10}).get_json()
    assert bulk["replayed"] == 5
    # Cancel and delayed jobs: a scheduled job cancelled never runs; another runs after its delay
    scheduled = cluster_api.post("/v1/jobs/report?delay_seconds=60", json={}).get_json()["job_id"]
    assert cluster_api.delete(f"/v1/jobs/{scheduled}").get_json()["state"] == "cancelled"
    started = time.monotonic()
    delayed = cluster_api.post("/v1/jobs/report?delay_seconds=1", json={}).get_json()["job_id"]
    assert wait_for_state(cluster_api, delayed, FINAL)["state"] == "succeeded"
    assert time.monotonic() - started >= 1.0
    # The audit trail merges the partitions
    actions = {a["action"] for a in cluster_api.get("/v1/audit").get_json()["items"]}
    assert actions == {"replay", "bulk_replay", "cancel"}


def test_status_and_the_exporter_read_every_partition(cluster_settings: Settings, cluster_api: FlaskClient) -> None:
    from jobfleet.store.queue_state import build_reader

    for _ in range(8):
        cluster_api.post("/v1/jobs/email?delay_seconds=300", json={"to": "a@b.co", "subject": "s", "body": "b"})
    snapshot = build_reader(cluster_settings).read()
    assert snapshot.delayed["emails"] >= 8
    assert {p for (queue, p) in snapshot.depth_by_partition if queue == "emails"} == set(range(PARTITIONS))


def test_a_dlq_listing_on_a_cluster_never_needs_a_cross_slot_call(tmp_path: Path) -> None:
    # Every multi-key call names keys of one partition: the partition's tag is in each key of its calls
    keys = Keys("jobfleet", PARTITIONS)
    for p in range(PARTITIONS):
        tag = keys.tag(p)
        for key in (keys.queue(p, "q"), keys.running(p, "q"), keys.dlq(p), keys.audit(p), keys.heartbeats(p)):
            assert key.startswith(tag)


def test_six_partitions_spread_the_jobs_evenly_over_three_masters(
    redis_cluster: RedisClusterSetup, cluster_settings: Settings
) -> None:
    # Invariant (load spreads): with partitions a multiple of the masters, each master serves an even share of the
    # partitions and so of the jobs and their commands (±25%; `make bench` measures the command split). The plain
    # CRC16 of {jobfleet:0..5} put 4 of the 6 partitions on one master.
    settings = dataclasses.replace(cluster_settings, queue_partitions=6, namespace="spread")
    keys = Keys("spread", 6)
    masters = [n.port for n in redis_cluster.masters()]
    per_master = Counter(redis_cluster.master_for_key(keys.tag(p)) for p in range(6))
    assert sorted(per_master.values()) == [2, 2, 2], per_master
    app = create_app(settings)
    api = app.test_client()
    try:
        for _ in range(600):
            assert api.post("/v1/jobs/report?delay_seconds=86400", json={}).status_code == 202
    finally:
        app.extensions["jobfleet"].client.close()
    jobs = Counter[int]()
    for p in range(6):
        tag = keys.tag(p)
        slot = int(ask(masters[0], "CLUSTER", "KEYSLOT", tag))
        # the partition's keys: its job hashes and its one queue sorted set
        jobs[redis_cluster.master_for_key(tag)] += (
            int(ask(redis_cluster.master_for_key(tag), "CLUSTER", "COUNTKEYSINSLOT", slot)) - 1
        )
    assert sum(jobs.values()) == 600, jobs
    assert all(abs(n - 200) <= 50 for n in jobs.values()), jobs
