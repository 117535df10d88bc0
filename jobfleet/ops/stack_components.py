"""One process of ``jobfleet stack`` as recorded in ``run/stack.json``: its pid with the kernel start time (so a
recycled pid is never taken for it), its readiness check and the tail of its log."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from jobfleet.ops.embedded_redis import port_open


@dataclass
class Component:
    """One process of the stack, as recorded in ``run/stack.json``."""

    name: str
    pid: int
    url: str
    log: str
    ready: str = ""  # an HTTP URL answering 200, or tcp://host:port, once the component is up
    start_time: int = 0  # /proc/<pid>/stat field 22: tells this process from a later one with the same pid

    def alive(self) -> bool:
        """True while the pid runs and is still the process we started (not a zombie, not a recycled pid)."""
        stat = _stat(self.pid)
        return stat is not None and stat[0] != "Z" and int(stat[19]) == self.start_time

    def answers(self) -> bool:
        """True once its ``ready`` check passes: the URL answers 200, or the tcp:// address accepts connections."""
        if self.ready.startswith("tcp://"):
            host, _, port = self.ready[len("tcp://") :].rpartition(":")
            return port_open(host, int(port))
        return _http_ok(self.ready)

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of its log, or ``(no log)``."""
        try:
            return "\n".join(Path(self.log).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _stat(pid: int) -> list[str] | None:
    # Fields after the command name (which may contain spaces): state is [0], starttime (field 22) is [19].
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_time(pid: int) -> int:
    """The kernel start time of ``pid`` (0 when it is already gone)."""
    stat = _stat(pid)
    return int(stat[19]) if stat else 0


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own loopback URLs
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False
