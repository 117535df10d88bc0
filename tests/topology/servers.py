"""Processes the topology fixtures own: redis-server and sentinel, each in its own process group, data in a tmp
dir; and the small helpers that ask one server something directly."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from jobfleet.ops.embedded_redis import free_port
from tests.conftest import require_binary, stop_process_group


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports nothing listens on right now."""
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def wait_for(what: str, check: Callable[[], bool], timeout: float = 20.0) -> float:
    """Poll ``check`` until true and return the seconds it took; fail naming ``what`` after ``timeout``."""
    start = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - start
        except (redis.RedisError, OSError):
            pass  # a node restarting or not up yet: ask again
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def direct(port: int) -> redis.Redis:
    """A plain client to one server on 127.0.0.1 (no topology awareness), for checks and admin commands."""
    return redis.Redis(port=port, socket_timeout=2, socket_connect_timeout=2, decode_responses=True)


def ask(port: int, *command: Any) -> Any:
    """Run one command on the server at ``port`` and close the connection."""
    with direct(port) as client:
        return client.execute_command(*command)


@dataclass
class Process:
    """One redis-server or sentinel process the fixture owns; ``start()`` again after a kill."""

    port: int
    argv: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process (its own process group) and wait until it answers PING."""
        with self.log.open("ab") as log:
            proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.proc = proc

        def answers() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"{self.argv[0]} on port {self.port} exited ({proc.returncode}); see {self.log}")
            return bool(ask(self.port, "PING"))

        wait_for(f"port {self.port} to answer PING (log: {self.log})", answers)

    def kill(self) -> None:
        """SIGKILL the process and any child it forked (a replication snapshot), as a crash would."""
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    @property
    def alive(self) -> bool:
        """Whether the process is running."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """Stop the process group (SIGTERM, then SIGKILL): the fixtures' finalizers call this."""
        if self.proc is not None:
            stop_process_group(self.proc, timeout=5)


def redis_server(port: int, data_dir: Path, *extra: str) -> Process:
    """A redis-server on 127.0.0.1:``port`` keeping nothing on disk but what ``extra`` asks for."""
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [require_binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir)]
    # A replica (re)joining gets its full sync at once, not after the default 5 s wait for more replicas.
    argv += ["--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0", *extra]
    return Process(port, argv, data_dir / "redis.log")
