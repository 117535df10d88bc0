"""Fixtures for observability tests: an in-memory span exporter, a traced API and worker, metric helpers."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import dramatiq
import pytest
from flask import Flask
from flask.testing import FlaskClient
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from jobfleet.core.settings import Settings
from jobfleet.core.telemetry import build_tracer_provider
from jobfleet.middleware.worker_metrics import WorkerMetrics
from tests.conftest import RunningWorker, require_binary


@dataclass
class Spans:
    """Finished spans recorded in memory by a provider the test passes to the API and the worker."""

    exporter: InMemorySpanExporter
    provider: TracerProvider

    def finished(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, prefix: str) -> list[ReadableSpan]:
        return [s for s in self.finished() if s.name.startswith(prefix)]

    def wait_for(self, predicate: Callable[[list[ReadableSpan]], bool], timeout: float = 10.0) -> list[ReadableSpan]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            spans = self.finished()
            if predicate(spans):
                return spans
            time.sleep(0.02)
        got = [(s.name, dict(s.attributes or {})) for s in self.finished()]
        raise AssertionError(f"spans never matched; got {got}")


@pytest.fixture
def spans() -> Iterator[Spans]:
    exporter = InMemorySpanExporter()
    provider = build_tracer_provider("jobfleet-test", {}, processors=[SimpleSpanProcessor(exporter)])
    yield Spans(exporter, provider)
    provider.shutdown()


@pytest.fixture
def traced_app(settings: Settings, spans: Spans) -> Flask:
    from jobfleet.app import create_app

    return create_app(settings, tracer_provider=spans.provider)


@pytest.fixture
def traced_client(traced_app: Flask) -> FlaskClient:
    return traced_app.test_client()


@pytest.fixture
def traced_worker(settings: Settings, spans: Spans) -> Iterator[RunningWorker]:
    from jobfleet.workers.broker import install

    broker = install(settings, tracer_provider=spans.provider)
    broker.emit_after("process_boot")
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    yield RunningWorker(broker, worker, settings)
    worker.stop(timeout=10_000)
    broker.close()


def worker_registry(running: RunningWorker) -> CollectorRegistry:
    """The metrics registry of a running in-process worker."""
    [metrics] = [m for m in running.broker.middleware if isinstance(m, WorkerMetrics)]
    return metrics.registry


def wait_for_sample(
    registry: CollectorRegistry,
    name: str,
    labels: dict[str, str] | None,
    expected: float,
    timeout: float = 10.0,
) -> None:
    """Wait until a sample reaches ``expected`` (after_* hooks run just after the status is visible)."""
    deadline = time.monotonic() + timeout
    value: Any = None
    while time.monotonic() < deadline:
        value = registry.get_sample_value(name, labels)
        if value == expected:
            return
        time.sleep(0.02)
    raise AssertionError(f"{name}{labels} is {value}, expected {expected}")


def promtool_check(text: bytes | str) -> None:
    """`promtool check metrics` accepts the exposition (lint problems fail the test with promtool's words)."""
    promtool = require_binary("promtool")
    data = text.encode() if isinstance(text, str) else text
    result = subprocess.run([promtool, "check", "metrics"], input=data, capture_output=True, timeout=30, check=False)
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


@pytest.fixture
def free_port_factory() -> Callable[[], int]:
    from jobfleet.ops.embedded_redis import free_port

    return free_port
