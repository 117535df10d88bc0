"""``make bench``: drain throughput and CPU per job, Redis round trips per job, API enqueue rate, latency, memory
per retained job and whether drain and enqueue stay flat as history grows — jobfleet next to a baseline measured in
the same run, so ratios survive a noisy machine. Every ratio is also collected under "ratios" in the JSON.

    python -m bench [--quick] [--json] [--jobs N] [--retained M] [--only drain,commands,api,latency,retention,history]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.api_load import api_enqueue
from bench.drain import drain_vs_bare, round_trips_vs_bare
from bench.history import history
from bench.latency import latency
from bench.options import Options
from bench.report import machine, memory, publish
from bench.retention import retention
from bench.summary import ratios

PARTS = ("drain", "commands", "api", "latency", "retention", "history")


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: finishes in about two minutes")
    parser.add_argument("--json", action="store_true", help="print the JSON result to stdout instead of a file")
    parser.add_argument("--jobs", type=int, help="drain size (default 20000, quick 2000)")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts to run ({','.join(PARTS)})")
    parser.add_argument("--count-jobs", type=int, help="jobs drained under MONITOR to count round trips")
    parser.add_argument("--api-seconds", type=int, help="load duration per API server")
    parser.add_argument("--latency-rate", type=int, help="offered jobs per second for the latency run")
    parser.add_argument("--latency-seconds", type=int, help="duration of the latency run")
    parser.add_argument("--retention-jobs", type=int, help="jobs per memory reading (default 20000, quick 2000)")
    parser.add_argument(
        "--retained", type=int, help="retained job records for the history part (default 1000000, quick 50000)"
    )
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
            retained_jobs=args.retention_jobs or (2000 if quick else 20000),
            history_records=args.retained or (50_000 if quick else 1_000_000),
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
        if "retention" in opts.only:
            log(f"retention: memory per retained job, {opts.retained_jobs} succeeded then {opts.retained_jobs} dead")
            results["retention"] = retention(opts)
        if "history" in opts.only:
            log(f"history: drain and API p99 on an empty Redis, then with {opts.history_records} retained records")
            results["history"] = history(opts)
        results["memory"] = memory(results)
    publish({"ratios": ratios(results), **results}, as_json=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
