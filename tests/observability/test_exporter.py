"""The queue exporter against real Redis state: queued, delayed, in flight, dead letters, workers, Redis down."""

from __future__ import annotations

import dataclasses
import time
import urllib.request
from collections.abc import Callable

import redis
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry

from jobfleet.core.job_types import JOB_TYPES, JobType
from jobfleet.core.settings import Settings
from jobfleet.core.telemetry import serve_metrics
from jobfleet.ops.exporter import build_registry
from jobfleet.store.attempts import Attempts
from jobfleet.store.delivery import Claimed
from jobfleet.store.factory import keys_for, open_store
from jobfleet.store.records import new_job_fields
from tests.conftest import Receiver, RunningWorker, socket_closed_port, wait_for_state
from tests.observability.conftest import promtool_check


def exporter(settings: Settings) -> CollectorRegistry:
    return build_registry(settings)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_queued_messages_give_depth_and_the_age_of_the_oldest(client: FlaskClient, settings: Settings) -> None:
    # Given three report jobs waiting and no worker
    for _ in range(3):
        assert client.post("/v1/jobs/report", json={}).status_code == 202
    time.sleep(0.3)

    registry = exporter(settings)

    assert value(registry, "jobfleet_queue_depth", queue="reports") == 3
    assert value(registry, "jobfleet_queue_depth", queue="webhooks") == 0
    age = value(registry, "jobfleet_queue_oldest_message_age_seconds", queue="reports")
    assert age is not None
    assert 0.3 <= age < 10
    assert value(registry, "jobfleet_queue_oldest_message_age_seconds", queue="emails") == 0
    assert value(registry, "jobfleet_queue_in_flight", queue="reports") == 0
    assert value(registry, "jobfleet_exporter_redis_up") == 1


def test_scheduled_jobs_are_delayed_not_ready(client: FlaskClient, settings: Settings) -> None:
    assert client.post("/v1/jobs/report?delay_seconds=60", json={}).status_code == 202
    assert client.post("/v1/jobs/report?delay_seconds=60", json={}).status_code == 202

    registry = exporter(settings)

    assert value(registry, "jobfleet_queue_delayed", queue="reports") == 2
    assert value(registry, "jobfleet_queue_depth", queue="reports") == 0


def claim_jobs(settings: Settings, worker_id: str, job_type: JobType, partitions: list[int]) -> list[Claimed]:
    """Create one job of ``job_type`` in each of ``partitions`` and claim it for ``worker_id`` with the worker's own
    store calls (submit, then fetch): running attempts exactly as a worker leaves them while its actor runs."""
    store = open_store(settings)
    attempts = Attempts(store, worker_id=worker_id, actors={job_type.actor_name}, hold_ms=1000)
    claims: list[Claimed] = []
    for partition in partitions:
        job_id = store.new_job_id(partition)
        fields = new_job_fields(
            encoded_message=b"{}",
            job_type=job_type.name,
            queue=job_type.queue_name,
            actor=job_type.actor_name,
            caller="test",
            scoped_key=job_id,
            trace_id="",
        )
        store.submit(job_id=job_id, queue_name=job_type.queue_name, fields=fields)
        claimed, held = attempts.fetch(partition, job_type.queue_name, 1)
        assert ([c.job_id for c in claimed], held) == ([job_id], [])
        claims.extend(claimed)
    store.client.close()
    return claims


def test_unacked_messages_of_known_workers_are_in_flight(settings: Settings, redis_client: redis.Redis) -> None:
    # Given three partitions and webhook jobs claimed (running, not finished) in several of them: two by w1, whose
    # heartbeat is fresh in every partition, and one by w2, silent for a minute (the timeout is 3 s in tests)
    settings = dataclasses.replace(settings, queue_partitions=3)
    claim_jobs(settings, "w1", JOB_TYPES["webhook"], [0, 2])
    claim_jobs(settings, "w2", JOB_TYPES["webhook"], [1])
    attempts = {w: Attempts(open_store(settings), worker_id=w, actors=(), hold_ms=1000) for w in ("w1", "w2")}
    for partition in range(3):
        attempts["w1"].heartbeat(partition, forget_after_ms=600_000)
        attempts["w2"].heartbeat(partition, forget_after_ms=600_000, age_ms=60_000)

    registry = exporter(settings)

    # Then in flight is every running attempt of the queue, summed over the partitions' running sets (w2's too:
    # its attempt is running until recovery takes it back)
    assert value(registry, "jobfleet_queue_in_flight", queue="webhooks") == 3
    assert value(registry, "jobfleet_queue_in_flight", queue="reports") == 0
    assert value(registry, "jobfleet_queue_depth", queue="webhooks") == 0  # claimed jobs are off the queue
    # Only w1's heartbeat is fresh
    assert value(registry, "jobfleet_workers_live") == 1


