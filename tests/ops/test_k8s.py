"""deploy/k8s/ without a cluster: every manifest validates against its Kubernetes JSON schema (vendored from
kubernetes-validate, v1.33 strict) or CRD schema (ServiceMonitor, PodMonitor, PrometheusRule, ScaledObject), the
PrometheusRule is exactly prometheus/rules/*.yml, and the pieces fit together (selectors, ports, grace period vs
drain timeout, KEDA queries on real exporter metrics, ConfigMap keys that are real settings)."""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from jobfleet.core.settings import Settings

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
SCHEMAS = K8S / "schemas"
SCHEMA_FILES = {
    ("apps/v1", "Deployment"): "deployment-apps-v1.json",
    ("v1", "Service"): "service-v1.json",
    ("v1", "ConfigMap"): "configmap-v1.json",
    ("v1", "Secret"): "secret-v1.json",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudget-policy-v1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "crds/servicemonitor-monitoring-v1.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "crds/podmonitor-monitoring-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "crds/prometheusrule-monitoring-v1.json",
    ("keda.sh/v1alpha1", "ScaledObject"): "crds/scaledobject-keda-v1alpha1.json",
}


@functools.cache
def manifests() -> list[tuple[str, dict[str, Any]]]:
    """(file name, document) for every manifest the kustomization applies."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        docs.extend((name, doc) for doc in yaml.safe_load_all((K8S / name).read_text()) if doc)
    return docs


def find(kind: str, name: str) -> dict[str, Any]:
    return next(doc for _, doc in manifests() if doc["kind"] == kind and doc["metadata"]["name"] == name)


@functools.cache
def validator(schema_file: str) -> Any:
    schema = json.loads((SCHEMAS / schema_file).read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def schema_errors(doc: dict[str, Any]) -> list[str]:
    checker = validator(SCHEMA_FILES[(doc["apiVersion"], doc["kind"])])
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in checker.iter_errors(doc)]


def test_the_kustomization_applies_every_manifest_in_the_folder() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


@pytest.mark.parametrize(("source", "doc"), manifests(), ids=lambda v: v if isinstance(v, str) else v["kind"])
def test_every_manifest_validates_against_its_schema(source: str, doc: dict[str, Any]) -> None:
    assert (doc["apiVersion"], doc["kind"]) in SCHEMA_FILES, f"{source}: no schema for {doc['kind']}"
    assert schema_errors(doc) == [], source


@pytest.mark.parametrize(
    ("kind", "name", "path", "bad_value"),
    [
        ("Deployment", "jobfleet-worker", ["spec", "template", "spec", "terminationGracePeriod"], 45),
        ("Deployment", "jobfleet-api", ["spec", "replicas"], "two"),
        ("ServiceMonitor", "jobfleet", ["spec", "endpoints", 0, "interval"], "15 seconds"),
        ("PrometheusRule", "jobfleet", ["spec", "groups", 0, "rules", 0, "alert"], "Both"),
        ("ScaledObject", "jobfleet-worker", ["spec", "triggers", 0, "metadata", "threshold"], "thirty"),
    ],
)
def test_the_schemas_reject_broken_manifests(kind: str, name: str, path: list[Any], bad_value: Any) -> None:
    # Guards the guard: a typo'd field or a wrong type must fail.
    doc = json.loads(json.dumps(find(kind, name)))
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = bad_value
    assert schema_errors(doc) != []


def test_prometheusrule_is_generated_from_the_rule_files() -> None:
    result = subprocess.run(
        [sys.executable, str(K8S / "generate_prometheusrule.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    groups = find("PrometheusRule", "jobfleet")["spec"]["groups"]
    expected = [
        group
        for name in ("recording.yml", "alerts.yml")
        for group in yaml.safe_load((REPO / "prometheus/rules" / name).read_text())["groups"]
    ]
    assert groups == expected


def pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    return all(labels.get(e["key"]) in e["values"] for e in selector.get("matchExpressions", []))


def test_worker_grace_period_covers_the_drain_timeout_with_a_margin() -> None:
    timeout = int(find("ConfigMap", "jobfleet-config")["data"]["JOBFLEET_SHUTDOWN_TIMEOUT_SECONDS"])
    pod = find("Deployment", "jobfleet-worker")["spec"]["template"]["spec"]
    assert 10 <= pod["terminationGracePeriodSeconds"] - timeout <= 30
    # SIGTERM once, then wait: the kubelet's own SIGTERM (sent when preStop returns) would be a second one,
    # which a dramatiq worker treats as "kill now".
    assert pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][-1] == (
        "kill -TERM 1; while kill -0 1 2>/dev/null; do sleep 1; done"
    )
    api = find("Deployment", "jobfleet-api")["spec"]["template"]["spec"]
    assert api["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"] > 0


def test_selectors_ports_and_budgets_fit_the_pods() -> None:
    for component in ("api", "worker", "exporter"):
        deployment = find("Deployment", f"jobfleet-{component}")
        assert selects(deployment["spec"]["selector"], pod_labels(deployment))
        assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    for name in ("jobfleet-api", "jobfleet-exporter"):
        service, deployment = find("Service", name), find("Deployment", name)
        assert selects({"matchLabels": service["spec"]["selector"]}, pod_labels(deployment))
        port_names = {p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    for name in ("jobfleet-api", "jobfleet-worker"):
        assert selects(find("PodDisruptionBudget", name)["spec"]["selector"], pod_labels(find("Deployment", name)))


def test_monitors_scrape_every_component_under_the_job_names_the_rules_use() -> None:
    monitor = find("ServiceMonitor", "jobfleet")
    services = [find("Service", n) for n in ("jobfleet-api", "jobfleet-exporter")]
    for service in services:
        assert selects(monitor["spec"]["selector"], service["metadata"]["labels"])
        # No jobLabel: the job label is the Service name, which is what the rules select on.
        assert service["metadata"]["name"] in {"jobfleet-api", "jobfleet-exporter"}
    endpoint_ports = {e["port"] for e in monitor["spec"]["endpoints"]}
    assert endpoint_ports == {p["name"] for s in services for p in s["spec"]["ports"]}
    pod_monitor = find("PodMonitor", "jobfleet-worker")
    assert selects(pod_monitor["spec"]["selector"], pod_labels(find("Deployment", "jobfleet-worker")))
    endpoint = pod_monitor["spec"]["podMetricsEndpoints"][0]
    assert {"action": "replace", "targetLabel": "job", "replacement": "jobfleet-worker"} in endpoint["relabelings"]


def test_keda_scales_the_workers_on_exporter_metrics() -> None:
    scaled = find("ScaledObject", "jobfleet-worker")["spec"]
    assert scaled["scaleTargetRef"]["name"] == "jobfleet-worker"
    assert scaled["minReplicaCount"] >= 1  # delayed jobs only become ready while a worker runs
    documented = set(re.findall(r"`(jobfleet_[a-z_]+)`", (REPO / "docs/metrics.md").read_text()))
    used = set()
    for trigger in scaled["triggers"]:
        assert trigger["type"] == "prometheus"
        used |= set(re.findall(r"jobfleet_[a-z_]+", trigger["metadata"]["query"]))
    assert used == {
        "jobfleet_queue_oldest_message_age_seconds",
        "jobfleet_queue_depth",
        "jobfleet_queue_in_flight",
    }
    assert used <= documented


def test_configmap_and_secret_keys_are_real_settings() -> None:
    known = {env for env, _, _ in Settings.documentation()}
    for kind, name, field in (("ConfigMap", "jobfleet-config", "data"), ("Secret", "jobfleet-secrets", "stringData")):
        keys = set(find(kind, name)[field])
        unknown = {k for k in keys - known if not k.startswith("OTEL_")}
        assert unknown == set(), f"{name}: not settings: {unknown}"
    assert "REDIS_URL" not in find("ConfigMap", "jobfleet-config")["data"]  # credentials only in the Secret
