"""Drain throughput and Redis round trips per job: jobfleet's workers against bare Dramatiq on the same jobs."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

import redis
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker

from bench.options import Options
from bench.processes import (
    BENCH_TYPE,
    COUNTER,
    child_env,
    per_process_rss,
    process,
    redis_cpu_seconds,
    redis_server,
    tree_cpu_seconds,
    worker_argv,
)
from jobfleet.app.enqueue import submit
from jobfleet.core.job_types import JobType
from jobfleet.core.settings import Settings
from jobfleet.store.factory import open_store
from jobfleet.store.scripts import script_source


def preload(system: str, redis_url: str, n: int, job_type: JobType = BENCH_TYPE) -> None:
    """Enqueue ``n`` trivial jobs the way each system's clients would (jobfleet: of ``job_type``)."""
    if system == "bare":
        broker = RedisBroker(url=redis_url, namespace="bare")  # type: ignore[no-untyped-call]
        for _ in range(n):
            broker.enqueue(Message(queue_name="bench", actor_name="bench_incr", args=(), kwargs={}, options={}))
        broker.close()
        return
    settings = Settings.from_env({}, redis_url=redis_url)
    store = open_store(settings)
    for _ in range(n):
        submit(store, job_type, {}, caller="bench", idempotency_key=None, idempotency_ttl=60)
    store.client.close()


def script_names() -> dict[str, str]:
    """sha1 → readable name for every Lua script either system runs."""
    names = {}
    for path in (resources.files("jobfleet.store") / "lua").iterdir():
        if path.name.endswith(".lua"):
            name = path.name.removesuffix(".lua")
            names[hashlib.sha1(script_source(name).encode()).hexdigest()] = name  # noqa: S324
    for path in (resources.files("dramatiq.brokers") / "redis").iterdir():
        if path.name.endswith(".lua"):
            names[hashlib.sha1(path.read_bytes()).hexdigest()] = path.name.removesuffix(".lua")  # noqa: S324
    return names


def drain(system: str, opts: Options) -> dict[str, Any]:
    """Time a drain of ``opts.jobs`` pre-enqueued jobs on a fresh Redis (drain_on)."""
    with redis_server(opts.workdir) as url:
        return drain_on(system, url, opts.jobs, opts.workdir, f"drain-{system}")


def drain_on(system: str, url: str, n: int, workdir: Path, name: str, *, preloaded: bool = False) -> dict[str, Any]:
    """Enqueue ``n`` trivial jobs on the Redis at ``url`` (unless ``preloaded``), start a worker fleet and time the
    drain from 5% to 100% done; count Redis commands and the CPU Redis and the worker processes spend per job."""
    client = redis.Redis.from_url(url)
    if not preloaded:
        preload(system, url, n)
    client.config_resetstat()
    redis_cpu_start = redis_cpu_seconds(client)
    polls = 0
    t5 = t100 = worker_cpu_5 = worker_cpu_100 = None
    started = time.monotonic()
    with process(worker_argv(system), child_env(url, workdir), name, workdir) as proc:
        while time.monotonic() - started < 600:
            done = int(client.get(COUNTER) or 0)
            polls += 1
            now = time.monotonic()
            if t5 is None and done >= n * 0.05:
                t5, worker_cpu_5 = now, tree_cpu_seconds(proc.pid)
            if done >= n:
                t100, worker_cpu_100 = now, tree_cpu_seconds(proc.pid)
                break
            if proc.poll() is not None:
                raise RuntimeError(f"{system} worker exited: see {workdir}/{name}.log")
            time.sleep(0.01)
        redis_cpu = redis_cpu_seconds(client) - redis_cpu_start
        rss = per_process_rss(proc.pid)
        stats = client.info("commandstats")
    if t5 is None or t100 is None or worker_cpu_5 is None or worker_cpu_100 is None:
        raise RuntimeError(f"{system}: drain did not finish")
    commands = {
        cmd.removeprefix("cmdstat_"): int(v["calls"])
        for cmd, v in stats.items()
        if not cmd.startswith(("cmdstat_info", "cmdstat_config"))
    }
    commands["get"] = commands.get("get", 0) - polls
    commands = {k: v for k, v in commands.items() if v > 0}
    script_usec = sum(int(stats.get(f"cmdstat_{c}", {}).get("usec", 0)) for c in ("evalsha", "eval"))
    client.close()
    seconds = t100 - t5
    return {
        "jobs": n,
        "seconds_5_to_100": round(seconds, 3),
        "jobs_per_second": round(n * 0.95 / seconds, 1),
        "redis_commands_per_job_incl_script_internals": round(sum(commands.values()) / n, 2),
        "commands_by_name_per_job": {k: round(v / n, 3) for k, v in sorted(commands.items())},
        # INFO cpu from right after the preload (when commandstats is reset) to 100% done.
        "redis_cpu_us_per_job": round(redis_cpu * 1e6 / n, 1),
        # utime + stime of the dramatiq master and its children, 5% -> 100% done.
        "worker_cpu_us_per_job": round((worker_cpu_100 - worker_cpu_5) * 1e6 / (n * 0.95), 1),
        # commandstats usec of EVALSHA (and EVAL): the scripts' own time, inner commands included.
        "script_usec_per_job": round(script_usec / n, 1),
        "worker_rss_mib": rss,
    }


