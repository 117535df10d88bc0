"""Fixtures for fault tests: a ReplyProxy in front of the session Redis. Everything a fixture starts is stopped after
the test, pass or fail."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import RedisServer
from tests.faults.toolkit import ReplyProxy


@pytest.fixture
def reply_proxy(redis_url: str, redis_server: RedisServer) -> Iterator[ReplyProxy]:
    """A ReplyProxy (no faults yet) in front of the session redis-server, flushed for this test."""
    proxy = ReplyProxy(redis_server.port).start()
    yield proxy
    proxy.stop()
