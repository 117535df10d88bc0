"""Fixtures for fault tests: a ReplyProxy in front of the session Redis, child processes, a KeyFiller, a
redis-server that allows DEBUG and libfaketime. Everything a fixture starts is stopped after the test, pass or fail."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from jobfleet.ops.embedded_redis import free_port
from tests.conftest import IN_CI, RedisServer, redis_binary, require_binary, stop_process_group
from tests.faults.stage import receiver_log, stage  # noqa: F401 - fixtures for this folder
from tests.faults.toolkit import FakeTime, KeyFiller, ReplyProxy, find_libfaketime, load_faketime


@pytest.fixture
def reply_proxy(redis_url: str, redis_server: RedisServer) -> Iterator[ReplyProxy]:
    """A ReplyProxy (no faults yet) in front of the session redis-server, flushed for this test."""
    proxy = ReplyProxy(redis_server.port).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start a child in its own process group (``spawn(argv, **popen_kwargs)``); all are stopped after the test."""
    started: list[subprocess.Popen[bytes]] = []

    def start(argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, start_new_session=True, **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        stop_process_group(proc, timeout=5)


@pytest.fixture
def key_filler(redis_client: redis.Redis) -> KeyFiller:
    return KeyFiller(redis_client)


@pytest.fixture
def debug_redis(spawn: Callable[..., subprocess.Popen[bytes]], tmp_path: Path) -> Iterator[redis.Redis]:
    """A client of a separate redis-server that allows DEBUG from loopback (Redis 7 refuses it by default)."""
    port = free_port()
    argv = [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)]
    proc = spawn([*argv, "--enable-debug-command", "local"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port, socket_timeout=5)
    deadline = time.monotonic() + 20
    while not _answers(client):
        if proc.poll() is not None:  # a Redis before 7 knows no enable-debug-command: it allows DEBUG anyway
            proc = spawn(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if time.monotonic() > deadline:
            raise RuntimeError(f"redis-server did not start on port {port}")
        time.sleep(0.02)
    yield client
    client.close()


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture(scope="session")
def faketime() -> FakeTime:
    """libfaketime, checked to work: skip loudly when it is missing locally, fail under CI=true."""
    require_binary("faketime")
    library = find_libfaketime()
    if library is None:
        message = "the faketime package is installed but libfaketime.so.1 is not found"
        if IN_CI:
            pytest.fail(f"CI=true and {message}")
        pytest.skip(f"!!! SKIPPED: {message}")
    return load_faketime(library)
