"""The ``jobfleet`` command: run the fleet's processes and look at jobs from a terminal.

Exit codes: 0 success, 1 operation failed (e.g. Redis unreachable), 2 bad usage or configuration,
3 not found."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from jobfleet.app.auth_mode import check_mode
from jobfleet.app.schemas import JobStatus
from jobfleet.core.errors import ConfigError, InvalidTransition, JobNotFound, StoreUnavailable
from jobfleet.core.logging import configure_logging
from jobfleet.core.settings import Settings
from jobfleet.core.telemetry import MULTIPROC_ENV, fresh_multiprocess_dir
from jobfleet.ops import cmd_dlq, cmd_import, cmd_keys, cmd_load, cmd_quotas, cmd_status, stack
from jobfleet.ops.exporter import serve
from jobfleet.ops.supervisor import Supervisor
from jobfleet.store.factory import open_store

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND = 0, 1, 2, 3


def _exec(argv: list[str]) -> int:
    sys.stdout.flush()
    os.execvp(argv[0], argv)  # noqa: S606 - replace this process so signals reach the server directly
    return EXIT_FAILED  # pragma: no cover


def _multiprocess_metrics(settings: Settings, component: str) -> None:
    # prometheus_client picks multiprocess mode when it is imported, so the variable must be in the environment
    # of every process of the component before it starts; a fresh dir per start (stale files would add up).

    folder = fresh_multiprocess_dir(Path(settings.data_dir).resolve() / "prometheus" / component)
    os.environ[MULTIPROC_ENV] = str(folder)


def api_server_argv(
    settings: Settings, *, target: str = "jobfleet.app.wsgi:create", port: int | None = None
) -> list[str]:
    """The production API server command (granian, WSGI, ``api_workers`` processes of ``api_threads`` threads)
    serving the app factory ``target``; ``make bench`` runs its baseline app under exactly this command."""
    return [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "wsgi",
        "--host",
        settings.api_host,
        "--port",
        str(settings.api_port if port is None else port),
        "--workers",
        str(settings.api_workers),
        "--blocking-threads",
        str(settings.api_threads),
        "--workers-kill-timeout",
        str(settings.shutdown_timeout_seconds),
        "--no-ws",
        "--log-level",
        "warning",
        "--factory",
        target,
    ]


def cmd_api(settings: Settings, _args: argparse.Namespace) -> int:
    """Serve the API with granian (WSGI interface, blocking threads per worker process)."""

    check_mode(settings)  # refuse an unauthenticated API on a public address before starting anything
    _multiprocess_metrics(settings, "api")
    return _exec(api_server_argv(settings))


def cmd_worker(settings: Settings, _args: argparse.Namespace) -> int:
    """Run the worker fleet with the Dramatiq CLI (broker and actors from workers.boot:setup)."""
    _multiprocess_metrics(settings, "worker")
    return _exec(
        [
            sys.executable,
            "-m",
            "dramatiq",
            "jobfleet.workers.boot:setup",
            "--processes",
            str(settings.worker_processes),
            "--threads",
            str(settings.worker_threads),
            "--worker-shutdown-timeout",
            str(settings.shutdown_timeout_seconds * 1000),
        ]
    )


def cmd_exporter(settings: Settings, _args: argparse.Namespace) -> int:
    """Serve the queue exporter's /metrics (reads Redis at scrape time)."""

    configure_logging(settings.log_level, component="exporter")
    serve(settings)
    return EXIT_OK


def cmd_run(settings: Settings, _args: argparse.Namespace) -> int:
    """Run Redis (embedded when needed), the API, the workers and the queue exporter until Ctrl-C."""

    configure_logging(settings.log_level, component="supervisor")
    return Supervisor(settings, dict(os.environ)).run()


def cmd_jobs_show(settings: Settings, args: argparse.Namespace) -> int:
    """Print one job's status as JSON."""

    record = open_store(settings).get(args.job_id)
    print(json.dumps(JobStatus.from_record(record).model_dump(mode="json"), indent=2))
    return EXIT_OK


def cmd_config(_settings: Settings, args: argparse.Namespace) -> int:
    """Print every setting with its default (``--markdown``: the README's configuration table)."""
    if args.markdown:
        print("| variable | default | meaning |\n|---|---|---|")
    for env, default, doc in Settings.documentation():
        print(f"| `{env}` | `{default}` | {doc} |" if args.markdown else f"{env:40} {default:24} {doc}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(prog="jobfleet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("api", help="serve the API (granian)").set_defaults(func=cmd_api)
    sub.add_parser("worker", help="run the worker fleet (dramatiq)").set_defaults(func=cmd_worker)
    sub.add_parser("exporter", help="serve the queue exporter's /metrics").set_defaults(func=cmd_exporter)
    sub.add_parser("run", help="run Redis, API, workers and the queue exporter together").set_defaults(func=cmd_run)
    config = sub.add_parser("config", help="list settings and defaults")
    config.add_argument("--markdown", action="store_true", help="as the README's table (make readme-settings)")
    config.set_defaults(func=cmd_config)
    cmd_dlq.register(sub)
    cmd_keys.register(sub)
    cmd_status.register(sub)
    cmd_quotas.register(sub)
    cmd_import.register(sub)
    stack.register(sub)
    cmd_load.register(sub)
    jobs = sub.add_parser("jobs", help="inspect jobs").add_subparsers(dest="jobs_command", required=True)
    show = jobs.add_parser("show", help="show one job")
    show.add_argument("job_id")
    show.set_defaults(func=cmd_jobs_show)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jobfleet`` console script."""
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env(os.environ)
        code: int = args.func(settings, args)
        return code
    except ConfigError as exc:
        print(f"jobfleet: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except InvalidTransition as exc:
        print(f"jobfleet: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except JobNotFound as exc:
        print(f"jobfleet: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except StoreUnavailable as exc:
        print(f"jobfleet: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
