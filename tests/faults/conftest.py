"""Fixtures for fault tests: a ReplyProxy in front of the session Redis and child processes. Everything a fixture
starts is stopped after the test, pass or fail."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import RedisServer, stop_process_group
from tests.faults.toolkit import ReplyProxy


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
