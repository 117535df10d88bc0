"""`make bench` keeps working: a tiny --quick run produces every figure (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_binary

ROOT = Path(__file__).parent.parent


@pytest.mark.slow
@pytest.mark.timeout(240)
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
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=230,
        check=True,
    )
    result = json.loads(out.stdout)
    drain = result["drain"]
    assert drain["bare"]["jobs"] == drain["jobfleet"]["jobs"] == 300
    assert drain["ratio"] > 0
    assert drain["jobfleet"]["commands_by_name_per_job"]["evalsha"] > 0
    rt = result["commands"]
    # Attempts are claimed inside the fetch script: no begin call at all, one finish per job (a few more at
    # start-up, when threads race to load the script: NOSCRIPT, SCRIPT LOAD, EVALSHA again; gone at 20,000).
    assert rt["jobfleet"]["by_command"].get("evalsha:begin", 0) == 0
    assert rt["jobfleet"]["by_command"]["evalsha:fetch"] > 0
    assert 1.0 <= rt["jobfleet"]["by_command"]["evalsha:finish"] <= 1.4
    api = result["api"]
    assert api["minimal_send"]["requests_per_second"] > 0
    assert api["jobfleet"]["requests_per_second"] > 0
    assert result["latency"]["succeeded"] == 50
    assert result["memory"]["worker_process_rss_mib"]
