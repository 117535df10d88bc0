"""`jobfleet run` (what `make run` starts) for real: subprocesses on free ports, HTTP, SIGTERM, no orphans."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobfleet.ops.embedded_redis import free_port, port_open

pytestmark = pytest.mark.slow


def marked_pids(marker: str) -> list[int]:
    """Pids of live processes whose environment carries ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if marker.encode() in environ and stat.split(") ", 1)[1][0] != "Z":
            found.append(int(entry.name))
    return found


def http(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


class Fleet:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.marker = env["JOBFLEET_TEST_MARKER"]
        self.api = f"http://127.0.0.1:{env['JOBFLEET_API_PORT']}"
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jobfleet.ops.cli", "run"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                if http("GET", f"{self.api}/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError("API not ready: " + self.log.read_text()[-3000:])

    def wait_state(self, job_id: str, states: set[str], timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            body = http("GET", f"{self.api}/v1/jobs/{job_id}")[1]
            if body.get("state") in states:
                return body
            time.sleep(0.1)
        raise AssertionError(f"{job_id} stuck: {body}\n" + self.log.read_text()[-3000:])

    def kill_everything(self) -> None:
        for pid in marked_pids(self.marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def fleet_env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "JOBFLEET_TEST_MARKER": f"fleet-{uuid.uuid4().hex}",
        "JOBFLEET_API_PORT": str(free_port()),
        # `jobfleet run` also starts the queue exporter and the workers serve /metrics: never the default ports.
        "JOBFLEET_EXPORTER_PORT": str(free_port()),
        "JOBFLEET_WORKER_METRICS_PORT": str(free_port()),
        "JOBFLEET_API_WORKERS": "1",
        "JOBFLEET_WORKER_PROCESSES": "1",
        "JOBFLEET_WORKER_THREADS": "2",
        "JOBFLEET_SHUTDOWN_TIMEOUT_SECONDS": "20",
        "JOBFLEET_REPORT_DIR": str(tmp_path / "reports"),
        "JOBFLEET_DATA_DIR": str(tmp_path / "state"),
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def start_fleet(tmp_path: Path) -> Iterator[Any]:
    fleets: list[Fleet] = []

    def start(env: dict[str, str]) -> Fleet:
        fleet = Fleet(env, tmp_path / f"fleet{len(fleets)}.log")
        fleets.append(fleet)
        return fleet

    yield start
    for fleet in fleets:  # a failed test still leaves nothing behind
        fleet.kill_everything()


def test_run_serves_jobs_and_sigterm_drains_and_stops_every_process(
    start_fleet: Any, fleet_env: dict[str, str], redis_url: str
) -> None:
    # Given the fleet `make run` starts, on the test Redis
    fleet = start_fleet({**fleet_env, "REDIS_URL": redis_url})
    fleet.wait_ready()
    assert len(marked_pids(fleet.marker)) >= 5  # supervisor, gunicorn master + worker, dramatiq master + worker

    # When a report is enqueued over HTTP, it is polled to succeeded
    status, accepted = http("POST", f"{fleet.api}/v1/jobs/report", {"rows": 100})
    assert status == 202
    done = fleet.wait_state(accepted["job_id"], {"succeeded"})
    assert Path(done["result"]["path"]).exists()

    # And a long report is running when SIGTERM arrives
    _, slow = http("POST", f"{fleet.api}/v1/jobs/report", {"rows": 400_000})
    fleet.wait_state(slow["job_id"], {"running"})
    fleet.proc.send_signal(signal.SIGTERM)

    # Then the supervisor exits cleanly, the in-flight job finished, and no process is left
    assert fleet.proc.wait(timeout=60) == 0, fleet.log.read_text()[-3000:]
    # One SIGTERM per process: a dramatiq worker that gets a second one abandons its drain ("Killing ...")
    assert "Killing worker process" not in fleet.log.read_text()
    deadline = time.monotonic() + 10
    while marked_pids(fleet.marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marked_pids(fleet.marker) == []
    import redis

    client = redis.Redis.from_url(redis_url)
    states = {key.decode(): client.hget(key, "state") for key in client.scan_iter("*:job:*")}
    assert set(states.values()) == {b"succeeded"}, states


def test_run_without_redis_starts_an_embedded_one_with_aof(
    start_fleet: Any, fleet_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    env = {k: v for k, v in fleet_env.items() if k != "REDIS_URL"}
    fleet = start_fleet({**env, "JOBFLEET_LOCAL_REDIS_PORT": str(port)})
    fleet.wait_ready()
    assert port_open("127.0.0.1", port)

    _, accepted = http("POST", f"{fleet.api}/v1/jobs/report", {})
    fleet.wait_state(accepted["job_id"], {"succeeded"})
    redis_dir = tmp_path / "state" / "redis"
    assert list(redis_dir.glob("appendonly*")), list(redis_dir.iterdir())

    fleet.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    assert fleet.proc.wait(timeout=60) == 0
    assert not port_open("127.0.0.1", port)
    assert marked_pids(fleet.marker) == []
