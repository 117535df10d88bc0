"""Builders shared by every dashboard module: panels and their PromQL targets, template variables, the dashboard
envelope with its grid layout, and the PromQL fragments the boards repeat.

A board module lists its panels with ``panel(...)`` and hands them to ``dashboard(...)``, which numbers and lays them
out; the result is the dict that ``generate_dashboards.py`` writes as JSON.
"""

from __future__ import annotations

from typing import Any

# Every panel and target reads the Prometheus picked in the "datasource" variable, so one JSON fits any Grafana.
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Label selectors for the $queue / $actor variables (QA) and for queue-only metrics such as depths (Q).
QA = 'queue=~"$queue", actor=~"$actor"'
Q = 'queue=~"$queue"'

Panel = dict[str, Any]


def target(expr: str, legend: str, ref: str) -> dict[str, Any]:
    """One PromQL query of a panel."""
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": ref}


def panel(
    kind: str,
    title: str,
    unit: str,
    queries: list[tuple[str, str]],
    *,
    description: str = "",
    w: int = 12,
    h: int = 8,
    extra_defaults: dict[str, Any] | None = None,
) -> Panel:
    """A panel of `kind` (timeseries, stat) with its unit and (expr, legend) queries; laid out later."""
    defaults: dict[str, Any] = {"unit": unit}
    defaults.update(extra_defaults or {})
    refs = "ABCDEFGHIJ"
    result: Panel = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "gridPos": {"w": w, "h": h},
        "targets": [target(expr, legend, refs[i]) for i, (expr, legend) in enumerate(queries)],
    }
    if kind == "timeseries":
        result["options"] = {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}}
    else:
        result["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value"}
    return result


def layout(panels: list[Panel]) -> list[Panel]:
    """Assign ids and flow panels left to right, top to bottom on Grafana's 24-column grid."""
    x = y = row_h = 0
    for number, p in enumerate(panels, start=1):
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if x + w > 24:
            x, y, row_h = 0, y + row_h, 0
        p["id"] = number
        p["gridPos"] = {"x": x, "y": y, "w": w, "h": h}
        x, row_h = x + w, max(row_h, h)
    return panels


def datasource_variable() -> dict[str, Any]:
    """The "datasource" variable every board starts with: a pick of the Prometheus data sources."""
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "refresh": 1,
        "regex": "",
    }


def query_variable(name: str, query: str) -> dict[str, Any]:
    """A multi-select label_values variable with an All option matching everything."""
    return {
        "name": name,
        "label": name,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": f"{name}-values"},
        "current": {},
        "hide": 0,
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "refresh": 2,
        "regex": "",
        "sort": 1,
    }


QUEUE_VARIABLE = query_variable("queue", "label_values(jobfleet_queue_depth, queue)")
ACTOR_VARIABLE = query_variable("actor", 'label_values(jobfleet_jobs_started_total{queue=~"$queue"}, actor)')
ROUTE_VARIABLE = query_variable("route", "label_values(jobfleet_http_requests_total, route)")


def dashboard(uid: str, title: str, panels: list[Panel], variables: list[dict[str, Any]]) -> dict[str, Any]:
    """A whole dashboard: `panels` laid out, the datasource variable then `variables`, and links to its siblings."""
    return {
        "uid": uid,
        "title": title,
        "tags": ["jobfleet"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "annotations": {"list": []},
        "links": [
            {"type": "dashboards", "tags": ["jobfleet"], "asDropdown": True, "title": "jobfleet", "includeVars": True}
        ],
        "templating": {"list": [datasource_variable(), *variables]},
        "panels": layout(panels),
    }


def rate(metric: str, selector: str) -> str:
    """PromQL per-second rate of `metric` filtered by `selector`, over Grafana's $__rate_interval."""
    return f"rate({metric}{{{selector}}}[$__rate_interval])"


def final_failure_ratio(by: str) -> str:
    """dead / (succeeded + dead) over final outcomes; 0 (not missing) for actors that never dead-lettered."""
    dead = f"sum by ({by}) ({rate('jobfleet_jobs_dead_lettered_total', QA)})"
    succeeded = f"sum by ({by}) ({rate('jobfleet_jobs_succeeded_total', QA)})"
    return f"({dead} or 0 * {succeeded}) / ({succeeded} + {dead} or {succeeded} or {dead})"


def quantiles(metric: str, by: str, selector: str) -> list[tuple[str, str]]:
    """p50, p90 and p99 (expr, legend) queries of histogram `metric`, one series per `by` label."""
    return [
        (
            f"histogram_quantile({q}, sum by ({by}, le) ({rate(metric + '_bucket', selector)}))",
            f"p{int(q * 100)} {{{{{by}}}}}",
        )
        for q in (0.5, 0.9, 0.99)
    ]
