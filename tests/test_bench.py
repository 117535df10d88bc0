"""`make bench` keeps working: a tiny --quick run produces every figure (no timing or size is asserted: the figures
only exist and are positive numbers)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jobfleet.store.scripts import SCRIPTS
from tests.conftest import require_binary

ROOT = Path(__file__).parent.parent


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_quick_bench_reports_every_figure_as_json() -> None:
    require_binary("redis-server")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--json",
            "--jobs",
            "300",
            "--count-jobs",
            "60",
            "--api-seconds",
            "1",
            "--latency-rate",
            "50",
            "--latency-seconds",
            "1",
            "--retention-jobs",
            "100",
            "--retained",
            "2000",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
        check=True,
    )
    result = json.loads(out.stdout)
    drain = result["drain"]
    assert drain["bare"]["jobs"] == drain["jobfleet"]["jobs"] == 300
    assert drain["ratio"] > 0
    assert drain["jobfleet"]["commands_by_name_per_job"]["evalsha"] > 0
    rt = result["commands"]
    # Round trips are named by script sha: every EVALSHA the workers send is one of jobfleet's scripts (an
    # unnamed sha would show up as evalsha:<8 hex>). Attempts are claimed inside the fetch script (v2 has no
    # begin script), and one finish per job records the outcome and takes the thread's next job (a few more at
    # start-up, when threads race to load the script: NOSCRIPT, SCRIPT LOAD, EVALSHA again; gone at 20,000).
    scripts = {name for name in rt["jobfleet"]["by_command"] if name.startswith("evalsha:")}
    assert scripts <= {f"evalsha:{name}" for name in SCRIPTS}, scripts
    assert rt["jobfleet"]["by_command"]["evalsha:fetch"] > 0
    assert 1.0 <= rt["jobfleet"]["by_command"]["evalsha:finish"] <= 1.4
    # The baseline is stock Dramatiq's RedisBroker: its dispatch script fetches and acks
    assert rt["bare"]["by_command"]["dispatch:fetch"] > 0
    assert rt["bare"]["by_command"]["dispatch:ack"] >= 1.0
    api = result["api"]
    assert api["minimal_send"]["requests_per_second"] > 0
    assert api["jobfleet"]["requests_per_second"] > 0
    assert result["latency"]["succeeded"] == 50
    assert result["memory"]["worker_process_rss_mib"]
    for system in ("bare", "jobfleet"):
        for figure in ("redis_cpu_us_per_job", "worker_cpu_us_per_job", "script_usec_per_job"):
            assert_positive(drain[system][figure])
    retention = result["retention"]
    assert retention["default"]["succeeded"]["one_record"]["state"] == "succeeded"
    assert retention["default"]["dead"]["one_record"]["state"] == "dead"
    history = result["history"]
    assert history["populate"]["records"] == 2000
    assert history["record"]["copy_encoding"] == history["record"]["encoding"]
    ratios = result["ratios"]
    figures = [
        "drain_jobs_per_second_jobfleet_to_bare",
        "drain_redis_cpu_us_per_job_jobfleet_to_bare",
        "drain_worker_cpu_us_per_job_jobfleet_to_bare",
        "drain_script_usec_per_job_jobfleet_to_bare",
        "api_requests_per_second_jobfleet_to_minimal",
        "api_p99_ms_jobfleet_to_minimal",
        "history_drain_jobs_per_second_at_retained_to_empty",
        "history_api_requests_per_second_at_retained_to_empty",
        "history_api_p99_ms_at_retained_to_empty",
        "bytes_per_retained_succeeded_job",
        "bytes_per_retained_dead_job",
    ]
    if ratios["hash_max_listpack_value"] == "64":
        figures += [
            "bytes_per_retained_succeeded_job_listpack_value_1024",
            "bytes_per_retained_dead_job_listpack_value_1024",
        ]
    for figure in figures:
        assert_positive(ratios[figure])


def assert_positive(value: object) -> None:
    assert isinstance(value, int | float), value
    assert not isinstance(value, bool)
    assert value > 0
