"""The jobfleet / API dashboard: the HTTP side, filtered by the $route variable (routes have no queue or actor).

Requests by route and status, the 5xx ratio, request duration quantiles, enqueue rejections, Redis errors the API
saw, and whether Prometheus can scrape the API.
"""

from __future__ import annotations

from typing import Any

from boards.panels import ROUTE_VARIABLE, dashboard, panel, quantiles, rate


def board() -> dict[str, Any]:
    """The API dashboard (uid jobfleet-api)."""
    route = 'route=~"$route"'
    route_5xx = route + ', status=~"5.."'
    panels = [
        panel(
            "timeseries",
            "Requests by route and status",
            "reqps",
            [
                (f"sum by (route, status) ({rate('jobfleet_http_requests_total', route)})", "{{route}} {{status}}"),
            ],
        ),
        panel(
            "timeseries",
            "5xx ratio",
            "percentunit",
            [
                (
                    f"sum by (route) ({rate('jobfleet_http_requests_total', route_5xx)})"
                    f" / sum by (route) ({rate('jobfleet_http_requests_total', route)})",
                    "{{route}}",
                ),
            ],
            extra_defaults={"min": 0, "max": 1},
        ),
        panel(
            "timeseries", "Request duration", "s", quantiles("jobfleet_http_request_duration_seconds", "route", route)
        ),
        panel(
            "timeseries",
            "Enqueue rejections by reason",
            "reqps",
            [
                (
                    "sum by (job_type, reason) (rate(jobfleet_enqueue_rejections_total[$__rate_interval]))",
                    "{{job_type}} {{reason}}",
                ),
            ],
        ),
        panel(
            "timeseries",
            "Redis errors seen by the API",
            "ops",
            [
                ("sum by (operation) (rate(jobfleet_redis_errors_total[$__rate_interval]))", "{{operation}}"),
            ],
        ),
        panel("stat", "API up", "bool_yes_no", [('min(up{job="jobfleet-api"})', "up")], w=12),
    ]
    return dashboard("jobfleet-api", "jobfleet / API", panels, [ROUTE_VARIABLE])
