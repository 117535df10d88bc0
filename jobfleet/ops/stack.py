"""``jobfleet stack up|down|status`` (``make stack``, ``make stack-down``, ``make stack-status``): the native full
stack in the background — Redis (embedded when needed), workers, queue exporter, API and, when their binaries are
installed, Prometheus with our rules and Alertmanager with our routing — all on loopback, logs in
``JOBFLEET_DATA_DIR/logs/``, pid files in ``JOBFLEET_DATA_DIR/run/`` so ``down`` stops exactly what ``up`` started.

Every pid is recorded with its kernel start time; ``down`` signals a pid only while both still match, so a
recycled pid is never killed. Every process started also carries ``JOBFLEET_STACK_ID`` in its environment."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from jobfleet.core.redis_url import redact_url
from jobfleet.core.settings import Settings
from jobfleet.ops.embedded_redis import port_open
from jobfleet.ops.fleet import (
    api_env,
    check_redis,
    component_argv,
    component_env,
    find_or_start_redis,
    reachable_host,
)
from jobfleet.ops.stack_components import Component, start_time
from jobfleet.ops.stack_monitoring import INSTALL_HINT, alertmanager_binary, monitoring_processes, prometheus_binary

STACK_ENV = "JOBFLEET_STACK_ID"
READY_TIMEOUT_SECONDS = 60.0
# Stopped in this order: nothing scrapes or serves while the workers drain; Redis goes last.
STOP_ORDER = ("prometheus", "alertmanager", "api", "exporter", "worker", "redis")
EXIT_OK, EXIT_FAILED, EXIT_NOT_FOUND = 0, 1, 3


class Paths:
    """Where the stack keeps its state under ``JOBFLEET_DATA_DIR``."""

    def __init__(self, settings: Settings) -> None:
        self.data = Path(settings.data_dir).resolve()
        self.logs = self.data / "logs"
        self.run = self.data / "run"
        self.state = self.run / "stack.json"
        self.config = self.data / "stack"


class Stack:
    """Starts, inspects and stops the background stack for one ``JOBFLEET_DATA_DIR``."""

    def __init__(self, settings: Settings, environ: dict[str, str]) -> None:
        self.settings = settings
        self.environ = environ
        self.paths = Paths(settings)

    def load(self) -> dict[str, Any] | None:
        """The recorded stack, or None when none was started here."""
        try:
            state: dict[str, Any] = json.loads(self.paths.state.read_text())
        except (OSError, ValueError):
            return None
        return state

    def components(self, state: dict[str, Any]) -> list[Component]:
        """The recorded components, in start order."""
        return [Component(**c) for c in state["components"]]

    # --- up ---------------------------------------------------------------------------------------------------------

    def up(self) -> int:
        """Start everything, wait until each component answers, record pids; stop it all again on failure."""
        state = self.load()
        if state and any(c.alive() for c in self.components(state)):
            print("jobfleet: a stack is already running here (make stack-status; make stack-down)", file=sys.stderr)
            return EXIT_FAILED
        s = self.settings
        auth = api_env(s)  # refuse an API that would serve without auth elsewhere than loopback, before starting
        if auth:
            print(
                "WARNING: API authentication is disabled (loopback API, no JOBFLEET_API_KEYS_FILE): local "
                "development only",
                file=sys.stderr,
            )
        prometheus = prometheus_binary()
        alertmanager = alertmanager_binary()
        ports = {
            "JOBFLEET_API_PORT": s.api_port,
            "JOBFLEET_WORKER_METRICS_PORT": s.worker_metrics_port,
            "JOBFLEET_EXPORTER_PORT": s.exporter_port,
        }
        if prometheus:
            ports["JOBFLEET_PROMETHEUS_PORT"] = s.prometheus_port
        if alertmanager:
            ports["JOBFLEET_ALERTMANAGER_PORT"] = s.alertmanager_port
        busy = [f"{env}={port}" for env, port in ports.items() if port_open("127.0.0.1", port)]
        if busy:
            print(f"jobfleet: ports in use: {', '.join(busy)} (set those variables to free ports)", file=sys.stderr)
            return EXIT_FAILED
        for folder in (self.paths.logs, self.paths.run, self.paths.config):
            folder.mkdir(parents=True, exist_ok=True)
        stack_id = uuid.uuid4().hex
        # The id must be in this process's environment too: the embedded Redis inherits it from here.
        os.environ[STACK_ENV] = stack_id
        state = {"id": stack_id, "started_at": time.time(), "redis_url": "", "components": []}
        started: list[Component] = []
        try:
            redis_url = self._redis(started)
            state["redis_url"] = redact_url(redis_url)
            env = component_env(
                self.environ,
                redis_url,
                {STACK_ENV: stack_id, "JOBFLEET_DATA_DIR": str(self.paths.data), "PYTHONUNBUFFERED": "1"},
            )
            # `make load` posts webhooks to a receiver on loopback, which the webhook SSRF guard refuses unless
            # loopback is allowed explicitly; this stack only ever runs on this machine.
            env.setdefault("JOBFLEET_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")
            self._check_redis(redis_url)
            self._start_fleet(env, started)
            monitoring = monitoring_processes(
                s, self.paths.data, self.paths.config, prometheus=prometheus, alertmanager=alertmanager
            )
            for m in monitoring:
                self._spawn(started, m.name, m.argv, env, url=m.url, ready=f"{m.url}/-/ready")
            state["components"] = [c.__dict__ for c in started]
            self._write(state)
            self._wait_ready(started)
        except (RuntimeError, OSError) as exc:
            print(f"jobfleet: the stack did not start: {exc}", file=sys.stderr)
            self._stop(started)
            self._clear()
            return EXIT_FAILED
        print(self.render(state))
        missing = [name for name, found in (("prometheus", prometheus), ("alertmanager", alertmanager)) if not found]
        if missing:
            print(f"not started (not installed): {', '.join(missing)} — {INSTALL_HINT}")
        print(f"logs: {self.paths.logs}/   stop: make stack-down")
        return EXIT_OK

    def _redis(self, started: list[Component]) -> str:
        found = find_or_start_redis(self.settings, self.paths.data)
        if found.proc is not None and found.data_dir is not None:  # embedded: ours to record and to stop
            self._record(started, Component("redis", found.proc.pid, found.url, str(found.data_dir / "redis.log")))
        return found.url

    def _check_redis(self, url: str) -> None:
        # Refuse to start on a Redis that does not answer (RedisUnreachable is a RuntimeError); only warn on risk.
        result = check_redis(self.settings, url)
        for problem in result.problems:
            print(f"WARNING: Redis may lose queue data: {problem}", file=sys.stderr)

    def _spawn(
        self, started: list[Component], name: str, argv: list[str], env: dict[str, str], *, url: str, ready: str
    ) -> None:
        log = self.paths.logs / f"{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._record(started, Component(name, proc.pid, url, str(log), ready))

    def _record(self, started: list[Component], component: Component) -> None:
        component.start_time = start_time(component.pid)
        started.append(component)
        (self.paths.run / f"{component.name}.pid").write_text(f"{component.pid}\n")

    def _start_fleet(self, env: dict[str, str], started: list[Component]) -> None:
        s = self.settings
        api = f"http://{reachable_host(s.api_host)}:{s.api_port}"
        metrics = reachable_host(s.metrics_host)
        worker = f"{metrics}:{s.worker_metrics_port}"
        self._spawn(
            started, "worker", component_argv("worker"), env, url=f"http://{worker}/metrics", ready=f"tcp://{worker}"
        )
        exporter = f"http://{metrics}:{s.exporter_port}/metrics"
        self._spawn(started, "exporter", component_argv("exporter"), env, url=exporter, ready=exporter)
        api_environ = {**env, **api_env(s)}
        self._spawn(started, "api", component_argv("api"), api_environ, url=api, ready=f"{api}/readyz")

    def _wait_ready(self, started: list[Component]) -> None:
        pending = {c.name: c for c in started if c.ready}
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while pending:
            for name, component in list(pending.items()):
                if not component.alive():
                    raise RuntimeError(f"{name} exited; last lines of {component.log}:\n{component.log_tail()}")
                if component.answers():
                    del pending[name]
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {READY_TIMEOUT_SECONDS:.0f}s: {', '.join(pending)} (see logs)")
            time.sleep(0.2)

    def _write(self, state: dict[str, Any]) -> None:
        tmp = self.paths.state.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.paths.state)

    def _clear(self) -> None:
        for path in self.paths.run.glob("*.pid"):
            path.unlink(missing_ok=True)
        self.paths.state.unlink(missing_ok=True)

    # --- down -------------------------------------------------------------------------------------------------------

    def down(self) -> int:
        """Stop every recorded component in order (workers drain first); exit 0 also when nothing ran."""
        state = self.load()
        if state is None:
            print("no stack is running here")
            return EXIT_OK
        self._stop(self.components(state))
        self._clear()
        print("stack stopped")
        return EXIT_OK

    def _stop(self, components: list[Component]) -> None:
        by_name = {c.name: c for c in components}
        for name in STOP_ORDER:
            component = by_name.get(name)
            if component is None or not component.alive():
                continue
            grace = self.settings.shutdown_timeout_seconds + 10 if name == "worker" else 15
            # The leader only: the dramatiq master forwards SIGTERM to its workers, and a second SIGTERM to a
            # worker means "kill now" (it would abandon its drain).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(component.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while component.alive() and time.monotonic() < deadline:
                time.sleep(0.1)
            if component.alive():
                print(f"{name} did not stop within {grace}s: killing it", file=sys.stderr)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(component.pid, signal.SIGKILL)
            print(f"stopped {name}")

    # --- status -----------------------------------------------------------------------------------------------------

    def status(self, *, as_json: bool) -> int:
        """Show what runs and where; exit 0 all running, 1 something stopped, 3 no stack here."""
        state = self.load()
        if state is None:
            print(json.dumps({"running": False}) if as_json else "no stack is running here (make stack)")
            return EXIT_NOT_FOUND
        components = self.components(state)
        if as_json:
            rows = [{**c.__dict__, "alive": c.alive()} for c in components]
            print(json.dumps({"running": True, "redis_url": state["redis_url"], "components": rows}, indent=2))
        else:
            print(self.render(state))
        return EXIT_OK if all(c.alive() for c in components) else EXIT_FAILED

    def render(self, state: dict[str, Any]) -> str:
        """The table of components, pids, states and URLs."""
        lines = [f"{'COMPONENT':13} {'PID':>8} {'STATE':8} URL"]
        for c in self.components(state):
            lines.append(f"{c.name:13} {c.pid:>8} {'running' if c.alive() else 'STOPPED':8} {c.url}")
        if not any(c.name == "redis" for c in self.components(state)):
            lines.append(f"{'redis':13} {'-':>8} {'external':8} {state['redis_url']}")
        return "\n".join(lines)


def cmd_stack(settings: Settings, args: argparse.Namespace) -> int:
    """Dispatch ``jobfleet stack up|down|status``."""
    stack = Stack(settings, dict(os.environ))
    if args.stack_command == "up":
        return stack.up()
    if args.stack_command == "down":
        return stack.down()
    return stack.status(as_json=args.json)


def register(sub: Any) -> None:
    """Add ``stack up|down|status`` to the ``jobfleet`` parser."""
    stack = sub.add_parser("stack", help="the native full stack in the background (make stack)")
    commands = stack.add_subparsers(dest="stack_command", required=True)
    commands.add_parser("up", help="start Redis, workers, exporter, API, Prometheus, Alertmanager").set_defaults(
        func=cmd_stack
    )
    commands.add_parser("down", help="stop everything `up` started").set_defaults(func=cmd_stack)
    status = commands.add_parser("status", help="what runs, with URLs")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=cmd_stack)
