"""Fixtures for the monitoring bundle tests: repository paths, YAML loading, external binaries."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SUBPROCESS_TIMEOUT = 60

# Where each binary comes from, for the skip/fail message.
PACKAGES = {
    "promtool": "prometheus",
    "prometheus": "prometheus",
    "amtool": "prometheus-alertmanager",
    "prometheus-alertmanager": "prometheus-alertmanager",
}


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository root (the tests read the bundle files in place)."""
    return REPO


def load_yaml(path: Path) -> Any:
    """Parse one YAML file."""
    with path.open() as handle:
        return yaml.safe_load(handle)


@pytest.fixture(scope="session")
def require_binary() -> Callable[[str], str]:
    """Return a lookup that gives a binary's path, skipping loudly when it is missing.

    With ``CI=true`` a missing binary fails the test instead: CI must run every check.
    """

    def lookup(name: str) -> str:
        path = shutil.which(name) or shutil.which(name, path="/usr/bin")
        if path:
            return path
        message = (
            f"{name} is not installed, so this check did NOT run: "
            f"apt-get install {PACKAGES.get(name, name)} (CI installs it via .ci/run)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)

    return lookup


@pytest.fixture(scope="session")
def run() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run a command from the repository root with a bounded timeout, capturing its output."""

    def runner(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT, check=False)

    return runner


@pytest.fixture(scope="session")
def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of prometheus/rules/alerts.yml."""
    groups = load_yaml(REPO / "prometheus/rules/alerts.yml")["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


@pytest.fixture(scope="session")
def recording_rules() -> list[dict[str, Any]]:
    """Every recording rule of prometheus/rules/recording.yml."""
    groups = load_yaml(REPO / "prometheus/rules/recording.yml")["groups"]
    return [rule for group in groups for rule in group["rules"] if "record" in rule]


@pytest.fixture(scope="session")
def rule_group_names() -> dict[str, list[str]]:
    """Rule group names per rule file name (recording.yml, alerts.yml)."""
    return {
        name: [group["name"] for group in load_yaml(REPO / "prometheus/rules" / name)["groups"]]
        for name in ("recording.yml", "alerts.yml")
    }


@pytest.fixture(scope="session")
def promtool_tests() -> dict[str, dict[str, Any]]:
    """The promtool unit-test files of prometheus/tests/, by file name."""
    return {path.name: load_yaml(path) for path in sorted((REPO / "prometheus/tests").glob("*.yml"))}


@pytest.fixture(scope="session")
def dashboards() -> dict[str, dict[str, Any]]:
    """The Grafana dashboards of grafana/dashboards/, by file name."""
    import json

    return {path.name: json.loads(path.read_text()) for path in sorted((REPO / "grafana/dashboards").glob("*.json"))}
