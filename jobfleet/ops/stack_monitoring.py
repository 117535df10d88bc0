"""Prometheus and Alertmanager for ``jobfleet stack``: finding their binaries, writing Prometheus's config for this
stack (its ports, scrape interval and our rules) and the command lines that run both on loopback."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from jobfleet.core.settings import Settings
from jobfleet.ops.fleet import reachable_host

# The checkout: prometheus/ and deploy/ are not package data (jobfleet/ops/stack_monitoring.py is two levels below).
REPO = Path(__file__).resolve().parents[2]
INSTALL_HINT = "apt-get install prometheus prometheus-alertmanager"


@dataclass(frozen=True)
class MonitoringProcess:
    """Prometheus or Alertmanager as the stack starts it; ``url`` answers ``/-/ready`` once it is up."""

    name: str
    argv: list[str]
    url: str


def _binary(*names: str) -> str | None:
    for name in names:
        # /usr/bin too: the Debian packages install there, and PATH may be a venv's or a test's.
        found = shutil.which(name) or shutil.which(name, path="/usr/bin")
        if found:
            return found
    return None


def prometheus_binary() -> str | None:
    """The installed prometheus, or None."""
    return _binary("prometheus")


def alertmanager_binary() -> str | None:
    """The installed Alertmanager (Debian's name first), or None."""
    return _binary("prometheus-alertmanager", "alertmanager")


def prometheus_config(settings: Settings, *, alertmanager: bool) -> dict[str, Any]:
    """prometheus/prometheus.yml with this stack's ports, interval and absolute rule paths."""
    config: dict[str, Any] = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
    interval = settings.stack_scrape_interval_seconds
    config["global"].update(
        scrape_interval=f"{interval}s", evaluation_interval=f"{interval}s", scrape_timeout=f"{min(interval, 10)}s"
    )
    config["rule_files"] = [str(path) for path in sorted((REPO / "prometheus" / "rules").glob("*.yml"))]
    if alertmanager:
        am = config["alerting"]["alertmanagers"][0]["static_configs"][0]
        am["targets"] = [f"127.0.0.1:{settings.alertmanager_port}"]
    else:
        config.pop("alerting", None)
    targets = {
        "jobfleet-api": f"{reachable_host(settings.api_host)}:{settings.api_port}",
        "jobfleet-worker": f"{reachable_host(settings.metrics_host)}:{settings.worker_metrics_port}",
        "jobfleet-exporter": f"{reachable_host(settings.metrics_host)}:{settings.exporter_port}",
    }
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    return config


def monitoring_processes(
    settings: Settings, data_dir: Path, config_dir: Path, *, prometheus: str | None, alertmanager: str | None
) -> list[MonitoringProcess]:
    """What to start for the installed binaries, Alertmanager first; writes ``config_dir/prometheus.yml``."""
    processes = []
    if alertmanager:
        processes.append(
            MonitoringProcess(
                "alertmanager",
                [
                    alertmanager,
                    f"--config.file={REPO / 'deploy' / 'alertmanager' / 'alertmanager.yml'}",
                    f"--storage.path={data_dir / 'alertmanager'}",
                    f"--web.listen-address=127.0.0.1:{settings.alertmanager_port}",
                    "--cluster.listen-address=",  # a single instance: no gossip port
                ],
                f"http://127.0.0.1:{settings.alertmanager_port}",
            )
        )
    if prometheus:
        config = config_dir / "prometheus.yml"
        config.write_text(yaml.safe_dump(prometheus_config(settings, alertmanager=bool(alertmanager)), sort_keys=False))
        processes.append(
            MonitoringProcess(
                "prometheus",
                [
                    prometheus,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={data_dir / 'prometheus-tsdb'}",
                    f"--web.listen-address=127.0.0.1:{settings.prometheus_port}",
                    "--storage.tsdb.retention.time=7d",
                ],
                f"http://127.0.0.1:{settings.prometheus_port}",
            )
        )
    return processes
