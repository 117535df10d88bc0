"""``jobfleet run``: the local fleet in one command — Redis (embedded if needed), API, workers and the queue
exporter — with ordered shutdown on Ctrl-C/SIGTERM (API first, then the exporter, then a draining worker, Redis
last) and no orphans."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from jobfleet.core.redis_check import warn_if_unsafe
from jobfleet.core.redis_url import redact_url
from jobfleet.core.settings import Settings
from jobfleet.ops.fleet import (
    COMPONENTS,
    api_env,
    check_redis,
    component_argv,
    component_env,
    find_or_start_redis,
)

log = structlog.get_logger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Linux: the child gets SIGTERM if the supervisor dies (even by SIGKILL), so nothing is orphaned.
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    """A supervised process."""

    name: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, env=self.env, start_new_session=True, preexec_fn=_die_with_parent)  # noqa: PLW1509
        log.info("started", process=self.name, pid=self.proc.pid)


class Supervisor:
    """Starts the fleet, restarts a crashed member (at most 5 times a minute), stops everything in order."""

    def __init__(self, settings: Settings, environ: dict[str, str]) -> None:
        self.settings = settings
        self.environ = environ
        self.children: list[Child] = []
        self.redis_proc: subprocess.Popen[bytes] | None = None
        self.stopping = False

    def resolve_redis(self) -> str:
        """REDIS_URL, else a local server on JOBFLEET_LOCAL_REDIS_PORT, else an embedded one started now."""
        found = find_or_start_redis(self.settings, Path(self.settings.data_dir))
        if found.origin == "listening":
            log.info("using the Redis already listening", url=found.url)
        elif found.origin == "embedded":
            self.redis_proc = found.proc
            log.info("started embedded redis", url=found.url, data_dir=str(found.data_dir), aof=True)
        return found.url

    def plan(self, redis_url: str) -> list[Child]:
        """The fleet's processes, not started yet: every component on ``redis_url``, the API with its auth mode."""
        env = component_env(self.environ, redis_url)
        api = component_env(self.environ, redis_url, api_env(self.settings))
        return [Child(name, component_argv(name), api if name == "api" else env) for name in COMPONENTS]

    def run(self) -> int:
        """Run until a signal; return the exit code."""
        api_env(self.settings)  # an API that would refuse to serve stops the fleet before anything starts
        url = self.resolve_redis()
        # Warn loudly, never refuse: an unreachable or uninspectable Redis is reported, the fleet still starts.
        check_redis(self.settings, url, lambda client: warn_if_unsafe(client, where="jobfleet run"))
        self.children = self.plan(url)
        for child in self.children:
            child.start()
        s = self.settings
        log.info(
            "jobfleet is running",
            api=f"http://{s.api_host}:{s.api_port}",
            redis=redact_url(url),
            workers=f"{s.worker_processes} processes x {s.worker_threads} threads",
            exporter=f"http://{s.metrics_host}:{s.exporter_port}/metrics",
            stop="Ctrl-C",
        )
        handler: Callable[[int, object], None] = lambda signum, _frame: self._request_stop(signum)  # noqa: E731
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
        code = 0
        while not self.stopping:
            for child in self.children:
                assert child.proc is not None
                if child.proc.poll() is not None and not self.stopping:
                    code = self._restart(child)
                    if code:
                        self.stopping = True
            time.sleep(0.2)
        self.shutdown()
        return code

    def _request_stop(self, signum: int) -> None:
        if not self.stopping:
            log.info("stopping", signal=signal.Signals(signum).name)
        self.stopping = True

    def _restart(self, child: Child) -> int:
        now = time.monotonic()
        child.restarts = [t for t in child.restarts if now - t < 60] + [now]
        assert child.proc is not None
        log.error("process exited", process=child.name, code=child.proc.returncode)
        if len(child.restarts) > 5:
            log.error("restarting too often, stopping the fleet", process=child.name)
            return 1
        child.start()
        return 0

    def shutdown(self) -> None:
        """Stop the API and the exporter, then let workers drain, then stop the embedded Redis."""
        grace = self.settings.shutdown_timeout_seconds + 10
        for name in ("api", "exporter", "worker"):
            for child in self.children:
                if child.name == name and child.proc is not None and child.proc.poll() is None:
                    _terminate(child.proc, grace, child.name)
        if self.redis_proc is not None:
            _terminate(self.redis_proc, 10, "redis")
        log.info("stopped")


def _terminate(proc: subprocess.Popen[bytes], grace: float, name: str) -> None:
    # SIGTERM to the group leader only: the dramatiq master forwards it to its worker processes, and a worker that
    # gets a second SIGTERM (one from us, one forwarded) takes it as "kill now" and abandons its drain.
    try:
        os.kill(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        log.error("did not stop in time, killing", process=name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
