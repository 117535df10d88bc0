"""Worker metrics after real jobs ran through an in-process worker on real Redis (docs/metrics.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dramatiq
import redis
from flask.testing import FlaskClient
from prometheus_client import generate_latest

from jobfleet.core.telemetry import multiprocess_registry
from jobfleet.store.factory import keys_for
from tests.conftest import Receiver, RunningWorker, wait_for_state
from tests.observability.conftest import promtool_check, wait_for_sample, worker_registry

WEBHOOK = {"queue": "webhooks", "actor": "deliver_webhook"}


def post_webhook(client: FlaskClient, receiver: Receiver, **query: str) -> str:
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    response = client.post(f"/v1/jobs/webhook?{qs}", json={"url": receiver.url, "payload": {"n": 1}})
    assert response.status_code == 202, response.get_json()
    job_id: str = response.get_json()["job_id"]
    return job_id


def test_successful_job_counts_one_start_one_success_and_times_it(
    client: FlaskClient, worker: RunningWorker, receiver: Receiver
) -> None:
    registry = worker_registry(worker)
    job_id = post_webhook(client, receiver)
    assert wait_for_state(client, job_id, {"succeeded", "dead"})["state"] == "succeeded"

    wait_for_sample(registry, "jobfleet_jobs_succeeded_total", WEBHOOK, 1)
    assert registry.get_sample_value("jobfleet_jobs_started_total", WEBHOOK) == 1
    assert registry.get_sample_value("jobfleet_job_run_seconds_count", WEBHOOK) == 1
    assert registry.get_sample_value("jobfleet_job_queue_wait_seconds_count", WEBHOOK) == 1
    assert registry.get_sample_value("jobfleet_job_end_to_end_seconds_count", {**WEBHOOK, "outcome": "succeeded"}) == 1
    # The SLO threshold (10 s for webhooks) is a bucket bound.
    assert (
        registry.get_sample_value(
            "jobfleet_job_end_to_end_seconds_bucket", {**WEBHOOK, "outcome": "succeeded", "le": "10.0"}
        )
        == 1
    )
    assert registry.get_sample_value("jobfleet_jobs_in_progress", WEBHOOK) == 0
    assert registry.get_sample_value("jobfleet_worker_threads_busy") == 0
    assert registry.get_sample_value("jobfleet_worker_threads") == 4
    assert registry.get_sample_value("jobfleet_jobs_retried_total", WEBHOOK) == 0  # born at zero for rate()


def test_transient_failure_then_success_counts_one_retry_and_one_final_outcome(
    client: FlaskClient, worker: RunningWorker, receiver: Receiver
) -> None:
    registry = worker_registry(worker)
    receiver.statuses = [503]
    job_id = post_webhook(client, receiver)
    assert wait_for_state(client, job_id, {"succeeded", "dead"})["state"] == "succeeded"

    wait_for_sample(registry, "jobfleet_jobs_succeeded_total", WEBHOOK, 1)
    assert registry.get_sample_value("jobfleet_jobs_started_total", WEBHOOK) == 2
    assert registry.get_sample_value("jobfleet_jobs_failed_total", {**WEBHOOK, "exception": "TransientError"}) == 1
    assert registry.get_sample_value("jobfleet_jobs_retried_total", WEBHOOK) == 1  # counted once, not twice
    assert registry.get_sample_value("jobfleet_job_run_seconds_count", WEBHOOK) == 2
    assert registry.get_sample_value("jobfleet_job_end_to_end_seconds_count", {**WEBHOOK, "outcome": "succeeded"}) == 1
    # Queue wait excludes the retry backoff: both attempts waited far less than the end-to-end time.
    assert registry.get_sample_value("jobfleet_job_queue_wait_seconds_count", WEBHOOK) == 2


def test_permanent_failure_is_dead_lettered_once_without_retry(
    client: FlaskClient, worker: RunningWorker, receiver: Receiver
) -> None:
    registry = worker_registry(worker)
    receiver.statuses = [404]
    job_id = post_webhook(client, receiver)
    assert wait_for_state(client, job_id, {"succeeded", "dead"})["state"] == "dead"

    wait_for_sample(registry, "jobfleet_jobs_dead_lettered_total", WEBHOOK, 1)
    assert registry.get_sample_value("jobfleet_jobs_failed_total", {**WEBHOOK, "exception": "PermanentError"}) == 1
    assert registry.get_sample_value("jobfleet_jobs_retried_total", WEBHOOK) == 0
    assert registry.get_sample_value("jobfleet_jobs_succeeded_total", WEBHOOK) == 0
    assert registry.get_sample_value("jobfleet_job_end_to_end_seconds_count", {**WEBHOOK, "outcome": "dead"}) == 1


def test_duplicate_delivery_of_a_done_job_is_dropped_unrun_and_leaves_its_record_intact(
    client: FlaskClient, worker: RunningWorker, receiver: Receiver, redis_client: redis.Redis
) -> None:
    registry = worker_registry(worker)
    job_id = post_webhook(client, receiver)
    assert wait_for_state(client, job_id, {"succeeded", "dead"})["state"] == "succeeded"
    wait_for_sample(registry, "jobfleet_jobs_succeeded_total", WEBHOOK, 1)
    keys = keys_for(worker.settings)
    partition = keys.partition_of(job_id)
    queue, running = keys.queue(partition, "webhooks"), keys.running(partition, "webhooks")
    done = redis_client.hgetall(keys.job(job_id))

    # When the same job's message is sent again (a producer retrying a send): the job exists, nothing is queued
    record = client.get(f"/v1/jobs/{job_id}").get_json()
    worker.broker.enqueue(
        dramatiq.Message(
            queue_name="webhooks",
            actor_name="deliver_webhook",
            args=(),
            kwargs={"url": receiver.url, "payload": {"n": 1}},
            options={"job_type": "webhook", "idempotency_key": record.get("idempotency_key") or job_id},
            message_id=job_id,
            message_timestamp=int(time.time() * 1000),
        )
    )
    assert redis_client.zscore(queue, job_id) is None
    # And when its id is put back on its queue after it finished (the queue holds job ids: a second delivery)
    seconds, micros = redis_client.time()
    redis_client.zadd(queue, {job_id: seconds * 1000 + micros // 1000})
    deadline = time.monotonic() + 10
    while redis_client.zscore(queue, job_id) is not None:
        assert time.monotonic() < deadline, "no worker fetch took the job id off its queue"
        time.sleep(0.02)

    # Then the worker's claim dropped it (the job is not queued) without running it: the webhook was called once,
    # no attempt started, nothing is left running, and the record is exactly as the one attempt left it
    time.sleep(0.3)
    assert len(receiver.requests) == 1
    assert registry.get_sample_value("jobfleet_jobs_started_total", WEBHOOK) == 1
    assert registry.get_sample_value("jobfleet_jobs_succeeded_total", WEBHOOK) == 1
    assert redis_client.zcard(running) == 0
    assert redis_client.hgetall(keys.job(job_id)) == done
    assert redis_client.ttl(keys.job(job_id)) > 0  # still expiring after its retention, as a succeeded job does
    assert registry.get_sample_value("jobfleet_worker_threads_busy") == 0
    # The drop happens inside Redis (the fetch script's claim): no delivery reaches the worker's middleware, so
    # jobfleet_jobs_duplicates_skipped_total is no longer incremented by this path (v1 counted it there).
    assert registry.get_sample_value("jobfleet_jobs_duplicates_skipped_total", WEBHOOK) == 0


def test_queue_wait_excludes_a_deliberate_delay_but_end_to_end_includes_it(
    client: FlaskClient, worker: RunningWorker, receiver: Receiver
) -> None:
    registry = worker_registry(worker)
    job_id = post_webhook(client, receiver, delay_seconds="1")
    assert wait_for_state(client, job_id, {"succeeded", "dead"})["state"] == "succeeded"

    wait_for_sample(registry, "jobfleet_jobs_succeeded_total", WEBHOOK, 1)
    wait = registry.get_sample_value("jobfleet_job_queue_wait_seconds_sum", WEBHOOK)
    end_to_end = registry.get_sample_value("jobfleet_job_end_to_end_seconds_sum", {**WEBHOOK, "outcome": "succeeded"})
    assert wait is not None
    assert end_to_end is not None
    assert end_to_end >= 1.0
    assert wait < 0.9


def test_worker_exposition_passes_promtool(client: FlaskClient, worker: RunningWorker, receiver: Receiver) -> None:
    receiver.statuses = [503]
    job_id = post_webhook(client, receiver)
    wait_for_state(client, job_id, {"succeeded", "dead"})
    wait_for_sample(worker_registry(worker), "jobfleet_jobs_succeeded_total", WEBHOOK, 1)
    promtool_check(generate_latest(worker_registry(worker)))


_CHILD = textwrap.dedent(
    """
    import os, sys
    from jobfleet.middleware.worker_metrics import WorkerMetrics

    class FakeWorker:
        worker_threads = 3

    class FakeBroker:
        def get_declared_actors(self):
            return set()

    metrics = WorkerMetrics(multiprocess_dir=os.environ["PROMETHEUS_MULTIPROC_DIR"])
    metrics.after_worker_boot(FakeBroker(), FakeWorker())
    metrics.started.labels("webhooks", "deliver_webhook").inc(int(sys.argv[1]))
    if sys.argv[2] == "exit":
        metrics.after_worker_shutdown(FakeBroker(), FakeWorker())
    """
)


def test_multiprocess_counters_add_up_across_processes_and_dead_processes_leave_live_gauges(tmp_path: Path) -> None:
    # Given three worker processes writing to one multiprocess directory, one of which shut down
    folder = tmp_path / "prom"
    folder.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    for count, how in ((2, "stay"), (3, "stay"), (5, "exit")):
        subprocess.run([sys.executable, "-c", _CHILD, str(count), how], env=env, check=True, timeout=60)

    # When the metrics endpoint aggregates them
    registry = multiprocess_registry(folder)

    # Then counters are summed over every process ever started; thread gauges only over live ones
    assert registry.get_sample_value("jobfleet_jobs_started_total", WEBHOOK) == 10
    assert registry.get_sample_value("jobfleet_worker_threads") == 6
    promtool_check(generate_latest(registry))


_HOOKS_CHILD = textwrap.dedent(
    """
    import os, time
    from dramatiq import Message
    from dramatiq.broker import MessageProxy
    from jobfleet.store.delivery import Attempt, DeliveryOutcome, state_of
    from jobfleet.middleware.worker_metrics import WorkerMetrics

    metrics = WorkerMetrics(multiprocess_dir=os.environ["PROMETHEUS_MULTIPROC_DIR"])

    def deliver(job_id, attempt_number, event, exception=None):
        # As the consumer hands a claim out: the queue it was claimed from, the retries so far in the options.
        now = time.time()
        message = MessageProxy(Message(queue_name="webhooks", actor_name="deliver_webhook", args=(), kwargs={},
                                       options={"retries": attempt_number - 1}, message_id=job_id,
                                       message_timestamp=int(now * 1000)))
        attempt = Attempt(job_id, "webhook", job_id, attempt_number, attempt_number, now, now - 1, now)
        metrics.before_process_message(None, message)
        metrics.attempt_started(message, attempt)
        state_of(message).outcome = DeliveryOutcome(event, attempt, exception)
        metrics.after_process_message(None, message, exception=exception)

    deliver("m1", 1, "retrying", RuntimeError("boom"))
    deliver("m2", 1, "retrying", RuntimeError("again"))
    deliver("m1", 2, "succeeded")  # retries wait on the job's own queue until due: no delay queue
    deliver("m2", 2, "dead", KeyError("gone"))
    """
)


def test_per_job_hooks_write_every_series_in_multiprocess_mode_and_retried_deliveries_count_on_their_queue(
    tmp_path: Path,
) -> None:
    # Given a worker process in multiprocess mode that ran four attempts of two jobs, two of them retries (in v2 a
    # retried or delayed job waits on its own queue and is delivered from it: there is no ".DQ" queue)
    folder = tmp_path / "prom"
    folder.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    subprocess.run([sys.executable, "-c", _HOOKS_CHILD], env=env, check=True, timeout=60)

    # When the metrics endpoint aggregates its files
    registry = multiprocess_registry(folder)

    # Then every attempt and outcome is on the logical queue's series, failures per exception class
    assert registry.get_sample_value("jobfleet_jobs_started_total", WEBHOOK) == 4
    assert registry.get_sample_value("jobfleet_job_run_seconds_count", WEBHOOK) == 4
    assert registry.get_sample_value("jobfleet_job_queue_wait_seconds_count", WEBHOOK) == 4
    assert registry.get_sample_value("jobfleet_jobs_failed_total", {**WEBHOOK, "exception": "RuntimeError"}) == 2
    assert registry.get_sample_value("jobfleet_jobs_failed_total", {**WEBHOOK, "exception": "KeyError"}) == 1
    assert registry.get_sample_value("jobfleet_jobs_retried_total", WEBHOOK) == 2
    assert registry.get_sample_value("jobfleet_jobs_succeeded_total", WEBHOOK) == 1
    assert registry.get_sample_value("jobfleet_jobs_dead_lettered_total", WEBHOOK) == 1
    assert registry.get_sample_value("jobfleet_job_end_to_end_seconds_count", {**WEBHOOK, "outcome": "succeeded"}) == 1
    assert registry.get_sample_value("jobfleet_job_end_to_end_seconds_count", {**WEBHOOK, "outcome": "dead"}) == 1
    assert registry.get_sample_value("jobfleet_jobs_in_progress", WEBHOOK) == 0
    assert registry.get_sample_value("jobfleet_worker_threads_busy") == 0
    # And no series carries any other queue label
    queues = {
        sample.labels["queue"]
        for family in registry.collect()
        for sample in family.samples
        if family.name.startswith(("jobfleet_job", "jobfleet_jobs")) and "queue" in sample.labels
    }
    assert queues == {"webhooks"}
