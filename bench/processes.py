"""Start the Redis servers, worker fleets and API servers a benchmark measures, stop them, and read their memory."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jobfleet.core.job_types import JobType
from jobfleet.core.payloads import JobPayload
from jobfleet.core.settings import Settings
from jobfleet.ops.cli import api_server_argv
from jobfleet.ops.embedded_redis import free_port, port_open, start_redis

ROOT = Path(__file__).resolve().parent.parent
# The job the workers below run (bench/boot_*.py declare its actor): each run INCRs COUNTER, so a caller
# sees a drain finish by polling one key instead of every job record.
COUNTER = "bench:done"
BENCH_TYPE = JobType("bench", "bench_incr", "bench", JobPayload, time_limit_seconds=60)


@contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """A fresh redis-server with jobfleet's production settings (AOF everysec, noeviction)."""
    port = free_port()
    binary = shutil.which("redis-server")
    proc = start_redis(workdir / f"redis-{port}", port, binary=binary)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def child_env(redis_url: str, workdir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "JOBFLEET_DATA_DIR": str(workdir / f"state-{uuid.uuid4().hex[:6]}"),
        "JOBFLEET_REPORT_DIR": str(workdir / "reports"),
        "JOBFLEET_WORKER_METRICS_PORT": str(free_port()),
        "JOBFLEET_LOG_LEVEL": "WARNING",
        # The baselines have no auth either; the API refuses to start without keys unless told so.
        "JOBFLEET_AUTH": "disabled",
        "PYTHONUNBUFFERED": "1",
    }


@contextmanager
def process(argv: list[str], env: dict[str, str], name: str, workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    with (workdir / f"{name}.log").open("wb") as out:
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def rss_mib(pid: int) -> float:
    """Resident set size of a process and its children (MiB)."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return round(total / 1024, 1)


def per_process_rss(pid: int) -> list[float]:
    try:
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        children = []
    out = []
    for p in children:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out.append(round(int(line.split()[1]) / 1024, 1))
        except OSError:
            continue
    return out


def worker_argv(system: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dramatiq",
        f"bench.boot_{system}:setup",
        "--processes",
        "2",
        "--threads",
        "16",
        "--worker-shutdown-timeout",
        "5000",
    ]


def granian_argv(target: str, port: int) -> list[str]:
    """The production API server command (default settings, loopback) serving ``target`` on ``port``."""
    return api_server_argv(Settings.from_env({}), target=target, port=port)


def wait_http(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not port_open("127.0.0.1", port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"server on {port} did not start")
        time.sleep(0.1)
    time.sleep(0.5)
