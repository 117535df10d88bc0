"""Worker metrics after real jobs ran through an in-process worker on real Redis (docs/metrics.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dramatiq
from flask.testing import FlaskClient
from prometheus_client import generate_latest

from jobfleet.core.telemetry import multiprocess_registry
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


def test_duplicate_delivery_of_a_done_job_is_skipped_and_counted(
    client: FlaskClient, worker: RunningWorker, receiver: Receiver
) -> None:
    registry = worker_registry(worker)
    job_id = post_webhook(client, receiver)
    assert wait_for_state(client, job_id, {"succeeded", "dead"})["state"] == "succeeded"
    wait_for_sample(registry, "jobfleet_jobs_succeeded_total", WEBHOOK, 1)

    # When the same job's message is delivered again (a redelivery after a lost ack, say)
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

    # Then it is skipped, counted as a duplicate, and the webhook was called once
    wait_for_sample(registry, "jobfleet_jobs_duplicates_skipped_total", WEBHOOK, 1)
    assert registry.get_sample_value("jobfleet_jobs_started_total", WEBHOOK) == 1
    assert registry.get_sample_value("jobfleet_jobs_succeeded_total", WEBHOOK) == 1
    assert len(receiver.requests) == 1
    assert registry.get_sample_value("jobfleet_worker_threads_busy") == 0


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

    def deliver(queue_name, event, exception=None):
        now = time.time()
        message = MessageProxy(Message(queue_name=queue_name, actor_name="deliver_webhook", args=(), kwargs={},
                                       options={}, message_id="m", message_timestamp=int(now * 1000)))
        attempt = Attempt("m", "webhook", "k", "t", 1, "r", now, now, now)
        metrics.before_process_message(None, message)
        metrics.attempt_started(message, attempt)
        state_of(message).outcome = DeliveryOutcome(event, attempt, exception)
        metrics.after_process_message(None, message, exception=exception)

    deliver("webhooks", "retrying", RuntimeError("boom"))
    deliver("webhooks.DQ", "succeeded")
    deliver("webhooks", "retrying", RuntimeError("again"))
    deliver("webhooks.DQ", "dead", KeyError("gone"))
    """
)


def test_per_job_hooks_write_every_series_in_multiprocess_mode_and_delayed_deliveries_count_on_the_base_queue(
    tmp_path: Path,
) -> None:
    # Given a worker process in multiprocess mode that ran four attempts, two of them from the delay queue
    folder = tmp_path / "prom"
    folder.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    subprocess.run([sys.executable, "-c", _HOOKS_CHILD], env=env, check=True, timeout=60)

    # When the metrics endpoint aggregates its files
    registry = multiprocess_registry(folder)

    # Then every attempt and outcome is on the base queue's series, failures per exception class
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
    assert (
        registry.get_sample_value("jobfleet_jobs_started_total", {"queue": "webhooks.DQ", "actor": "deliver_webhook"})
        is None
    )
