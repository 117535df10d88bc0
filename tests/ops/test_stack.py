"""`make stack` for real: `jobfleet stack up` starts Redis (embedded), workers, exporter, API, Prometheus with our
rules and Alertmanager in the background on free ports; a job enqueued over HTTP shows up in Prometheus; `make load`
drives a mix with failures; `stack down` stops everything it started and nothing is left (a /proc marker scan)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jobfleet.core.settings import Settings
from jobfleet.ops.cmd_load import is_loopback_url, run_load
from jobfleet.ops.embedded_redis import free_port, port_open
from jobfleet.ops.stack_monitoring import prometheus_config
from tests.conftest import require_binary
from tests.fleet.test_run import http, marked_pids

REPO = Path(__file__).resolve().parents[2]
PORTS = (
    "JOBFLEET_API_PORT",
    "JOBFLEET_WORKER_METRICS_PORT",
    "JOBFLEET_EXPORTER_PORT",
    "JOBFLEET_PROMETHEUS_PORT",
    "JOBFLEET_ALERTMANAGER_PORT",
    "JOBFLEET_LOCAL_REDIS_PORT",
    "JOBFLEET_SMTP_PORT",
)


def cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobfleet.ops.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_for(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, KeyError, IndexError):
            last = check()
            if last:
                return last
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def prom_query(port: int, query: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=5) as response:
        result: list[dict[str, Any]] = json.loads(response.read())["data"]["result"]
        return result


def prom_api(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/{path}", timeout=5) as response:
        return json.loads(response.read())["data"]


@pytest.fixture
def stack_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "PROMETHEUS_MULTIPROC_DIR"}}
    env.update({name: str(free_port()) for name in PORTS})
    env.update(
        {
            "JOBFLEET_TEST_MARKER": f"stack-{uuid.uuid4().hex}",
            "JOBFLEET_DATA_DIR": str(tmp_path / "state"),
            "JOBFLEET_REPORT_DIR": str(tmp_path / "reports"),
            "JOBFLEET_API_WORKERS": "1",
            "JOBFLEET_WORKER_PROCESSES": "1",
            "JOBFLEET_WORKER_THREADS": "4",
            "JOBFLEET_SHUTDOWN_TIMEOUT_SECONDS": "5",
            "JOBFLEET_STACK_SCRAPE_INTERVAL_SECONDS": "1",
            "JOBFLEET_MAX_RETRIES": "1",
            "JOBFLEET_MIN_BACKOFF_SECONDS": "0.1",
            "JOBFLEET_MAX_BACKOFF_SECONDS": "0.3",
            "OTEL_TRACES_EXPORTER": "none",
        }
    )
    yield env
    # Whatever happened, nothing this test started survives it: stack down, then SIGKILL any marked process.
    with contextlib.suppress(subprocess.TimeoutExpired):
        cli(env, "stack", "down", timeout=30)
    for pid in marked_pids(env["JOBFLEET_TEST_MARKER"]):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    redis_pid = Path(env["JOBFLEET_DATA_DIR"], "run", "redis.pid")
    if redis_pid.exists() and port_open("127.0.0.1", int(env["JOBFLEET_LOCAL_REDIS_PORT"])):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(redis_pid.read_text()), signal.SIGKILL)  # redis-server rewrites its environ: no marker


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_stack_up_serves_jobs_prometheus_sees_them_and_down_leaves_nothing(stack_env: dict[str, str]) -> None:
    require_binary("prometheus")
    require_binary("prometheus-alertmanager")
    env = stack_env
    started = time.monotonic()
    ports = {name: int(env[name]) for name in PORTS}

    # Given the stack started in the background
    up = cli(env, "stack", "up")
    assert up.returncode == 0, up.stdout + up.stderr
    for name in ("redis", "worker", "exporter", "api", "alertmanager", "prometheus"):
        assert name in up.stdout
    state = Path(env["JOBFLEET_DATA_DIR"])
    assert {p.name for p in (state / "run").glob("*.pid")} >= {"api.pid", "worker.pid", "prometheus.pid"}
    assert (state / "logs" / "api.log").exists()
    status = cli(env, "stack", "status", "--json")
    assert status.returncode == 0, status.stdout
    assert all(c["alive"] for c in json.loads(status.stdout)["components"])
    assert cli(env, "stack", "up").returncode == 1  # a second stack in the same place is refused

    # When a report is enqueued over HTTP
    api = f"http://127.0.0.1:{ports['JOBFLEET_API_PORT']}"
    code, accepted = http("POST", f"{api}/v1/jobs/report", {"rows": 50})
    assert code == 202

    # Then it succeeds and Prometheus (scraping every second, with our rules) sees it
    status_url = f"{api}{accepted['status_url']}"
    wait_for("report succeeded", lambda: http("GET", status_url)[1]["state"] == "succeeded", 20)
    prom = ports["JOBFLEET_PROMETHEUS_PORT"]
    succeeded = 'sum(jobfleet_jobs_succeeded_total{actor="build_report"})'
    wait_for("the job in Prometheus", lambda: float(prom_query(prom, succeeded)[0]["value"][1]) >= 1, 20)
    wait_for("the exporter in Prometheus", lambda: prom_query(prom, 'jobfleet_queue_depth{queue="reports"}'), 10)
    rule_names = {rule["name"] for group in prom_api(prom, "rules")["groups"] for rule in group["rules"]}
    assert "JobfleetQueueLagHigh" in rule_names
    am = ports["JOBFLEET_ALERTMANAGER_PORT"]
    assert prom_api(prom, "alertmanagers")["activeAlertmanagers"] == [{"url": f"http://127.0.0.1:{am}/api/v2/alerts"}]

    # And `make load` drives a mix with failures against it (webhooks refused with 503/400 reach the DLQ)
    load_settings = Settings.from_env(env)
    result = run_load(load_settings, api, seconds=3, rate=10, linger=1, seed=7)
    assert result["responses"].get("202", 0) >= 20, result
    assert result["responses"].get("422", 0) >= 1 or result["sent"].get("invalid", 0) == 0
    assert set(result["webhook_answers"]) >= {"200", "400"}, result
    dlq_depth = "sum(jobfleet_dlq_depth)"
    wait_for("a dead letter in Prometheus", lambda: float(prom_query(prom, dlq_depth)[0]["value"][1]) >= 1, 15)

    # When the stack is stopped
    down = cli(env, "stack", "down")
    assert down.returncode == 0, down.stdout + down.stderr

    # Then nothing it started is left, every port is free again and status knows there is no stack
    wait_for("no marked process", lambda: not marked_pids(env["JOBFLEET_TEST_MARKER"]), 10)
    busy = [name for name, port in ports.items() if name != "JOBFLEET_SMTP_PORT" and port_open("127.0.0.1", port)]
    assert busy == []
    assert not list((state / "run").glob("*.pid"))
    assert cli(env, "stack", "status").returncode == 3
    assert time.monotonic() - started < 60


def test_prometheus_config_points_at_this_stack_and_every_rule_file() -> None:
    settings = Settings.from_env(
        {"JOBFLEET_API_PORT": "18000", "JOBFLEET_EXPORTER_PORT": "18180", "JOBFLEET_ALERTMANAGER_PORT": "18093"}
    )

    config = prometheus_config(settings, alertmanager=True)

    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    assert targets["jobfleet-api"] == ["127.0.0.1:18000"]
    assert targets["jobfleet-exporter"] == ["127.0.0.1:18180"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:18093"]
    assert sorted(Path(p).name for p in config["rule_files"]) == ["alerts.yml", "recording.yml"]
    assert all(Path(p).is_absolute() and Path(p).exists() for p in config["rule_files"])
    assert "alerting" not in prometheus_config(settings, alertmanager=False)


def test_load_only_ever_targets_loopback() -> None:
    assert is_loopback_url("http://127.0.0.1:8000")
    assert is_loopback_url("http://localhost:8000")
    assert is_loopback_url("http://[::1]:8000")
    assert not is_loopback_url("http://10.0.0.5:8000")
    assert not is_loopback_url("http://example.com")
    with pytest.raises(ValueError, match="loopback"):
        run_load(Settings.from_env({}), "http://192.168.1.10:8000", seconds=1, rate=1)
    with pytest.raises(ValueError, match="rate"):
        run_load(Settings.from_env({}), "http://127.0.0.1:9", seconds=1, rate=0)
