"""The broker sends each middleware signal only to the middleware that handle it, in Dramatiq's order and with
Dramatiq's error handling (jobfleet.broker.emit)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from dramatiq.middleware import Middleware, MiddlewareError

from jobfleet.broker.emit import SignalCache, emit_after, emit_before, handlers


class Recorder(Middleware):
    def __init__(self, name: str, calls: list[str]) -> None:
        self.name, self.calls = name, calls

    def before_process_message(self, broker: Any, message: Any) -> None:
        self.calls.append(f"before:{self.name}")

    def after_process_message(self, broker: Any, message: Any, *, result: Any = None, exception: Any = None) -> None:
        self.calls.append(f"after:{self.name}")


class Quiet(Middleware):
    """Overrides nothing."""


class Broken(Middleware):
    def __init__(self, error: Exception) -> None:
        self.error = error

    def before_process_message(self, broker: Any, message: Any) -> None:
        raise self.error


class FakeBroker:
    def __init__(self, middleware: list[Middleware]) -> None:
        self.middleware = middleware
        self.logger = logging.getLogger("test-emit")


def test_signals_reach_the_handlers_in_order_before_top_down_after_bottom_up() -> None:
    calls: list[str] = []
    broker = FakeBroker([Recorder("a", calls), Quiet(), Recorder("b", calls)])
    cache = SignalCache()
    emit_before(broker, cache, "process_message", object())
    emit_after(broker, cache, "process_message", object(), result=None)
    assert calls == ["before:a", "before:b", "after:b", "after:a"]


def test_a_middleware_that_overrides_nothing_gets_no_call() -> None:
    assert [m for m, _ in handlers([Quiet(), Quiet()], "before_process_message")] == []
    quiet = Quiet()
    quiet.before_process_message = lambda broker, message: None  # type: ignore[method-assign]
    assert [m for m, _ in handlers([quiet], "before_process_message")] == [quiet]


def test_a_middleware_added_later_or_in_place_is_seen() -> None:
    calls: list[str] = []
    broker = FakeBroker([Recorder("a", calls)])
    cache = SignalCache()
    emit_before(broker, cache, "process_message", object())
    broker.middleware.append(Recorder("b", calls))
    emit_before(broker, cache, "process_message", object())
    assert calls == ["before:a", "before:a", "before:b"]


def test_a_middleware_error_propagates_and_other_failures_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []
    broker = FakeBroker([Broken(RuntimeError("boom")), Recorder("a", calls)])
    emit_before(broker, SignalCache(), "process_message", object())
    assert calls == ["before:a"]
    assert "Unexpected failure in before_process_message" in caplog.text
    with pytest.raises(MiddlewareError):
        emit_before(FakeBroker([Broken(MiddlewareError("stop"))]), SignalCache(), "process_message", object())
