"""Prometheus configuration and rules pass promtool and match the documented scrape layout."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import yaml

Run = Callable[..., subprocess.CompletedProcess[str]]


def test_promtool_accepts_the_local_config_and_its_rule_files(require_binary: Callable[[str], str], run: Run) -> None:
    result = run(require_binary("promtool"), "check", "config", "prometheus/prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rule files found" in result.stdout + result.stderr


def test_promtool_accepts_every_rule_file(require_binary: Callable[[str], str], run: Run, repo: Path) -> None:
    files = sorted(str(path.relative_to(repo)) for path in (repo / "prometheus/rules").glob("*.yml"))
    result = run(require_binary("promtool"), "check", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass(require_binary: Callable[[str], str], run: Run, repo: Path) -> None:
    files = sorted(str(path.relative_to(repo)) for path in (repo / "prometheus/tests").glob("*.yml"))
    assert files, "no promtool unit tests found"
    result = run(require_binary("promtool"), "test", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_local_config_scrapes_api_workers_and_exporter_and_alerts_to_local_alertmanager(repo: Path) -> None:
    config = yaml.safe_load((repo / "prometheus/prometheus.yml").read_text())
    jobs = {
        job["job_name"]: (job.get("metrics_path", "/metrics"), job["static_configs"][0]["targets"])
        for job in config["scrape_configs"]
    }
    assert jobs == {
        "jobfleet-api": ("/metrics", ["127.0.0.1:8000"]),
        "jobfleet-worker": ("/metrics", ["127.0.0.1:9191"]),
        "jobfleet-exporter": ("/metrics", ["127.0.0.1:9180"]),
    }
    assert config["rule_files"] == ["rules/recording.yml", "rules/alerts.yml"]
    alertmanagers = config["alerting"]["alertmanagers"]
    assert alertmanagers[0]["static_configs"][0]["targets"] == ["127.0.0.1:9093"]


def test_kubernetes_example_keeps_jobfleet_pods_and_takes_the_port_from_an_annotation(repo: Path) -> None:
    # Debian's promtool is built without Kubernetes discovery, so this example is checked structurally.
    config = yaml.safe_load((repo / "prometheus/prometheus-k8s-example.yml").read_text())
    (scrape,) = config["scrape_configs"]
    assert scrape["kubernetes_sd_configs"] == [{"role": "pod"}]
    relabels = scrape["relabel_configs"]
    assert {
        "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_part_of"],
        "regex": "jobfleet",
        "action": "keep",
    } in relabels
    port_rule = next(r for r in relabels if r.get("target_label") == "__address__")
    assert port_rule["source_labels"][1] == "__meta_kubernetes_pod_annotation_prometheus_io_port"
    assert config["rule_files"] == ["rules/recording.yml", "rules/alerts.yml"]