def round_trips(system: str, opts: Options) -> dict[str, Any]:
    """Top-level Redis round trips per job (MONITOR; script internals excluded), on a smaller drain."""
    n = opts.count_jobs
    names = script_names()
    with redis_server(opts.workdir) as url:
        client = redis.Redis.from_url(url)
        preload(system, url, n)
        counts: Counter[str] = Counter()
        stop = threading.Event()

        def watch() -> None:
            with client.monitor() as monitor:  # type: ignore[no-untyped-call]
                ready.set()
                while not stop.is_set():
                    entry = monitor.next_command()
                    if entry["client_type"] == "lua":
                        continue
                    parts = entry["command"].split(" ")
                    name = parts[0].lower()
                    if name == "evalsha":
                        name = f"evalsha:{names.get(parts[1], parts[1][:8])}"
                        if name == "evalsha:dispatch" and len(parts) > 4:
                            name = f"dispatch:{parts[4]}"
                    counts[name] += 1

        ready = threading.Event()
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        ready.wait(5)
        poller = redis.Redis.from_url(url)
        with process(worker_argv(system), child_env(url, opts.workdir), f"count-{system}", opts.workdir):
            deadline = time.monotonic() + 300
            while int(poller.get(COUNTER) or 0) < n and time.monotonic() < deadline:
                time.sleep(0.05)
        stop.set()
        poller.set("bench:wake", 1)  # one last command so the monitor loop sees stop
        watcher.join(5)
        for noise in ("get", "set", "monitor"):
            counts.pop(noise, None)
        poller.close()
        client.close()
    per_job = {k: round(v / n, 3) for k, v in sorted(counts.items())}
    return {"jobs": n, "round_trips_per_job": round(sum(counts.values()) / n, 2), "by_command": per_job}


def drain_vs_bare(opts: Options) -> dict[str, Any]:
    """Both drains, bare Dramatiq first, and jobfleet's throughput as a fraction of bare's."""
    bare = drain("bare", opts)
    full = drain("jobfleet", opts)
    return {
        "bare": bare,
        "jobfleet": full,
        "ratio": round(full["jobs_per_second"] / bare["jobs_per_second"], 3),
        "cost_ratios": {
            figure: round(full[figure] / bare[figure], 2) if bare[figure] else None
            for figure in ("redis_cpu_us_per_job", "worker_cpu_us_per_job", "script_usec_per_job")
        },
    }


def round_trips_vs_bare(opts: Options) -> dict[str, Any]:
    """Both round-trip counts, bare Dramatiq first, and what jobfleet adds per job."""
    bare_rt = round_trips("bare", opts)
    full_rt = round_trips("jobfleet", opts)
    return {
        "bare": bare_rt,
        "jobfleet": full_rt,
        "extra_round_trips_per_job": round(full_rt["round_trips_per_job"] - bare_rt["round_trips_per_job"], 2),
    }
