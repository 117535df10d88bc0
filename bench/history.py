"""Flat as history grows: jobfleet's drain (jobs/s, 5% -> 100%) and its API's enqueue p99 on an empty Redis, then
on a Redis holding M retained succeeded job records, and the ratios (at M / at 0).

The M records are copies of a real one, produced by the drain at 0: each copy is RESTOREd from the real record's
DUMP under a fresh job id of the same partition, with its TTL, so its fields, encoding and size are exactly a real
record's whatever finish.lua does to it. A succeeded job leaves nothing else behind (finish.lua: its hash with a
TTL; its queue and running entries are gone). They are written in raw pipelines of 1,000 copies with the AOF off,
then the AOF is switched back on (Redis rewrites it from the data set, and fsyncs it) and the rewrite is awaited,
so the measurement at M starts, like a long-running production Redis, with a compact AOF and no rewrite under way."""

from __future__ import annotations

import time
import uuid
from typing import Any, cast

import redis

from bench.api_load import JOBFLEET_API, serve_and_load
from bench.drain import drain_on, preload
from bench.options import Options
from bench.processes import redis_server
from jobfleet.core.settings import Settings
from jobfleet.store.factory import keys_for
from jobfleet.store.keys import Keys

BATCH = 1000
# The drain's per-job costs worth comparing at 0 and at M.
DRAIN_FIGURES = ("jobs_per_second", "redis_cpu_us_per_job", "worker_cpu_us_per_job", "script_usec_per_job")
API_FIGURES = ("requests_per_second", "p50_ms", "p99_ms")


def resp(*args: bytes) -> bytes:
    """One command in the Redis protocol."""
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def wait_for_aof_rewrite(client: redis.Redis, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while True:
        info = client.info("persistence")
        if info["aof_enabled"] and not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]:
            return
        if time.monotonic() > deadline:
            raise RuntimeError("the AOF rewrite did not finish")
        time.sleep(0.1)


def populate(client: redis.Redis, keys: Keys, template: dict[str, Any], m: int) -> dict[str, Any]:
    """Write ``m`` copies of the template record under fresh job ids of its partition; say how long it took.

    Each copy is RESTOREd from the real record's DUMP, so it has the record's exact fields, encoding and TTL."""
    ttl_ms = str(max(1, template["ttl"]) * 1000).encode()
    partition = keys.partition_of(template["id"])
    prefix = keys.job_prefix(partition).encode()
    started = time.monotonic()
    client.config_set("appendonly", "no")
    conn = client.connection_pool.get_connection()
    try:
        for start in range(0, m, BATCH):
            count = min(BATCH, m - start)
            batch = b"".join(
                resp(b"RESTORE", prefix + new_id(keys, partition), ttl_ms, template["dump"]) for _ in range(count)
            )
            conn.send_packed_command([batch])  # type: ignore[no-untyped-call]
            for _ in range(count):
                conn.read_response()
    finally:
        client.connection_pool.release(conn)
    written = time.monotonic() - started
    client.config_set("appendonly", "yes")  # rewrites the AOF from the data set
    wait_for_aof_rewrite(client)
    return {
        "records": int(client.dbsize()),
        "write_seconds": round(written, 1),
        "aof_rewrite_seconds": round(time.monotonic() - started - written, 1),
        "used_memory_mib": round(int(client.info("memory")["used_memory"]) / 2**20, 1),
    }


def new_id(keys: Keys, partition: int) -> bytes:
    """A fresh job id that lives in ``partition``."""
    while True:
        job_id = uuid.uuid4().hex
        if keys.partition_of(job_id) == partition:
            return job_id.encode()


def summary(retained: int, drain: dict[str, Any], api: dict[str, Any]) -> dict[str, Any]:
    return {
        "retained_records": retained,
        **{f"drain_{k}": drain[k] for k in DRAIN_FIGURES},
        **{f"api_{k}": api.get(k) for k in API_FIGURES},
    }


def history(opts: Options) -> dict[str, Any]:
    """The drain and the API p99 at 0 and at ``opts.history_records`` retained records, and the ratios."""
    n, m = opts.jobs, opts.history_records
    with redis_server(opts.workdir) as url:
        client = redis.Redis.from_url(url)
        keys = keys_for(Settings.from_env({}, redis_url=url))
        preload("jobfleet", url, n)
        job_id = cast(list[bytes], client.zrange(keys.queue(0, "bench"), 0, 0))[0].decode()
        message = client.hget(keys.job(job_id), "msg")
        drain_0 = drain_on("jobfleet", url, n, opts.workdir, "history-drain-0", preloaded=True)
        fields = client.hgetall(keys.job(job_id))
        template = {"id": job_id, "dump": client.dump(keys.job(job_id)), "ttl": client.ttl(keys.job(job_id))}
        if fields.get(b"state") != b"succeeded" or not message:
            raise RuntimeError(f"the template job {job_id} did not succeed: see {opts.workdir}/history-drain-0.log")
        record = {"encoding": client.object("encoding", keys.job(job_id)), "fields": len(fields)}
        record["memory_usage_bytes"] = client.memory_usage(keys.job(job_id), samples=0)
        client.close()
    with redis_server(opts.workdir) as url:  # the API at 0 on an empty Redis of its own
        api_0 = serve_and_load(JOBFLEET_API, url, opts, "history-api-0")
    with redis_server(opts.workdir) as url:
        client = redis.Redis.from_url(url)
        written = populate(client, keys, template, m)
        copy = next(client.scan_iter(match=keys.job_prefix(0) + "*", count=100))
        record["copy_memory_usage_bytes"] = client.memory_usage(copy, samples=0)
        record["copy_encoding"] = client.object("encoding", copy)
        drain_m = drain_on("jobfleet", url, n, opts.workdir, "history-drain-m")
        api_m = serve_and_load(JOBFLEET_API, url, opts, "history-api-m")
        client.close()
    at_0, at_m = summary(0, drain_0, api_0), summary(m, drain_m, api_m)
    ratios = {
        figure: round(at_m[figure] / at_0[figure], 3) if at_m[figure] and at_0[figure] else None
        for figure in ("drain_jobs_per_second", "drain_redis_cpu_us_per_job", "api_requests_per_second", "api_p99_ms")
    }
    return {
        "retained_records": m,
        "drain_jobs": n,
        "populate": written,
        "record": {k: v.decode() if isinstance(v, bytes) else v for k, v in record.items()},
        "at_0": at_0,
        "at_retained": at_m,
        "ratios": ratios,
        "note": "at_retained: the drain ran with M records present, the API with M + the drain's jobs",
    }
