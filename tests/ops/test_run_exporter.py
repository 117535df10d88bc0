"""`make run` (`jobfleet run`) also serves the queue exporter, stops it with the rest, and warns when its Redis
could lose queue data."""

from __future__ import annotations

import signal
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from jobfleet.ops.embedded_redis import free_port, port_open
from tests.fleet.test_run import fleet_env, marked_pids, start_fleet  # noqa: F401 - fixtures reused

pytestmark = pytest.mark.slow


def test_run_serves_the_queue_exporter_and_stops_it(
    start_fleet: Any,  # noqa: F811
    fleet_env: dict[str, str],  # noqa: F811
    redis_url: str,
) -> None:
    # Given `jobfleet run` on the test Redis (which runs without AOF) with the exporter on a free port
    exporter_port = free_port()
    fleet = start_fleet(
        {
            **fleet_env,
            "REDIS_URL": redis_url,
            "JOBFLEET_EXPORTER_PORT": str(exporter_port),
            "JOBFLEET_WORKER_METRICS_PORT": str(free_port()),
        }
    )
    fleet.wait_ready()

    # Then the exporter answers with the queue metrics
    with urllib.request.urlopen(f"http://127.0.0.1:{exporter_port}/metrics", timeout=5) as response:
        body = response.read().decode()
    assert 'jobfleet_queue_depth{queue="reports"}' in body
    assert "jobfleet_exporter_redis_up 1.0" in body

    # And the startup check warned loudly that this Redis has AOF off
    log = Path(fleet.log).read_text()
    assert "REDIS MAY LOSE QUEUE DATA" in log
    assert "appendonly is off" in log

    # When the fleet is stopped, the exporter goes with it
    fleet.proc.send_signal(signal.SIGTERM)
    assert fleet.proc.wait(timeout=60) == 0
    assert not port_open("127.0.0.1", exporter_port)
    assert marked_pids(fleet.marker) == []
