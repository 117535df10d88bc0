"""A stage for fault tests: a redis-server of the test's own (to pause, fill or restart), the API in-process, real
worker processes, and a webhook receiver that records when each delivery started and ended, so a test can state
"every accepted job ended", "each job was delivered once" and "no two deliveries of one job overlapped"."""

from __future__ import annotations

import http.server
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from jobfleet.app import create_app
from jobfleet.core.settings import Settings
from jobfleet.ops.embedded_redis import free_port
from jobfleet.store.keys import Keys
from tests.conftest import RedisServer
from tests.fleet.workers import WorkerProcess

FINAL = frozenset({"succeeded", "dead", "cancelled", "failed"})
KEYS = Keys("jobfleet")


@dataclass
class Delivery:
    """One POST the receiver got: its job key, body, and when it started and ended (monotonic seconds)."""

    key: str
    body: Any
    started: float
    ended: float = 0.0


@dataclass
class IntervalReceiver:
    """Answers webhooks after ``delay`` seconds with ``status(body)`` and records each delivery's interval."""

    url: str = ""
    delay: float = 0.0
    status: Callable[[Any], int] = lambda body: 200
    deliveries: list[Delivery] = field(default_factory=list)
    raw_bodies: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    started: threading.Event = field(default_factory=threading.Event)

    def per_key(self) -> dict[str, int]:
        """How many deliveries each job key got."""
        counts: dict[str, int] = {}
        for d in self.deliveries:
            counts[d.key] = counts.get(d.key, 0) + 1
        return counts

    def overlaps(self) -> list[tuple[str, float]]:
        """(key, seconds) for every pair of deliveries of one job that were in flight at the same time."""
        found = []
        by_key: dict[str, list[Delivery]] = {}
        for d in self.deliveries:
            by_key.setdefault(d.key, []).append(d)
        for key, ds in by_key.items():
            ds.sort(key=lambda d: d.started)
            for a, b in itertools.pairwise(ds):
                if b.started < (a.ended or time.monotonic()):
                    found.append((key, (a.ended or time.monotonic()) - b.started))
        return found


@pytest.fixture
def receiver_log() -> Iterator[IntervalReceiver]:
    state = IntervalReceiver()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            delivery = Delivery(self.headers.get("Idempotency-Key", ""), json.loads(raw or b"null"), time.monotonic())
            with state.lock:
                state.deliveries.append(delivery)
                state.raw_bodies.append(raw)
            state.started.set()
            if state.delay:
                time.sleep(state.delay)
            status = state.status(delivery.body)
            delivery.ended = time.monotonic()
            try:
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"{}")
            except (BrokenPipeError, ConnectionResetError):
                pass

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
class Stage:
    """The test's own Redis, an API client on it, and a way to start real worker processes on it."""

    redis: RedisServer
    tmp: Path
    workers: list[WorkerProcess] = field(default_factory=list)
    clients: list[redis.Redis] = field(default_factory=list)

    def settings(self, **overrides: Any) -> Settings:
        """Settings for the API on this stage (auth off, loopback webhooks allowed)."""
        values: dict[str, Any] = {
            "redis_url": self.redis.url,
            "auth": "disabled",
            "webhook_allowed_networks": "127.0.0.1/32",
            "report_dir": str(self.tmp / "reports"),
            "data_dir": str(self.tmp / "api-state"),
            **overrides,
        }
        return Settings.from_env({}, **values)

    def api(self, **overrides: Any) -> FlaskClient:
        """An in-process API client (its Redis client is closed at the end of the test)."""
        app = create_app(self.settings(**overrides))
        self.clients.append(app.extensions["jobfleet"].client)
        return app.test_client()

    def client(self) -> redis.Redis:
        """A plain client of the stage's Redis, for reading what the store holds."""
        client = redis.Redis.from_url(self.redis.url, socket_timeout=5)
        self.clients.append(client)
        return client

    def worker(self, url: str | None = None, **kwargs: Any) -> WorkerProcess:
        """A real worker process (dramatiq CLI) on the stage's Redis (or ``url``: a proxy in front of it)."""
        worker = WorkerProcess(url or self.redis.url, self.tmp, **kwargs)
        self.workers.append(worker)
        return worker

    def states(self, job_ids: list[str]) -> dict[str, str]:
        """Each job's state as Redis has it (``lost`` when its record is gone)."""
        client = self.client()
        with client.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hget(KEYS.job(job_id), "state")
            return {j: (s or b"lost").decode() for j, s in zip(job_ids, pipe.execute(), strict=True)}

    def wait_final(self, job_ids: list[str], timeout: float) -> tuple[dict[str, str], float]:
        """Wait until every job is in a final state; return the states and how long it took (seconds)."""
        started = time.monotonic()
        states = self.states(job_ids)
        while time.monotonic() - started < timeout:
            states = self.states(job_ids)
            if set(states.values()) <= FINAL:
                break
            time.sleep(0.1)
        return states, time.monotonic() - started

    def running_entries(self, queue: str) -> int:
        """Attempts of ``queue`` that Redis has as running."""
        return int(self.client().zcard(KEYS.running(0, queue)))


@pytest.fixture
def stage(tmp_path: Path) -> Iterator[Stage]:
    server = RedisServer(free_port(), tmp_path / "redis", appendonly=True)
    server.start()
    stage = Stage(server, tmp_path)
    yield stage
    for worker in stage.workers:
        worker.stop(timeout=10)
    for client in stage.clients:
        client.close()
    server.stop()


def post_webhooks(api: FlaskClient, url: str, count: int, **payload: Any) -> list[str]:
    """Enqueue ``count`` webhooks (payload ``{"n": i, **payload}``) and return their job ids."""
    ids = []
    for n in range(count):
        response = api.post("/v1/jobs/webhook", json={"url": url, "payload": {"n": n, **payload}})
        assert response.status_code == 202, response.get_json()
        ids.append(response.get_json()["job_id"])
    return ids
