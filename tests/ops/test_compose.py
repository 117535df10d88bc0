"""The container path without a Docker engine: deploy/compose.yaml validates against the Compose Specification's
JSON schema (vendored from check-jsonschema, deploy/schemas/), every bind mount and build context exists, the
compose variants of the Prometheus and Grafana configs match the originals, and the Dockerfile is multi-stage,
non-root and has a HEALTHCHECK."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.conftest import require_binary

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "compose.yaml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def bind_mounts(compose: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(service, host path, container path) of every bind mount (short syntax with a path source)."""
    mounts = []
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith((".", "/")):
                mounts.append((name, source, target))
    return mounts


def test_compose_file_is_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads((DEPLOY / "schemas" / "compose-spec.json").read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)

    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator_class(schema).iter_errors(compose)
    ]

    assert errors == []


def test_the_schema_rejects_a_broken_compose_file(compose: dict[str, Any]) -> None:
    # Guards the guard: a typo in a service key must fail validation.
    schema = json.loads((DEPLOY / "schemas" / "compose-spec.json").read_text())
    broken = json.loads(json.dumps(compose))
    broken["services"]["api"]["comand"] = ["api"]
    assert not jsonschema.validators.validator_for(schema)(schema).is_valid(broken)


def test_every_bind_mounted_path_and_build_context_exists(compose: dict[str, Any]) -> None:
    mounts = bind_mounts(compose)
    assert {service for service, _, _ in mounts} >= {"redis", "prometheus", "alertmanager", "grafana", "otel-collector"}
    missing = [f"{service}: {source}" for service, source, _ in mounts if not (DEPLOY / source).exists()]
    assert missing == []
    build = compose["x-jobfleet"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()


def test_the_stack_has_every_component_and_publishes_on_loopback_only(compose: dict[str, Any]) -> None:
    services = compose["services"]
    expected = {
        "redis",
        "api",
        "worker",
        "exporter",
        "prometheus",
        "alertmanager",
        "grafana",
        "otel-collector",
        "jaeger",
    }
    assert set(services) >= expected
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_redis_runs_with_the_shipped_config_aof_and_a_volume(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert ("./redis/redis.conf", "/usr/local/etc/redis/redis.conf") in {(s, t) for _, s, t in bind_mounts(compose)}
    assert redis["command"][:2] == ["redis-server", "/usr/local/etc/redis/redis.conf"]
    assert any(v.startswith("redis-data:/data") for v in redis["volumes"])
    assert "appendonly yes" in (DEPLOY / "redis" / "redis.conf").read_text()


def test_grafana_gets_the_dashboards_where_the_provider_reads_them(compose: dict[str, Any]) -> None:
    provider = yaml.safe_load((REPO / "grafana/provisioning/dashboards/jobfleet.yml").read_text())["providers"][0]
    targets = {target: source for service, source, target in bind_mounts(compose) if service == "grafana"}
    assert (DEPLOY / targets[provider["options"]["path"]]).resolve() == (REPO / "grafana" / "dashboards")
    original = yaml.safe_load((REPO / "grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"][0]
    mounted = yaml.safe_load((DEPLOY / "grafana/datasources.compose.yml").read_text())["datasources"][0]
    assert {**original, "url": "http://prometheus:9090"} == mounted


def test_compose_prometheus_config_matches_the_local_one(compose: dict[str, Any]) -> None:
    local = yaml.safe_load((REPO / "prometheus/prometheus.yml").read_text())
    ours = yaml.safe_load((DEPLOY / "prometheus/prometheus.compose.yml").read_text())
    assert [j["job_name"] for j in ours["scrape_configs"]] == [j["job_name"] for j in local["scrape_configs"]]
    for job in ours["scrape_configs"]:
        for target in job["static_configs"][0]["targets"]:
            assert target.split(":")[0] in compose["services"], target
    assert ours["global"]["scrape_interval"] == local["global"]["scrape_interval"]


def test_compose_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    # The rules are mounted at rules/ next to the config in the container: lay them out the same way here.
    (tmp_path / "prometheus.yml").write_text((DEPLOY / "prometheus/prometheus.compose.yml").read_text())
    (tmp_path / "rules").symlink_to(REPO / "prometheus" / "rules")
    result = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_otel_collector_sends_traces_to_jaeger(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((DEPLOY / "otel/collector.yaml").read_text())
    pipeline = config["service"]["pipelines"]["traces"]
    assert set(pipeline["receivers"]) <= set(config["receivers"])
    assert set(pipeline["processors"]) <= set(config["processors"])
    assert set(pipeline["exporters"]) <= set(config["exporters"])
    assert config["exporters"]["otlp/jaeger"]["endpoint"].split(":")[0] in compose["services"]
    endpoint = compose["x-jobfleet"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
    assert endpoint == "http://otel-collector:4318"
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    stages: list[list[tuple[str, str]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        assert stages, f"instruction before FROM: {line}"
        stages[-1].append((instruction.upper(), args.strip()))
    return stages


def test_dockerfile_is_multi_stage_slim_non_root_with_a_healthcheck() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    final = stages[-1]
    base = final[0][1]
    assert re.match(r"python:3\.\d+-slim", base), base
    # Compilers stay in the build stage; the runtime copies the finished virtualenv.
    assert any(i == "COPY" and args.startswith("--from=build") for i, args in final)
    assert not any("build-essential" in args for _, args in final)
    users = [args for i, args in final if i == "USER"]
    assert users, "the runtime stage must set USER"
    assert users[-1].split(":")[0] not in {"root", "0"}
    healthchecks = [args for i, args in final if i == "HEALTHCHECK"]
    assert healthchecks
    assert "CMD" in healthchecks[-1]
    assert "/healthz" in healthchecks[-1]
    entrypoint = next(args for i, args in final if i == "ENTRYPOINT")
    assert json.loads(entrypoint) == ["jobfleet"]  # exec form: signals reach the process
    assert not any(i == "ADD" for stage in stages for i, _ in stage)


def test_dockerignore_keeps_state_and_secrets_out_of_the_image() -> None:
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".jobfleet", "tests"} <= ignored
