"""Grafana dashboards and provisioning follow the lint rules and match their generator."""

from __future__ import annotations

import importlib.util
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

EXPECTED_UIDS = {
    "jobfleet-overview.json": "jobfleet-overview",
    "jobfleet-queue.json": "jobfleet-queue",
    "jobfleet-api.json": "jobfleet-api",
    "jobfleet-dlq.json": "jobfleet-dlq",
}
# The API dashboard is about HTTP routes, which have no queue or actor; it filters by route instead.
WITHOUT_QUEUE_VARIABLES = {"jobfleet-api.json"}
DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}
RANGE_FUNCTION = re.compile(r"\b(?:rate|irate|increase)\(")
RANGE_SELECTOR = re.compile(r"\[([^\]]+)\]")

Run = Callable[..., subprocess.CompletedProcess[str]]


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows; rows themselves hold no queries."""
    for panel in board["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def expressions(dashboards: dict[str, dict[str, Any]]) -> Iterator[tuple[str, str, str]]:
    """(file, panel title, PromQL) of every panel target."""
    for name, board in dashboards.items():
        for panel in panels(board):
            for target in panel["targets"]:
                yield name, panel["title"], target["expr"]


def variables(board: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in board["templating"]["list"]}


def test_dashboards_have_stable_unique_uids(dashboards: dict[str, dict[str, Any]]) -> None:
    assert {name: board["uid"] for name, board in dashboards.items()} == EXPECTED_UIDS


def test_dashboards_use_a_current_schema(dashboards: dict[str, dict[str, Any]]) -> None:
    for name, board in dashboards.items():
        assert board["schemaVersion"] >= 39, name


def test_dashboards_select_their_prometheus_through_a_datasource_variable(
    dashboards: dict[str, dict[str, Any]],
) -> None:
    for name, board in dashboards.items():
        datasource = variables(board)["datasource"]
        assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus"), name


def test_dashboards_filter_by_queue_and_actor_label_values(dashboards: dict[str, dict[str, Any]]) -> None:
    for name, board in dashboards.items():
        if name in WITHOUT_QUEUE_VARIABLES:
            continue
        found = variables(board)
        for variable_name in ("queue", "actor"):
            variable = found[variable_name]
            assert variable["type"] == "query", name
            assert variable["definition"].startswith("label_values("), name
            assert variable["definition"].endswith(f", {variable_name})"), name
            assert variable["datasource"] == DATASOURCE_REF, name


def test_every_panel_has_a_unit(dashboards: dict[str, dict[str, Any]]) -> None:
    for name, board in dashboards.items():
        for panel in panels(board):
            assert panel["fieldConfig"]["defaults"].get("unit"), f"{name}: {panel['title']!r} has no unit"


def test_every_panel_and_target_queries_the_datasource_variable(dashboards: dict[str, dict[str, Any]]) -> None:
    for name, board in dashboards.items():
        for panel in panels(board):
            assert panel["datasource"] == DATASOURCE_REF, f"{name}: {panel['title']!r}"
            assert panel["targets"], f"{name}: {panel['title']!r} has no query"
            for target in panel["targets"]:
                assert target["datasource"] == DATASOURCE_REF, f"{name}: {panel['title']!r}"


def test_every_range_function_uses_rate_interval(dashboards: dict[str, dict[str, Any]]) -> None:
    for name, title, expr in expressions(dashboards):
        ranges = RANGE_SELECTOR.findall(expr)
        assert all(window == "$__rate_interval" for window in ranges), f"{name}: {title!r}: {expr}"
        assert len(ranges) == len(RANGE_FUNCTION.findall(expr)), f"{name}: {title!r}: {expr}"


def test_panel_ids_are_unique_within_each_dashboard(dashboards: dict[str, dict[str, Any]]) -> None:
    for name, board in dashboards.items():
        ids = [panel["id"] for panel in panels(board)]
        assert len(ids) == len(set(ids)), name


def test_every_panel_query_is_valid_promql(
    dashboards: dict[str, dict[str, Any]], require_binary: Callable[[str], str], run: Run, tmp_path: Path
) -> None:
    # Substitute Grafana's variables the way Grafana would, then let promtool parse each query.
    substitutions = {"$__rate_interval": "1m", "$queue": ".*", "$actor": ".*", "$route": ".*"}
    rules = []
    for number, (_name, _title, expr) in enumerate(expressions(dashboards)):
        promql = expr
        for variable, value in substitutions.items():
            promql = promql.replace(variable, value)
        rules.append({"record": f"dashboard:query_{number}:check", "expr": promql})
    rule_file = tmp_path / "dashboard_queries.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = run(require_binary("promtool"), "check", "rules", str(rule_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_json_matches_the_generator(
    dashboards: dict[str, dict[str, Any]], repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Run as a script, the generator finds its grafana/boards package next to it; loaded by path, it needs the folder.
    monkeypatch.syspath_prepend(str(repo / "grafana"))
    spec = importlib.util.spec_from_file_location("generate_dashboards", repo / "grafana/generate_dashboards.py")
    assert spec is not None
    assert spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    rendered = generator.render()
    assert set(rendered) == set(dashboards)
    for name, text in rendered.items():
        on_disk = (repo / "grafana/dashboards" / name).read_text()
        assert on_disk == text, f"{name} drifted: run python3 grafana/generate_dashboards.py"


def test_provisioning_points_grafana_at_the_local_prometheus_and_the_dashboard_folder(repo: Path) -> None:
    datasources = yaml.safe_load((repo / "grafana/provisioning/datasources/prometheus.yml").read_text())
    (prometheus,) = datasources["datasources"]
    assert (prometheus["type"], prometheus["url"]) == ("prometheus", "http://127.0.0.1:9090")
    providers = yaml.safe_load((repo / "grafana/provisioning/dashboards/jobfleet.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
