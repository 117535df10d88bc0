"""Real worker processes for fault tests: the dramatiq CLI in its own process group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from jobfleet.ops.embedded_redis import free_port

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """``dramatiq <boot>`` with test-sized settings; ``kill()`` is SIGKILL to the whole group."""

    def __init__(
        self,
        redis_url: str,
        tmp: Path,
        *,
        processes: int = 1,
        threads: int = 4,
        boot: str = "jobfleet.workers.boot:setup",
        extra_env: dict[str, str] | None = None,
        shutdown_timeout_ms: int = 5000,
    ) -> None:
        self.log = tmp / f"worker-{time.monotonic_ns()}.log"
        env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "JOBFLEET_HEARTBEAT_TIMEOUT_SECONDS": "2",
            "JOBFLEET_MIN_BACKOFF_SECONDS": "0.05",
            "JOBFLEET_MAX_BACKOFF_SECONDS": "0.5",
            "JOBFLEET_MAX_RETRIES": "3",
            "JOBFLEET_REPORT_DIR": str(tmp / "reports"),
            "JOBFLEET_DATA_DIR": str(tmp / f"state-{time.monotonic_ns()}"),
            "JOBFLEET_WORKER_METRICS_PORT": str(free_port()),
            "JOBFLEET_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dramatiq",
                    boot,
                    "--processes",
                    str(processes),
                    "--threads",
                    str(threads),
                    "--worker-shutdown-timeout",
                    str(shutdown_timeout_ms),
                ],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def terminate(self) -> None:
        """SIGTERM the dramatiq master only (a graceful drain; a second SIGTERM would make it abandon the drain)."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGTERM)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL every process of this worker fleet (master and children), like a lost machine."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM (graceful drain), then SIGKILL if it does not exit in time."""
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        except ProcessLookupError:
            pass

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]
