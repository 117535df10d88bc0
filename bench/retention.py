"""Memory per retained finished job: what a succeeded and a dead job's record (and its indexes) cost in Redis until
its retention ends, under the Redis default ``hash-max-listpack-value`` and, when that is 64, with 1024.

Each figure comes from a fresh Redis and a real worker fleet (jobfleet's, or bare Dramatiq's for the baseline):
a warm-up drain of N/10 jobs first pays the one-time costs (scripts loaded, connections, the scripts' own client
buffers), then ``used_memory`` is read with the fleet idle, N trivial jobs are submitted and drained, and it is read
again with the fleet idle; the difference, less the change in client buffers, script cache and AOF buffer (not per
job), divided by N."""

from __future__ import annotations

import time
from typing import Any, cast

import redis

from bench.drain import preload
from bench.options import Options
from bench.processes import BENCH_FAIL_TYPE, BENCH_TYPE, COUNTER, child_env, process, redis_server, worker_argv
from jobfleet.core.job_types import JobType
from jobfleet.core.settings import Settings
from jobfleet.store.factory import keys_for
from jobfleet.store.keys import Keys

LISTPACK_VALUE = "hash-max-listpack-value"
LISTPACK_1024 = "listpack_value_1024"
# Not data: the buffers of connected clients, the script cache and the AOF buffer not yet written.
FIXED_COSTS = ("mem_clients_normal", "used_memory_scripts", "mem_aof_buffer")


def memory_info(client: redis.Redis) -> dict[str, int]:
    info = client.info("memory")
    return {name: int(info[name]) for name in ("used_memory", *FIXED_COSTS)}


def drained(client: redis.Redis, system: str, job_type: JobType, keys: Keys, n: int) -> bool:
    """Every job finished: counted (the INCR, or the dead-letter index) and neither waiting nor running."""
    if system == "bare":  # Dramatiq's ack deletes the message from <ns>:<queue>.msgs
        return int(client.get(COUNTER) or 0) >= n and client.hlen("bare:bench.msgs") == 0
    finished = int(client.get(COUNTER) or 0) if job_type is BENCH_TYPE else int(client.zcard(keys.dlq(0)))
    return finished >= n and client.zcard(keys.queue(0, "bench")) == 0 and client.zcard(keys.running(0, "bench")) == 0


def retained(
    opts: Options, job_type: JobType, config: dict[str, str], label: str, system: str = "jobfleet"
) -> dict[str, Any]:
    """Bytes of Redis memory per finished job of ``job_type`` left behind by a drain of ``opts.retained_jobs``."""
    n, warm_up = opts.retained_jobs, max(opts.retained_jobs // 10, 50)
    with redis_server(opts.workdir, config) as url:
        client = redis.Redis.from_url(url)
        keys = keys_for(Settings.from_env({}, redis_url=url))
        listpack_value = str(client.config_get(LISTPACK_VALUE)[LISTPACK_VALUE])
        name = f"retention-{label}-{system}-{job_type.name}"
        with process(worker_argv(system), child_env(url, opts.workdir), name, opts.workdir) as proc:

            def submit_and_drain(jobs: int, finished: int) -> dict[str, int]:
                """Submit ``jobs`` jobs, wait until ``finished`` jobs in all have finished, read the memory."""
                preload(system, url, jobs, job_type)
                deadline = time.monotonic() + 600
                while not drained(client, system, job_type, keys, finished):
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"retention drain did not finish: see {opts.workdir}/{name}.log")
                    time.sleep(0.05)
                time.sleep(2.5)  # the fleet idle: Redis has shrunk idle query buffers and written the AOF buffer
                return memory_info(client)

            before = submit_and_drain(warm_up, warm_up)
            after = submit_and_drain(n, warm_up + n)
        record = next(iter(client.scan_iter(match=keys.job_prefix(0) + "*", count=100)), None)
        one = one_record(client, record) if record else None
        client.close()
    fixed = sum(after[cost] - before[cost] for cost in FIXED_COSTS)
    return {
        LISTPACK_VALUE: listpack_value,
        "jobs": n,
        "warm_up_jobs": warm_up,
        "bytes_per_retained_job": round((after["used_memory"] - before["used_memory"] - fixed) / n, 1),
        "used_memory_delta_bytes": after["used_memory"] - before["used_memory"],
        "fixed_costs_excluded_bytes": fixed,
        "one_record": one,
    }


def one_record(client: redis.Redis, key: bytes) -> dict[str, Any]:
    """State, encoding and exact MEMORY USAGE of one job's record (the hash alone: no key-space or index share)."""
    state = cast(bytes | None, client.hget(key, "state"))
    encoding = cast(bytes | None, client.object("encoding", key))
    return {
        "state": state.decode() if state else None,
        "encoding": encoding.decode() if encoding else None,
        "memory_usage_bytes": client.memory_usage(key, samples=0),
    }


def both_outcomes(opts: Options, label: str, config: dict[str, str]) -> dict[str, Any]:
    succeeded = retained(opts, BENCH_TYPE, config, label)
    dead = retained(opts, BENCH_FAIL_TYPE, config, label)
    return {
        LISTPACK_VALUE: succeeded[LISTPACK_VALUE],
        "bytes_per_retained_succeeded_job": succeeded["bytes_per_retained_job"],
        "bytes_per_retained_dead_job": dead["bytes_per_retained_job"],
        "succeeded": succeeded,
        "dead": dead,
    }


def retention(opts: Options) -> dict[str, Any]:
    """Bytes per retained succeeded and dead job with Redis's default listpack limit and, if that is 64, 1024."""
    # The baseline: what a bare Dramatiq leaves behind per acked job (nothing but noise: its ack deletes the message).
    bare = retained(opts, BENCH_TYPE, {}, "default", system="bare")
    out: dict[str, Any] = {
        "jobs": opts.retained_jobs,
        "bare_dramatiq_bytes_per_finished_job": bare["bytes_per_retained_job"],
        "bare": bare,
        "default": both_outcomes(opts, "default", {}),
    }
    if out["default"][LISTPACK_VALUE] == "64":
        out[LISTPACK_1024] = both_outcomes(opts, LISTPACK_1024, {LISTPACK_VALUE: "1024"})
    return out
