"""Load at the API's saturation point on loopback: the real API (`python -m jobfleet.cli api`) and a real worker
process, a mix of valid and invalid requests for 30 s. The API stays up, its memory stays bounded, refusals are
429/503 with Retry-After, and every accepted job is processed."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis

from jobfleet.core.settings import Settings
from jobfleet.ops.embedded_redis import free_port
from jobfleet.store.factory import keys_for
from tests.conftest import stop_process_group
from tests.security.conftest import key

DURATION = 30.0
CLIENTS = 16


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and its children (granian's worker processes), in KiB."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def wait_http(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the API exited at start"
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the API did not start")


REQUESTS: list[tuple[str, str, bytes, str]] = [
    # (method, path, body, role): valid, invalid in every way the API checks, and refused credentials
    ("POST", "/v1/jobs/report", b'{"rows": 1}', "alice"),
    ("POST", "/v1/jobs/report", b'{"rows": 1, "format": "json"}', "bob"),
    ("POST", "/v1/jobs/report", b'{"rows": -5}', "alice"),
    ("POST", "/v1/jobs/report", b"{not json", "alice"),
    ("POST", "/v1/jobs/report", b"[" * 5000 + b"]" * 5000, "alice"),
    ("POST", "/v1/jobs/nope", b"{}", "alice"),
    ("POST", "/v1/jobs/report", b"{}", "wrong"),
    ("POST", "/v1/jobs/report", b"{}", "reader"),
    ("GET", "/v1/jobs/" + "0" * 32, b"", "alice"),
    ("GET", "/v1/dlq", b"", "admin"),
]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_api_survives_saturation_with_bounded_memory_and_loses_no_accepted_job(
    redis_url: str, keys_file: Path, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "JOBFLEET_API_PORT": str(port),
        "JOBFLEET_API_WORKERS": "1",
        "JOBFLEET_API_THREADS": "4",
        "JOBFLEET_API_KEYS_FILE": str(keys_file),
        "JOBFLEET_RATE_LIMIT_PER_SECOND": "150",
        "JOBFLEET_RATE_LIMIT_BURST": "150",
        "JOBFLEET_MAX_QUEUE_DEPTH": "2000",
        "JOBFLEET_WORKER_PROCESSES": "1",
        "JOBFLEET_WORKER_THREADS": "8",
        "JOBFLEET_WORKER_METRICS_PORT": str(free_port()),
        "JOBFLEET_DATA_DIR": str(tmp_path / "state"),
        "JOBFLEET_REPORT_DIR": str(tmp_path / "reports"),
        "JOBFLEET_LOG_LEVEL": "WARNING",
    }
    cmd = [sys.executable, "-m", "jobfleet.ops.cli"]
    logs = {name: (tmp_path / f"{name}.log").open("wb") for name in ("api", "worker")}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        api = subprocess.Popen(
            [*cmd, "api"], env=env, stdout=logs["api"], stderr=subprocess.STDOUT, start_new_session=True
        )
        procs.append(api)
        worker = subprocess.Popen(
            [*cmd, "worker"], env=env, stdout=logs["worker"], stderr=subprocess.STDOUT, start_new_session=True
        )
        procs.append(worker)
        wait_http(port, api)
        start_rss = rss_kib(api.pid)

        accepted: list[str] = []
        statuses: dict[int, int] = {}
        problems: list[str] = []
        reconnects: list[int] = []
        lock = threading.Lock()
        stop = time.monotonic() + DURATION

        def client(n: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            i = n
            while time.monotonic() < stop:
                method, path, body, role = REQUESTS[i % len(REQUESTS)]
                i += 1
                headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key(role)}"}
                try:
                    conn.request(method, path, body=body or None, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                    # The server closed an idle keep-alive connection: reconnect (the request was not answered,
                    # so it was not counted as accepted either way).
                    with lock:
                        reconnects.append(1)
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                    continue
                except (OSError, http.client.HTTPException) as exc:
                    with lock:
                        problems.append(f"{type(exc).__name__}: {exc}")
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                    continue
                with lock:
                    statuses[response.status] = statuses.get(response.status, 0) + 1
                    if response.status == 202:
                        accepted.append(json.loads(data)["job_id"])
                    if response.status in {429, 503} and not response.getheader("Retry-After"):
                        problems.append(f"{response.status} without Retry-After")
            conn.close()

        rss_samples: list[int] = []
        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            rss_samples.append(rss_kib(api.pid))
            time.sleep(1)
        for t in threads:
            t.join()

        # The API stayed up, answered without 5xx other than documented backpressure, memory bounded
        assert api.poll() is None, "the API died under load"
        assert not problems, problems[:5]
        assert not {s for s in statuses if s >= 500} - {503}, statuses
        assert statuses.get(429, 0) > 0, statuses  # the rate limit was reached: this was saturation
        total = sum(statuses.values())
        assert total > 2000, statuses
        assert len(reconnects) < total * 0.05, (len(reconnects), statuses)
        peak = max(rss_samples)
        assert peak < start_rss + 150 * 1024, (start_rss, peak)
        late = rss_samples[len(rss_samples) // 2 :]
        assert max(late) - min(late) < 60 * 1024, rss_samples  # no steady growth in the second half

        # And every accepted job is processed
        client_ = redis.Redis.from_url(redis_url)
        keys = keys_for(Settings.from_env(env))  # the key schema the API and the worker ran with
        deadline = time.monotonic() + 90
        pending = set(accepted)
        while pending and time.monotonic() < deadline:
            with client_.pipeline(transaction=False) as pipe:
                for job_id in pending:
                    pipe.hget(keys.job(job_id), "state")
                states = dict(zip(list(pending), pipe.execute(), strict=True))
            pending = {j for j, s in states.items() if s != b"succeeded"}
            time.sleep(0.5)
        client_.close()
        assert not pending, f"{len(pending)} of {len(accepted)} accepted jobs not processed"
        print(
            f"load: {total} requests in {DURATION:.0f}s ({total / DURATION:.0f}/s) {statuses}; "
            f"{len(accepted)} accepted, all processed; {len(reconnects)} reconnects; "
            f"API RSS {start_rss // 1024} -> peak {peak // 1024} MiB"
        )
    finally:
        for proc in procs:
            stop_process_group(proc)
        for log in logs.values():
            log.close()
