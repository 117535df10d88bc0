"""The fault tools against real processes: a frozen Redis, a full Redis, a frozen child process (or process group),
a Redis filled with junk keys and a child with a skewed wall clock. (ReplyProxy: test_proxy.py.)"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.conftest import RedisServer
from tests.faults.toolkit import (
    FakeTime,
    KeyFiller,
    no_retry_client,
    pause_process,
    pause_redis,
    redis_full,
    resume_redis,
)

Spawn = Callable[..., subprocess.Popen[bytes]]


def state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


def test_a_paused_redis_times_clients_out_and_answers_again_once_resumed(
    redis_server: RedisServer, redis_url: str
) -> None:
    client = no_retry_client(redis_url, socket_timeout=0.3)
    client.set("k", "before")
    with pause_redis(redis_server):
        assert state(redis_server.proc.pid) == "T"  # type: ignore[union-attr]
        with pytest.raises(redis.TimeoutError):
            client.get("k")
        with pytest.raises(redis.TimeoutError):  # a new connection too: the kernel accepts it, Redis never answers
            no_retry_client(redis_url, socket_timeout=0.3).ping()
        resume_redis(redis_server)  # resuming inside the block is allowed; leaving it later is harmless
        assert client.get("k") == b"before"
    assert client.get("k") == b"before"
    client.close()


def test_a_paused_redis_is_resumed_even_when_the_block_fails(redis_server: RedisServer, redis_url: str) -> None:
    with pytest.raises(RuntimeError, match="inside"), pause_redis(redis_server):
        raise RuntimeError("the test failed inside the pause")
    assert state(redis_server.proc.pid) != "T"  # type: ignore[union-attr]
    assert redis.Redis.from_url(redis_url, socket_timeout=1).ping()


def test_a_full_redis_refuses_writes_with_oom_serves_reads_and_recovers_after(redis_client: redis.Redis) -> None:
    redis_client.set("kept", "v")
    before = redis_client.config_get("maxmemory*")
    with redis_full(redis_client) as limit:
        with pytest.raises(
            redis.exceptions.OutOfMemoryError, match="maxmemory"
        ):  # "OOM command not allowed when used memory > .maxmemory."
            redis_client.set("new", "v")
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            redis_client.lpush("queue", "message")
        assert redis_client.get("kept") == b"v"
        assert int(redis_client.config_get("maxmemory")["maxmemory"]) == limit
    assert redis_client.set("new", "v")
    assert redis_client.config_get("maxmemory*") == before


def ticking_child(spawn: Spawn, ticks: Path) -> subprocess.Popen[bytes]:
    """A child that appends a line to ``ticks`` every 20 ms, sleeping in between."""
    code = f"import time\nwhile True:\n    open({str(ticks)!r}, 'a').write('tick\\n')\n    time.sleep(0.02)"
    child = spawn([sys.executable, "-c", code])
    deadline = time.monotonic() + 10
    while not ticks.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return child


def count(ticks: Path) -> int:
    return len(ticks.read_text().splitlines())


def test_a_paused_process_makes_no_progress_until_it_is_resumed(spawn: Spawn, tmp_path: Path) -> None:
    ticks = tmp_path / "ticks"
    child = ticking_child(spawn, ticks)
    with pause_process(child.pid) as stopped:
        assert stopped == [child.pid]
        assert state(child.pid) == "T"
        frozen = count(ticks)
        time.sleep(0.3)
        assert count(ticks) == frozen
    time.sleep(0.3)
    assert count(ticks) > frozen
    assert child.poll() is None


def test_pausing_a_process_group_stops_every_member(spawn: Spawn) -> None:
    # Given a shell whose two sleeping children share its process group (like a dramatiq master and its workers)
    shell = spawn(["sh", "-c", "sleep 60 & sleep 60 & wait"])
    deadline = time.monotonic() + 10
    while len(members := group_of(shell.pid)) < 3:
        assert time.monotonic() < deadline, "the shell did not start its children"
        time.sleep(0.01)
    # When the group is paused, then every member is stopped, and runs again after
    with pause_process(shell.pid, group=True) as stopped:
        assert sorted(stopped) == sorted(members)
        assert {state(pid) for pid in members} == {"T"}
    assert "T" not in {state(pid) for pid in members}


def group_of(pgid: int) -> list[int]:
    members = []
    for pid in (int(name) for name in os.listdir("/proc") if name.isdigit()):
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(pid) == pgid:
                members.append(pid)
    return members


def test_pausing_the_test_process_itself_is_refused() -> None:
    with pytest.raises(ValueError, match="test process"), pause_process(os.getpid()):
        pass


def test_the_key_filler_adds_n_keys(redis_client: redis.Redis, key_filler: KeyFiller) -> None:
    n = int(os.environ.get("JOBFLEET_FAULTS_KEYS", "50000"))  # e.g. 1000000 for the "1 M keys" size
    before = redis_client.dbsize()
    report = key_filler.fill(n)
    print(f"KeyFiller: {n} keys in {report.seconds:.2f}s by {report.method}")
    assert report.keys == n
    assert redis_client.dbsize() == before + n
    assert redis_client.strlen(f"{key_filler.prefix}:{n - 1}") == key_filler.value_size


def test_the_key_filler_uses_debug_populate_where_redis_allows_it(debug_redis: redis.Redis) -> None:
    report = KeyFiller(debug_redis, prefix="populated").fill(50_000)
    assert report.method == "debug"
    assert debug_redis.dbsize() == 50_000
    assert debug_redis.exists("populated:49999")


def test_the_key_filler_can_be_told_to_pipeline(debug_redis: redis.Redis) -> None:
    report = KeyFiller(debug_redis, batch=7, depth=3).fill(100, method="pipeline")
    assert report.method == "pipeline"
    assert debug_redis.dbsize() == 100


@pytest.mark.parametrize("skew", [20, -20, 0.5])
def test_a_child_under_clock_skew_sees_its_wall_clock_moved(faketime: FakeTime, skew: float) -> None:
    before = time.time()
    child = subprocess.run(
        [sys.executable, "-c", "import time; print(time.time())"],
        env={**os.environ, **faketime.env(skew)},
        capture_output=True,
        check=True,
        timeout=20,
    )
    after = time.time()
    assert before + skew - 0.1 <= float(child.stdout) <= after + skew + 0.1


def test_a_skewed_child_still_sleeps_waits_and_times_out_normally(faketime: FakeTime) -> None:
    # Given a skewed child that sleeps, waits on an event, a queue and a subprocess, and reads the monotonic clock
    code = """if True:
        import json, queue, subprocess, sys, threading, time
        start = time.monotonic()
        time.sleep(0.1)
        threading.Event().wait(0.1)
        try:
            queue.Queue().get(timeout=0.1)
        except queue.Empty:
            pass
        try:
            subprocess.run([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.1)
        except subprocess.TimeoutExpired:
            pass
        print(json.dumps({"monotonic": time.monotonic(), "elapsed": time.monotonic() - start}))
    """
    before = time.monotonic()
    child = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **faketime.env(3600)},
        capture_output=True,
        check=True,
        timeout=20,
    )
    # Then every timeout fired on time, and its monotonic clock is this machine's, unskewed
    report = json.loads(child.stdout)
    assert 0.4 <= report["elapsed"] < 3
    assert before <= report["monotonic"] <= time.monotonic()
