"""The ``jobfleet`` CLI against real Redis: DLQ tools, job lookup, exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from jobfleet.ops.cli import EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, main
from tests.conftest import Receiver, RunningWorker, wait_for_state


@pytest.fixture
def run_cli(redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., Any]:
    monkeypatch.setenv("REDIS_URL", redis_url)

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def dead_webhooks(client: FlaskClient, receiver: Receiver, n: int) -> list[str]:
    receiver.statuses = [404] * n
    jobs = [
        client.post("/v1/jobs/webhook", json={"url": receiver.url, "payload": {"n": i}}).get_json()["job_id"]
        for i in range(n)
    ]
    for job_id in jobs:
        assert wait_for_state(client, job_id, {"dead"})["state"] == "dead"
    return jobs


def test_dlq_list_show_replay_purge_from_the_command_line(
    run_cli: Callable[..., Any], client: FlaskClient, worker: RunningWorker, receiver: Receiver
) -> None:
    jobs = dead_webhooks(client, receiver, 3)

    code, out, _ = run_cli("dlq", "list")
    assert code == EXIT_OK
    assert all(job_id in out for job_id in jobs)
    assert "3 in the DLQ" in out

    code, out, _ = run_cli("dlq", "list", "--json", "--type", "webhook", "--limit", "2")
    listing = json.loads(out)
    assert (len(listing["items"]), listing["total"]) == (2, 3)

    code, out, _ = run_cli("dlq", "show", jobs[0])
    assert json.loads(out)["error"]["type"] == "PermanentError"

    code, out, _ = run_cli("dlq", "replay", "--all", "--dry-run")
    assert code == EXIT_OK
    assert "3 dead letter(s) would be replayed" in out

    code, out, _ = run_cli("dlq", "replay", jobs[0])
    assert (code, out.strip()) == (EXIT_OK, f"replayed {jobs[0]} (replay #1)")
    assert wait_for_state(client, jobs[0], {"succeeded", "dead"})["state"] == "succeeded"

    code, out, err = run_cli("dlq", "replay", "--type", "webhook", "--per-second", "100")
    assert code == EXIT_OK
    assert "replayed 2 of 2" in out
    assert "2/2" in err  # the progress bar

    for job_id in jobs[1:]:
        wait_for_state(client, job_id, {"succeeded", "dead"})
    code, out, _ = run_cli("dlq", "purge", jobs[1])
    assert code == EXIT_NOT_FOUND  # it was replayed and succeeded: nothing to purge


def test_cli_exit_codes(run_cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_cli("dlq", "show", "0" * 32)[0] == EXIT_NOT_FOUND
    assert run_cli("jobs", "show", "0" * 32)[0] == EXIT_NOT_FOUND
    assert run_cli("dlq", "replay")[0] == EXIT_USAGE
    monkeypatch.setenv("JOBFLEET_API_PORT", "eighty")
    code, _, err = run_cli("config")
    assert code == EXIT_USAGE
    assert "JOBFLEET_API_PORT" in err


def test_cli_reports_an_unreachable_redis_in_one_line(
    run_cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import socket_closed_port

    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{socket_closed_port()}/0")
    code, _, err = run_cli("dlq", "list")
    assert code == 1
    assert err.startswith("jobfleet: Redis")
    assert err.count("\n") == 1
