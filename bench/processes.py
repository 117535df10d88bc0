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

import redis

from jobfleet.core.job_types import JobType
from jobfleet.core.payloads import JobPayload
from jobfleet.core.settings import Settings
from jobfleet.ops.cli import api_server_argv
from jobfleet.ops.embedded_redis import REQUIRED_CONFIG, free_port, port_open, redis_server_binary

ROOT = Path(__file__).resolve().parent.parent
# The job the workers below run (bench/boot_*.py declare its actor): each run INCRs COUNTER, so a caller
# sees a drain finish by polling one key instead of every job record.
COUNTER = "bench:done"
BENCH_TYPE = JobType("bench", "bench_incr", "bench", JobPayload, time_limit_seconds=60)
# A job whose actor raises PermanentError: dead at its first attempt, with its dead-letter indexes.
BENCH_FAIL_TYPE = JobType("bench_fail", "bench_fail", "bench", JobPayload, time_limit_seconds=60)


@contextmanager
def redis_server(workdir: Path, config: dict[str, str] | None = None) -> Iterator[str]:
    """A fresh redis-server with jobfleet's production settings (AOF everysec, noeviction), as
    jobfleet.ops.embedded_redis.start_redis starts it, plus ``config`` (e.g. ``{"hash-max-listpack-value": "1024"}``)
    on its command line."""
    port = free_port()
    data_dir = workdir / f"redis-{port}"
    data_dir.mkdir(parents=True, exist_ok=True)
    extra = [arg for name, value in (config or {}).items() for arg in (f"--{name}", value)]
    argv = [shutil.which("redis-server") or redis_server_binary(), "--bind", "127.0.0.1", "--port", str(port)]
    argv += ["--dir", str(data_dir.resolve()), "--save", "", *REQUIRED_CONFIG, *extra, "--logfile", "redis.log"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start; see {data_dir}/redis.log")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=60)


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


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (read from /proc: every thread's children list)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        for children in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(c) for c in children.read_text().split()]
            except OSError:
                continue
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by ``pid`` and its descendants (utime + stime of /proc/<pid>/stat)."""
    ticks = 0
    for p in process_tree(pid):
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": field 3 (state) is fields[0]
        ticks += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15
    return ticks / os.sysconf("SC_CLK_TCK")


def redis_cpu_seconds(client: redis.Redis) -> float:
    """CPU time Redis's process used so far (INFO cpu: used_cpu_user + used_cpu_sys)."""
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


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
