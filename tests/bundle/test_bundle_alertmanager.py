"""Alertmanager routes every alert by severity and holds queue alerts back while the exporter is blind."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

CONFIG = "deploy/alertmanager/alertmanager.yml"
RECEIVER_BY_SEVERITY = {"critical": "pager", "warning": "chat", "none": "deadmans-switch"}

Run = Callable[..., subprocess.CompletedProcess[str]]


def routes_test(run: Run, amtool: str, receiver: str, labels: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Ask amtool which receiver the labels reach; exit status 0 only when it is `receiver`."""
    pairs = [f"{key}={value}" for key, value in sorted(labels.items())]
    return run(amtool, "config", "routes", "test", f"--config.file={CONFIG}", f"--verify.receivers={receiver}", *pairs)


@pytest.fixture(scope="module")
def config(repo: Path) -> dict[str, Any]:
    return yaml.safe_load((repo / CONFIG).read_text())


def test_amtool_accepts_the_config(require_binary: Callable[[str], str], run: Run) -> None:
    result = run(require_binary("amtool"), "check-config", CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ({"alertname": "JobfleetNoLiveWorkers", "severity": "critical"}, "pager"),
        ({"alertname": "JobfleetQueueLagHigh", "severity": "warning", "queue": "webhooks"}, "chat"),
        ({"alertname": "Watchdog", "severity": "none"}, "deadmans-switch"),
        ({"alertname": "SomethingUnlabelled"}, "chat"),
    ],
)
def test_routes_send_each_severity_to_its_receiver(
    labels: dict[str, str], receiver: str, require_binary: Callable[[str], str], run: Run
) -> None:
    result = routes_test(run, require_binary("amtool"), receiver, labels)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_rule_reaches_the_receiver_of_its_severity(
    alert_rules: list[dict[str, Any]], require_binary: Callable[[str], str], run: Run
) -> None:
    amtool = require_binary("amtool")
    for rule in alert_rules:
        labels = {"alertname": rule["alert"], **rule["labels"]}
        result = routes_test(run, amtool, RECEIVER_BY_SEVERITY[rule["labels"]["severity"]], labels)
        assert result.returncode == 0, f"{rule['alert']}: {result.stdout}{result.stderr}"


def test_alerts_are_grouped_by_alertname_and_queue(config: dict[str, Any]) -> None:
    assert config["route"]["group_by"] == ["alertname", "queue"]


def test_receivers_are_local_webhook_placeholders(config: dict[str, Any]) -> None:
    for receiver in config["receivers"]:
        for webhook in receiver["webhook_configs"]:
            assert webhook["url"].startswith("http://127.0.0.1:"), receiver["name"]


@pytest.mark.parametrize(
    "source",
    [['alertname = "JobfleetExporterRedisDown"'], ['alertname = "JobfleetTargetDown"', 'job = "jobfleet-exporter"']],
)
def test_queue_alerts_are_inhibited_while_the_exporter_or_its_redis_is_down(
    source: list[str], config: dict[str, Any]
) -> None:
    rules = [rule for rule in config["inhibit_rules"] if rule["source_matchers"] == source]
    assert any(rule["target_matchers"] == ['queue =~ ".+"'] and not rule.get("equal") for rule in rules)