def test_dead_letters_give_dlq_depth_and_oldest_age(
    client: FlaskClient, worker: RunningWorker, receiver: Receiver, settings: Settings
) -> None:
    receiver.statuses = [404, 404]
    for _ in range(2):
        job_id = client.post("/v1/jobs/webhook", json={"url": receiver.url, "payload": {}}).get_json()["job_id"]
        assert wait_for_state(client, job_id, {"succeeded", "dead"})["state"] == "dead"

    registry = exporter(settings)

    assert value(registry, "jobfleet_dlq_depth", queue="webhooks") == 2
    assert value(registry, "jobfleet_dlq_depth", queue="reports") == 0
    age = value(registry, "jobfleet_dlq_oldest_age_seconds", queue="webhooks")
    assert age is not None
    assert 0 <= age < 30
    assert value(registry, "jobfleet_dlq_retention_seconds") == settings.dlq_retention_seconds
    assert value(registry, "jobfleet_workers_live") == 1


def test_longest_running_job_and_time_limits_per_actor(settings: Settings, redis_client: redis.Redis) -> None:
    # Given two report attempts running, in different partitions, started 1 s and 5 s ago (Redis time)
    settings = dataclasses.replace(settings, queue_partitions=2)
    keys = keys_for(settings)
    recent, oldest = claim_jobs(settings, "w1", JOB_TYPES["report"], [0, 1])
    seconds, micros = redis_client.time()
    now_ms = seconds * 1000 + micros // 1000
    for claimed, age_ms in ((recent, 1_000), (oldest, 5_000)):
        # A running entry is scored by its attempt's start: back-date it as if the attempt began age_ms ago
        running = keys.running(claimed.partition, "reports")
        assert redis_client.zadd(running, {claimed.member: now_ms - age_ms}, xx=True, ch=True) == 1

    registry = exporter(settings)

    # Then the longest is the oldest attempt of any partition, labelled with its actor
    longest = value(registry, "jobfleet_job_running_longest_seconds", queue="reports", actor="build_report")
    assert longest is not None
    assert 5 <= longest < 10
    assert value(registry, "jobfleet_job_running_longest_seconds", queue="webhooks", actor="deliver_webhook") == 0
    assert value(registry, "jobfleet_queue_in_flight", queue="reports") == 2
    assert value(registry, "jobfleet_job_time_limit_seconds", queue="reports", actor="build_report") == 600
    assert value(registry, "jobfleet_job_time_limit_seconds", queue="webhooks", actor="deliver_webhook") == 120


def scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """One scrape (each collect reads Redis once), as {(name, labels): value}."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
    }


def test_redis_down_still_answers_with_redis_up_zero_and_counts_the_error(settings: Settings) -> None:
    down = Settings.from_env({}, redis_url=f"redis://127.0.0.1:{socket_closed_port()}/0", redis_timeout_seconds=0.2)
    registry = exporter(down)

    first = scrape(registry)  # an answer, not an exception
    second = scrape(registry)

    assert first[("jobfleet_exporter_redis_up", ())] == 0
    assert first[("jobfleet_exporter_scrape_errors_total", ())] == 1
    assert second[("jobfleet_exporter_scrape_errors_total", ())] == 2
    assert not [name for name, _ in first if name.startswith(("jobfleet_queue_", "jobfleet_dlq_depth"))]
    assert [name for name, _ in first if name == "jobfleet_build_info"]


def test_exporter_http_endpoint_passes_promtool_with_data_and_when_redis_is_down(
    client: FlaskClient, settings: Settings, free_port_factory: Callable[[], int]
) -> None:
    assert client.post("/v1/jobs/report", json={}).status_code == 202
    for s in (
        settings,
        Settings.from_env({}, redis_url=f"redis://127.0.0.1:{socket_closed_port()}/0", redis_timeout_seconds=0.2),
    ):
        port = free_port_factory()
        server = serve_metrics(exporter(s), port)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
                assert response.status == 200
                promtool_check(response.read())
        finally:
            server.shutdown()
            server.server_close()
