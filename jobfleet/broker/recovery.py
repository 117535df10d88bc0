"""RecoveryMiddleware: heartbeats and dead-worker recovery on a timer, so a SIGKILLed worker's jobs come
back within a known bound instead of whenever random maintenance happens to run."""

from __future__ import annotations

import threading
from typing import Any

import dramatiq
import structlog
from dramatiq.middleware import Middleware

log = structlog.get_logger(__name__)


class RecoveryMiddleware(Middleware):
    """Every ``interval`` seconds: heartbeat this process and requeue messages held by dead workers."""

    def __init__(self, *, interval_seconds: float) -> None:
        self.interval = interval_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        """Called when a worker starts: start the timer thread."""
        if not hasattr(broker, "run_maintenance"):
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(broker,), name="jobfleet-recovery", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        """Called when a worker starts draining: keep heartbeating until its threads finish."""

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        """Called when a worker stopped: stop the timer."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self, broker: Any) -> None:
        while not self._stop.is_set():
            try:
                broker.heartbeat()
                broker.run_maintenance()
            except Exception as exc:  # Redis down: the next tick tries again; workers keep running.
                log.warning("recovery tick failed", error=f"{type(exc).__name__}: {exc}")
            self._stop.wait(self.interval)
