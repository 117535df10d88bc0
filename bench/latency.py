"""Accepted → succeeded latency of a trivial jobfleet job at a fixed offered load below saturation."""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench.options import Options
from bench.processes import BENCH_TYPE, COUNTER, child_env, per_process_rss, process, redis_server, worker_argv
from jobfleet.app.enqueue import submit
from jobfleet.core.settings import Settings
from jobfleet.store.factory import open_store


def latency(opts: Options) -> dict[str, Any]:
    """accepted → succeeded for a trivial job at a fixed offered load below saturation."""
    rate, seconds = opts.latency_rate, opts.latency_seconds
    with redis_server(opts.workdir) as url:
        settings = Settings.from_env({}, redis_url=url)
        store = open_store(settings)
        with process(worker_argv("jobfleet"), child_env(url, opts.workdir), "latency-worker", opts.workdir) as proc:
            time.sleep(3)  # workers booted
            job_ids: list[str] = []
            start = time.monotonic()
            for i in range(rate * seconds):
                target = start + i / rate
                delay = target - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                job_ids.append(
                    submit(store, BENCH_TYPE, {}, caller="bench", idempotency_key=None, idempotency_ttl=60).job_id
                )
            achieved = len(job_ids) / (time.monotonic() - start)
            deadline = time.monotonic() + 60
            while int(store.client.get(COUNTER) or 0) < len(job_ids) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)
            worker_rss = per_process_rss(proc.pid)
        lat = []
        with store.client.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hmget(store.keys.job(job_id), "enqueued", "finished", "state")
            for enqueued, finished, state in pipe.execute():
                if state == b"succeeded":
                    lat.append(float(finished) - float(enqueued))  # Redis time, ms
        store.client.close()
    lat.sort()

    def q(p: float) -> float:
        return round(lat[min(len(lat) - 1, int(len(lat) * p))], 2)

    return {
        "offered_per_second": rate,
        "achieved_per_second": round(achieved, 1),
        "seconds": seconds,
        "succeeded": len(lat),
        "p50_ms": q(0.50),
        "p95_ms": q(0.95),
        "p99_ms": q(0.99),
        "mean_ms": round(statistics.fmean(lat), 2),
        "worker_rss_mib": worker_rss,
        "note": "finished - enqueued from the job record (Redis time, ms resolution)",
    }
