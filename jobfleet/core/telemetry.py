"""Process telemetry plumbing for the entry points: OpenTelemetry tracing from the standard ``OTEL_*`` variables,
prometheus_client's multiprocess directory, and a small /metrics HTTP server. Nothing here runs at import time."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Mapping
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from prometheus_client import CollectorRegistry, multiprocess, start_http_server

from jobfleet.core.settings import Settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def fresh_multiprocess_dir(path: str | Path) -> Path:
    """Empty (or create) ``path`` for prometheus_client's per-process files; call before the processes start."""
    folder = Path(path)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def multiprocess_registry(path: str | Path) -> CollectorRegistry:
    """A registry that aggregates every process's metric files under ``path`` (build one per scrape)."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(path))  # type: ignore[no-untyped-call]
    return registry


def serve_metrics(registry: CollectorRegistry, port: int, host: str = "127.0.0.1") -> WSGIServer:
    """Serve ``registry`` at http://host:port/metrics from a daemon thread; return the server (``shutdown()``)."""
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server


def trace_exporters(environ: Mapping[str, str]) -> list[SpanExporter]:
    """The span exporters the standard variables ask for; none unless an exporter or OTLP endpoint is named.

    ``OTEL_TRACES_EXPORTER``: ``otlp`` (protocol from ``OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL``, default
    ``http/protobuf``), ``console`` or ``none``. Unset, an ``OTEL_EXPORTER_OTLP[_TRACES]_ENDPOINT`` implies ``otlp``.
    """
    names = [n.strip() for n in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    if not names and (environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        names = ["otlp"]
    exporters: list[SpanExporter] = []
    for name in names:
        if name == "otlp":
            protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get(
                "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
            )
            if protocol == "grpc":
                exporters.append(GrpcExporter())
            else:
                exporters.append(HttpExporter())
        elif name == "console":
            exporters.append(ConsoleSpanExporter())
    return exporters


def build_tracer_provider(
    service_name: str, environ: Mapping[str, str], *, processors: list[SpanProcessor] | None = None
) -> TracerProvider:
    """A tracer provider for one process.

    With an exporter configured, spans are sampled by ``OTEL_TRACES_SAMPLER`` (SDK default: parent-based
    always-on) and batched to the exporters. With none, nothing is recorded unless an incoming trace was
    sampled, but ids are still generated and propagated, so logs and job records carry a ``trace_id``.
    """
    exporters = trace_exporters(environ)
    resource = Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME") or service_name})
    sampler = None if exporters or processors else ParentBased(root=ALWAYS_OFF)
    provider = TracerProvider(resource=resource, sampler=sampler)
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    for processor in processors or []:
        provider.add_span_processor(processor)
    return provider


def configure_tracing(service_name: str, environ: Mapping[str, str]) -> trace.TracerProvider:
    """Install the process's global tracer provider (once; later calls return the installed one)."""
    current = trace.get_tracer_provider()
    if not isinstance(current, trace.ProxyTracerProvider):
        return current
    provider = build_tracer_provider(service_name, environ)
    trace.set_tracer_provider(provider)
    return provider


def serve_worker_metrics() -> None:
    """Dramatiq fork entry point: serve every worker process's metrics at ``JOBFLEET_WORKER_METRICS_PORT``."""

    settings = Settings.from_env(os.environ)
    serve_metrics(
        multiprocess_registry(settings.prometheus_multiproc_dir), settings.worker_metrics_port, settings.metrics_host
    )
    threading.Event().wait()  # the Dramatiq CLI stops this fork with SIGTERM
