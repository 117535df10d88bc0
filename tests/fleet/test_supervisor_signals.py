"""The supervisor signals a child fleet once: its master forwards SIGTERM to its workers, and a dramatiq worker
that receives a second SIGTERM abandons its drain ("Killing worker process")."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from jobfleet.ops.supervisor import _terminate

# A stand-in for the dramatiq master: forwards SIGTERM to a worker in its own process group; the worker records
# every SIGTERM it receives and exits a moment after the first.
MASTER = textwrap.dedent(
    """
    import signal, subprocess, sys
    worker = subprocess.Popen([sys.executable, "-c", sys.argv[2], sys.argv[1]])
    signal.signal(signal.SIGTERM, lambda *_: worker.send_signal(signal.SIGTERM))
    sys.exit(worker.wait())
    """
)
WORKER = textwrap.dedent(
    """
    import signal, sys, time
    path = sys.argv[1]
    def count(*_):
        with open(path, "a") as f:
            f.write("TERM\\n")
    signal.signal(signal.SIGTERM, count)
    open(path + ".ready", "w").close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        time.sleep(0.05)
        try:
            if open(path).read():
                time.sleep(0.5)  # a drain: a second SIGTERM arriving now would be recorded too
                break
        except FileNotFoundError:
            pass
    """
)


def test_terminate_sends_one_sigterm_that_the_master_forwards(tmp_path: Path) -> None:
    record = tmp_path / "signals"
    master = subprocess.Popen([sys.executable, "-c", MASTER, str(record), WORKER], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        # Wait until the worker's handler is installed.
        while not Path(f"{record}.ready").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        _terminate(master, 10, "fake-fleet")
        assert master.returncode == 0
        assert record.read_text().splitlines() == ["TERM"]
    finally:
        if master.poll() is None:
            master.kill()
            master.wait()
