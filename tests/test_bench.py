"""`make bench` keeps working: a tiny --quick run produces every figure (no timing is asserted)."""

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
