"""Fault-injection tools for fault tests, all against real processes: a proxy that loses, delays or withholds Redis's
replies (proxy.py), a frozen Redis or worker process, a full Redis, a Redis with many keys and a skewed wall clock
for worker processes. Fixtures: tests/faults/conftest.py; each tool is shown working in tests/faults/test_*.py."""

from __future__ import annotations

import contextlib
import glob
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.conftest import RedisServer
from tests.faults.proxy import ReplyProxy, RespParser

__all__ = [
    "FakeTime",
    "FillReport",
    "KeyFiller",
    "ReplyProxy",
    "RespParser",
    "find_libfaketime",
    "load_faketime",
    "no_retry_client",
    "pause_process",
    "pause_redis",
    "redis_full",
    "resume_redis",
]


def no_retry_client(url: str, socket_timeout: float = 5.0, **kwargs: Any) -> redis.Redis:
    """A client that never retries, so a fault surfaces once as an exception instead of a silent second attempt
    (redis-py retries 3 times by default, jobfleet's client once: a retried write may run twice)."""
    return redis.Redis.from_url(url, socket_timeout=socket_timeout, retry=Retry(NoBackoff(), 0), **kwargs)


# -- frozen processes -------------------------------------------------------------------------------------------------


def _state(pid: int) -> str | None:
    """The process state letter from /proc (R, S, T for stopped, Z...); None once the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat[stat.rindex(")") + 2]


def _group_members(pgid: int) -> list[int]:
    members = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                members.append(int(Path(stat).parent.name))
    return members


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting until {what}")
        time.sleep(0.005)


def _signal(pid: int, sig: signal.Signals, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError):  # the test may have killed it meanwhile
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


@contextlib.contextmanager
def pause_process(pid: int, *, group: bool = False) -> Iterator[list[int]]:
    """SIGSTOP ``pid`` (``group=True``: its whole process group, ``pid`` being the group id) until the block ends,
    then SIGCONT, even when the block fails. Yields the pids it stopped, once each one is really stopped."""
    if pid in (os.getpid(), os.getpgrp()):
        raise ValueError("refusing to stop the test process itself")
    pids = _group_members(pid) if group else [pid]
    _signal(pid, signal.SIGSTOP, group)
    try:
        _wait_until(lambda: all(_state(p) in {"T", "t", "Z", None} for p in pids), f"{pids} are stopped")
        yield pids
    finally:
        _signal(pid, signal.SIGCONT, group)
        _wait_until(lambda: all(_state(p) not in {"T", "t"} for p in pids), f"{pids} run again")


def _redis_pid(server: RedisServer) -> int:
    if server.proc is None or server.proc.poll() is not None:
        raise RuntimeError(f"redis-server on port {server.port} is not running")
    return server.proc.pid


@contextlib.contextmanager
def pause_redis(server: RedisServer) -> Iterator[None]:
    """Redis freezes (SIGSTOP): connections are still accepted by the kernel and requests queue up unanswered; on
    exit (or ``resume_redis``) it runs again and answers what queued."""
    with pause_process(_redis_pid(server)):
        yield


def resume_redis(server: RedisServer) -> None:
    """SIGCONT the redis-server now, inside a ``pause_redis`` block (leaving the block later is harmless)."""
    pid = _redis_pid(server)
    os.kill(pid, signal.SIGCONT)
    _wait_until(lambda: _state(pid) not in {"T", "t"}, f"redis-server {pid} runs again")


# -- full Redis -------------------------------------------------------------------------------------------------------


def _config(client: redis.Redis, name: str) -> str:
    value = next(iter(client.config_get(name).values()))
    return value.decode() if isinstance(value, bytes) else str(value)


@contextlib.contextmanager
def redis_full(client: redis.Redis) -> Iterator[int]:
    """Redis is out of memory: ``maxmemory`` well below ``used_memory`` with ``noeviction``, so every command that may
    grow memory (SET, LPUSH, a script that writes...) fails with ``OOM`` (redis.exceptions.OutOfMemoryError) while
    reads and DEL work, and stays full however the data set shrinks meanwhile. Yields the limit; restores both
    settings on exit."""
    old = {name: _config(client, name) for name in ("maxmemory", "maxmemory-policy")}
    probe = "faults:redis-full-probe"
    try:
        client.config_set("maxmemory-policy", "noeviction")
        for _ in range(5):  # memory moves a little between INFO and the probe write: retry until the write fails
            limit = max(1, int(client.info("memory")["used_memory"]) // 2)
            client.config_set("maxmemory", limit)
            try:
                client.set(probe, b"x" * 64)
            except redis.exceptions.OutOfMemoryError:
                break
            client.delete(probe)
        else:
            raise RuntimeError("writes still succeed with maxmemory below used_memory")
        yield limit
    finally:
        for name, value in old.items():
            client.config_set(name, value)


# -- many keys --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FillReport:
    keys: int
    seconds: float
    method: Literal["debug", "pipeline"]


@dataclass
class KeyFiller:
    """Writes ``n`` junk string keys ``<prefix>:0`` .. ``<prefix>:<n-1>`` quickly: with DEBUG POPULATE when the server
    allows it (``method="auto"``), else pipelined MSETs of ``batch`` keys, ``depth`` MSETs per round trip. Existing
    keys of that name are kept (DEBUG POPULATE) or overwritten (MSET): use another prefix to add more."""

    client: redis.Redis
    prefix: str = "junk"
    value_size: int = 16
    batch: int = 1_000
    depth: int = 50

    def fill(self, n: int, method: Literal["auto", "debug", "pipeline"] = "auto") -> FillReport:
        started = time.perf_counter()
        if method != "pipeline":
            try:
                self.client.execute_command("DEBUG", "POPULATE", n, self.prefix, self.value_size)
                return FillReport(n, time.perf_counter() - started, "debug")
            except redis.ResponseError:  # DEBUG is off by default since Redis 7 (enable-debug-command)
                if method == "debug":
                    raise
        value = b"x" * self.value_size
        pipe = self.client.pipeline(transaction=False)
        for start in range(0, n, self.batch):
            pipe.mset({f"{self.prefix}:{i}": value for i in range(start, min(n, start + self.batch))})
            if len(pipe) >= self.depth:
                pipe.execute()
        pipe.execute()
        return FillReport(n, time.perf_counter() - started, "pipeline")


# -- clock skew (libfaketime) -----------------------------------------------------------------------------------------

SHIM_DIR = Path(__file__).parent / "faketime_shim"
_LIBFAKETIME_DIRS = ("/usr/lib/*/faketime", "/usr/lib*/faketime", "/usr/local/lib*/faketime")
_PROBE = "import threading, time; time.sleep(0.01); threading.Event().wait(0.01); print(time.time())"


def find_libfaketime() -> str | None:
    """Path of libfaketime (the multi-threaded build first: workers are threaded), wherever the distro put it."""
    for name in ("libfaketimeMT.so.1", "libfaketime.so.1"):
        for folder in _LIBFAKETIME_DIRS:  # Debian multiarch; Fedora /usr/lib64; `make install` from source
            if found := sorted(glob.glob(f"{folder}/{name}")):
                return found[0]
    return None


@dataclass(frozen=True)
class FakeTime:
    """Runs children with a skewed wall clock: ``env(seconds)`` is the environment to add for that.

    Only the wall clock is skewed (time.time, datetime.now, CLOCK_REALTIME); the monotonic clock is left alone
    (FAKETIME_DONT_FAKE_MONOTONIC=1) because threading waits with a timeout hang under a faked one (libfaketime#390).
    ``sleep_shim`` is set when the library needs it: libfaketime 0.9.10 (Debian's) then breaks time.sleep in Python
    >= 3.11 (EINVAL, libfaketime#426, fixed in 0.9.11), so Python children get faketime_shim/sitecustomize.py, whose
    time.sleep waits in select() instead. Children of the child inherit the skew (the environment).
    """

    library: str
    sleep_shim: bool

    def env(self, seconds: float) -> dict[str, str]:
        """Variables to set in a child (merged with this process's LD_PRELOAD and PYTHONPATH): its wall clock runs
        ``seconds`` ahead (negative: behind). Use as ``{**os.environ, **env}`` or WorkerProcess(extra_env=env)."""
        preload = " ".join(filter(None, [self.library, os.environ.get("LD_PRELOAD")]))
        offset = f"{seconds:+.6f}".rstrip("0").rstrip(".")  # "+20", "-0.25": no exponent, which FAKETIME cannot read
        env = {"LD_PRELOAD": preload, "FAKETIME": f"{offset}s", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
        if self.sleep_shim:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SHIM_DIR), os.environ.get("PYTHONPATH")]))
        return env


def _skew_problem(faketime: FakeTime, skew: float = 3600) -> str | None:
    """What goes wrong in a Python child skewed by ``faketime`` that sleeps and waits; None when nothing does."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE],
            env={**os.environ, **faketime.env(skew)},
            capture_output=True,
            timeout=10,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "the child hung (a wait with a timeout never returned)"
    if done.returncode != 0:
        last_line = (done.stderr.decode(errors="replace").strip().splitlines() or ["(no output)"])[-1]
        return f"the child failed: {last_line}"
    try:
        off = float(done.stdout) - time.time()
    except ValueError:
        return f"the child printed {done.stdout[:80]!r}, not a time"
    return None if abs(off - skew) < 60 else f"the child's time.time() is {off:+.0f}s off, not {skew:+.0f}s"


def load_faketime(library: str) -> FakeTime:
    """A FakeTime for ``library`` once a skewed Python child sleeps and waits normally with it (with the sleep shim
    only if that needs it); RuntimeError saying what went wrong when neither works."""
    problems = []
    for faketime in (FakeTime(library, sleep_shim=False), FakeTime(library, sleep_shim=True)):
        problem = _skew_problem(faketime)
        if problem is None:
            return faketime
        problems.append(f"sleep_shim={faketime.sleep_shim}: {problem}")
    raise RuntimeError(f"{library} is unusable for clock skew: {'; '.join(problems)}")
