"""Every ratio of a run in one flat dict (the JSON's top-level "ratios"), and the table lines of the cost figures:
CPU per job, memory per retained job and the history part, each next to its baseline from the same run."""

from __future__ import annotations

from typing import Any

from bench.retention import LISTPACK_1024, LISTPACK_VALUE


def ratio(ours: float | None, base: float | None) -> float | None:
    return round(ours / base, 3) if ours and base else None


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    """jobfleet against its baseline for every figure of the parts that ran (and the memory figures themselves)."""
    out: dict[str, Any] = {}
    d = results.get("drain")
    if d:
        out["drain_jobs_per_second_jobfleet_to_bare"] = d["ratio"]
        out |= {f"drain_{figure}_jobfleet_to_bare": value for figure, value in d["cost_ratios"].items()}
    c = results.get("commands")
    if c:
        out["round_trips_per_job_jobfleet_minus_bare"] = c["extra_round_trips_per_job"]
    a = results.get("api")
    if a:
        out["api_requests_per_second_jobfleet_to_minimal"] = a["ratio"]
        out["api_p99_ms_jobfleet_to_minimal"] = ratio(a["jobfleet"].get("p99_ms"), a["minimal_send"].get("p99_ms"))
    h = results.get("history")
    if h:
        out["history_retained_records"] = h["retained_records"]
        out |= {f"history_{figure}_at_retained_to_empty": value for figure, value in h["ratios"].items()}
    r = results.get("retention")
    if r:
        out["bare_dramatiq_bytes_per_finished_job"] = r["bare_dramatiq_bytes_per_finished_job"]
        out["hash_max_listpack_value"] = r["default"][LISTPACK_VALUE]
        for outcome in ("succeeded", "dead"):
            figure = f"bytes_per_retained_{outcome}_job"
            out[figure] = r["default"][figure]
            if LISTPACK_1024 in r:
                out[f"{figure}_{LISTPACK_1024}"] = r[LISTPACK_1024][figure]
                out[f"{figure}_{LISTPACK_1024}_to_default"] = ratio(r[LISTPACK_1024][figure], r["default"][figure])
    return out


def row(label: str, base: Any, ours: Any, rel: Any = "") -> str:
    return f"  {label:<34}{base!s:>13} {ours!s:>11} {rel!s:>9}"


def header(title: str, base: str, ours: str, rel: str) -> str:
    return f"{title:<36}{base:>13} {ours:>11} {rel:>9}"


def drain_cost_lines(d: dict[str, Any]) -> list[str]:
    bare, ours, rel = d["bare"], d["jobfleet"], d["cost_ratios"]
    return [
        row("redis CPU µs/job (INFO cpu)", bare["redis_cpu_us_per_job"], ours["redis_cpu_us_per_job"],
            rel["redis_cpu_us_per_job"]),
        row("worker CPU µs/job (/proc)", bare["worker_cpu_us_per_job"], ours["worker_cpu_us_per_job"],
            rel["worker_cpu_us_per_job"]),
        row("script µs/job (EVALSHA usec)", bare["script_usec_per_job"], ours["script_usec_per_job"],
            rel["script_usec_per_job"]),
    ]  # fmt: skip


def retention_lines(r: dict[str, Any]) -> list[str]:
    default, big = r["default"], r.get(LISTPACK_1024)
    lines = [
        "",
        f"memory per retained job, {r['jobs']} jobs (hash-max-listpack-value: {default[LISTPACK_VALUE]}, 1024)",
        header("", "bare dramatiq", f"value {default[LISTPACK_VALUE]}", "1024" if big else ""),
    ]
    records = []
    for outcome in ("succeeded", "dead"):
        figure = f"bytes_per_retained_{outcome}_job"
        base = r["bare_dramatiq_bytes_per_finished_job"] if outcome == "succeeded" else "—"
        lines.append(row(f"bytes/{outcome} job (used_memory)", base, default[figure], big[figure] if big else ""))
        ones = [config[outcome]["one_record"] or {} for config in ((default, big) if big else (default,))]
        records.append(f"{outcome} " + " / ".join(f"{o.get('memory_usage_bytes')} B {o.get('encoding')}" for o in ones))
    lines.append(f"  one record (MEMORY USAGE): {'; '.join(records)}")
    return lines


def history_lines(h: dict[str, Any]) -> list[str]:
    at_0, at_m, rel = h["at_0"], h["at_retained"], h["ratios"]
    populate = h["populate"]
    return [
        "",
        header(f"history (jobfleet, {h['drain_jobs']}-job drain)", "empty", f"M={h['retained_records']:,}", "ratio"),
        row("drain jobs/s", at_0["drain_jobs_per_second"], at_m["drain_jobs_per_second"], rel["drain_jobs_per_second"]),
        row("redis CPU µs/job in the drain", at_0["drain_redis_cpu_us_per_job"], at_m["drain_redis_cpu_us_per_job"],
            rel["drain_redis_cpu_us_per_job"]),
        row("API req/s", at_0["api_requests_per_second"], at_m["api_requests_per_second"],
            rel["api_requests_per_second"]),
        row("API p99 ms", at_0["api_p99_ms"], at_m["api_p99_ms"], rel["api_p99_ms"]),
        f"  (M records: {populate['used_memory_mib']} MiB, written in {populate['write_seconds']} s "
        f"+ AOF rewrite {populate['aof_rewrite_seconds']} s)",
    ]  # fmt: skip
