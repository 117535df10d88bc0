"""``jobfleet status`` reads the real Redis like the exporter does: per-queue depth, lag and dead letters, a DLQ
summary, the Redis durability verdict; ``--json`` for scripts; exit 1 when Redis cannot be read."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from jobfleet.core.settings import Settings
from jobfleet.ops.cli import main
from tests.conftest import RunningWorker, socket_closed_port, wait_for_state


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("JOBFLEET_DATA_DIR", settings.data_dir)


def status_json(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


@pytest.mark.usefixtures("cli_env")
def test_status_shows_depth_lag_and_a_dead_letter_summary(
    client: FlaskClient,
    settings: Settings,
    start_worker: Callable[..., RunningWorker],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given an email that dead-lettered (its SMTP server refuses connections until retries ran out)
    running = start_worker(dataclasses.replace(settings, smtp_port=socket_closed_port()))
    email = client.post("/v1/jobs/email", json={"to": "a@example.test", "subject": "s", "body": "b"}).get_json()
    wait_for_state(client, email["job_id"], {"dead"})
    running.worker.stop(timeout=5_000)
    # And two reports waiting with no worker to run them
    for _ in range(2):
        assert client.post("/v1/jobs/report", json={}).status_code == 202

    # When an operator asks for the status as JSON
    status = status_json(capsys)

    # Then the queues, the lag and the dead letter are there
    queues = {q["queue"]: q for q in status["queues"]}
    assert queues["reports"]["ready"] == 2
    assert queues["reports"]["oldest_age_seconds"] >= 0
    assert queues["emails"]["dlq"] == 1
    assert status["dlq"]["total"] == 1
    assert status["dlq"]["by_type"] == {"email": 1}
    assert status["redis"]["verdict"] in {"ok", "unsafe"}  # the test Redis runs without AOF
    assert status["redis"]["source"] == "CONFIG GET"

    # And the table says the same to a human
    assert main(["status"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == ["QUEUE", "READY", "DELAYED", "IN-FLIGHT", "LAG", "DLQ", "DLQ-OLDEST"]
    reports = next(line for line in table.splitlines() if line.startswith("reports"))
    assert reports.split()[1] == "2"
    assert "dead letters: 1" in table


@pytest.mark.usefixtures("cli_env")
def test_status_warns_when_redis_could_lose_queue_data(redis_client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    saved = redis_client.config_get("appendonly")["appendonly"]
    redis_client.config_set("appendonly", "no")
    try:
        assert main(["status"]) == 0
    finally:
        redis_client.config_set("appendonly", saved)
    captured = capsys.readouterr()
    assert "durability UNSAFE" in captured.out
    assert "appendonly is off" in captured.out
    assert "may evict or lose queue data" in captured.err


def test_status_exits_1_when_redis_is_unreachable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{socket_closed_port()}/0")
    monkeypatch.setenv("JOBFLEET_REDIS_TIMEOUT_SECONDS", "0.5")

    assert main(["status", "--json"]) == 1
    assert "cannot read Redis" in capsys.readouterr().err
