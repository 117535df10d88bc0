"""API enqueue rate: jobfleet's real API against a minimal ``actor.send`` endpoint, loaded by wrk (or Python)."""

from __future__ import annotations

import http.client
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench.options import Options
from bench.processes import child_env, granian_argv, process, redis_server, rss_mib, wait_http
from jobfleet.ops.embedded_redis import free_port

JOBFLEET_API = "jobfleet.app.wsgi:create"

# Every request carries a new Idempotency-Key, as a client sending new jobs would: a repeated key would get the
# existing job back without an enqueue, and the benchmark would measure replays.
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = "{}"
wrk.headers["Content-Type"] = "application/json"
counter = 0
request = function()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = "bench-" .. tostring(math.random(1, 1000000000)) .. "-" .. counter
  return wrk.format(nil)
end
"""


def run_wrk(port: int, seconds: int, path: str, workdir: Path) -> dict[str, Any]:
    script = workdir / "post.lua"
    script.write_text(WRK_SCRIPT)
    out = subprocess.run(
        ["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency", "-s", str(script), f"http://127.0.0.1:{port}{path}"],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    result: dict[str, Any] = {}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            result["requests_per_second"] = float(parts[1])
        elif parts[:1] in (["50%"], ["99%"]):
            value = parts[1]
            ms = float(value[:-2]) if value.endswith("ms") else float(value[:-1]) * 1000 if value.endswith("s") else 0
            result["p50_ms" if parts[0] == "50%" else "p99_ms"] = round(ms, 2)
        elif "Non-2xx" in line:
            result["non_2xx"] = int(parts[-1])
    return result


def python_load(port: int, seconds: int, path: str) -> dict[str, Any]:
    """Fallback load generator (32 keep-alive connections) when wrk is not installed."""

    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def run() -> None:
        nonlocal errors
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        local: list[float] = []
        while time.monotonic() < deadline:
            t = time.perf_counter()
            conn.request(
                "POST",
                path,
                body=b"{}",
                headers={"Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex},
            )
            response = conn.getresponse()
            response.read()
            local.append(time.perf_counter() - t)
            if response.status != 202:
                with lock:
                    errors += 1
        with lock:
            latencies.extend(local)

    threads = [threading.Thread(target=run) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies.sort()
    return {
        "requests_per_second": round(len(latencies) / seconds, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        "non_2xx": errors,
    }


def load_generator() -> str:
    return "wrk" if shutil.which("wrk") else "python"


def serve_and_load(target: str, url: str, opts: Options, name: str) -> dict[str, Any]:
    """Serve ``target`` (an app factory) with the production API server on the Redis at ``url``, load its enqueue
    endpoint for ``opts.wrk_seconds`` and return req/s, p50/p99 and the server's RSS."""
    port = free_port()
    with process(granian_argv(target, port), child_env(url, opts.workdir), name, opts.workdir) as proc:
        wait_http(port)
        if load_generator() == "wrk":
            result = run_wrk(port, opts.wrk_seconds, "/v1/jobs/report", opts.workdir)
        else:
            result = python_load(port, opts.wrk_seconds, "/v1/jobs/report")
        result["server_rss_mib"] = rss_mib(proc.pid)
    return result


def api_enqueue(opts: Options) -> dict[str, Any]:
    """Enqueue rate of the real API vs a minimal actor.send endpoint, same server (granian), same run."""
    out: dict[str, Any] = {"load_generator": load_generator(), "connections": 32, "seconds": opts.wrk_seconds}
    for name, target in (("minimal_send", "bench.minimal_app:create"), ("jobfleet", JOBFLEET_API)):
        with redis_server(opts.workdir) as url:
            out[name] = serve_and_load(target, url, opts, f"api-{name}")
    out["ratio"] = round(out["jobfleet"]["requests_per_second"] / out["minimal_send"]["requests_per_second"], 3)
    return out
