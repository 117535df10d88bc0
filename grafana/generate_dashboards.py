"""Generate the jobfleet Grafana dashboards in grafana/dashboards/ (stdlib only).

Run ``python3 grafana/generate_dashboards.py`` after editing; tests/bundle fails when the JSON files
drift from what this script renders. Hand edits to the JSON are overwritten.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from boards.panels import (
    ACTOR_VARIABLE,
    QA,
    QUEUE_VARIABLE,
    ROUTE_VARIABLE,
    Q,
    dashboard,
    final_failure_ratio,
    panel,
    quantiles,
    rate,
)

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"


def overview() -> dict[str, Any]:
    panels = [
        panel(
            "stat",
            "Live workers",
            "none",
            [("max(jobfleet_workers_live)", "live")],
            w=4,
            h=4,
            description="Worker processes with a fresh heartbeat in Redis (exporter).",
        ),
        panel(
            "stat",
            "Worker thread saturation",
            "percentunit",
            [("sum(jobfleet_worker_threads_busy) / sum(jobfleet_worker_threads)", "busy")],
            w=4,
            h=4,
            extra_defaults={"min": 0, "max": 1},
        ),
        panel("stat", "Ready messages", "short", [(f"sum(jobfleet_queue_depth{{{Q}}})", "ready")], w=4, h=4),
        panel("stat", "Dead letters", "short", [(f"sum(jobfleet_dlq_depth{{{Q}}})", "dead letters")], w=4, h=4),
        panel(
            "stat",
            "Jobs finished / s",
            "ops",
            [(f"sum({rate('jobfleet_jobs_succeeded_total', QA)})", "succeeded")],
            w=4,
            h=4,
        ),
        panel(
            "stat", "Exporter reaches Redis", "bool_yes_no", [("min(jobfleet_exporter_redis_up)", "redis up")], w=4, h=4
        ),
        panel(
            "timeseries",
            "Throughput by final outcome",
            "ops",
            [
                (f"sum by (queue) ({rate('jobfleet_jobs_succeeded_total', QA)})", "{{queue}} succeeded"),
                (f"sum by (queue) ({rate('jobfleet_jobs_dead_lettered_total', QA)})", "{{queue}} dead"),
                (f"sum by (queue) ({rate('jobfleet_jobs_cancelled_total', QA)})", "{{queue}} cancelled"),
                (f"sum by (queue) ({rate('jobfleet_jobs_started_total', QA)})", "{{queue}} attempts started"),
            ],
        ),
        panel(
            "timeseries",
            "Queue lag (oldest ready message age)",
            "s",
            [
                (f"max by (queue) (jobfleet_queue_oldest_message_age_seconds{{{Q}}})", "{{queue}}"),
            ],
        ),
        panel(
            "timeseries",
            "Queue depth",
            "short",
            [
                (f"sum by (queue) (jobfleet_queue_depth{{{Q}}})", "{{queue}} ready"),
                (f"sum by (queue) (jobfleet_queue_delayed{{{Q}}})", "{{queue}} delayed"),
                (f"sum by (queue) (jobfleet_queue_in_flight{{{Q}}})", "{{queue}} in flight"),
            ],
        ),
        panel(
            "timeseries",
            "Final failure ratio (dead / (succeeded + dead))",
            "percentunit",
            [
                (final_failure_ratio("queue, actor"), "{{queue}} {{actor}}"),
            ],
            extra_defaults={"min": 0, "max": 1},
        ),
        panel(
            "timeseries",
            "DLQ depth",
            "short",
            [
                (f"sum by (queue) (jobfleet_dlq_depth{{{Q}}})", "{{queue}}"),
            ],
        ),
        panel(
            "timeseries",
            "Oldest dead letter age",
            "s",
            [
                (f"max by (queue) (jobfleet_dlq_oldest_age_seconds{{{Q}}})", "{{queue}}"),
                ("max(jobfleet_dlq_retention_seconds)", "retention"),
            ],
        ),
        panel(
            "timeseries",
            "Worker thread saturation",
            "percentunit",
            [
                ("sum(jobfleet_worker_threads_busy) / sum(jobfleet_worker_threads)", "busy / threads"),
            ],
            extra_defaults={"min": 0, "max": 1},
        ),
        panel(
            "timeseries",
            "Live workers and threads",
            "short",
            [
                ("max(jobfleet_workers_live)", "live worker processes"),
                ("sum(jobfleet_worker_threads)", "threads"),
                ("sum(jobfleet_worker_threads_busy)", "busy threads"),
            ],
        ),
    ]
    return dashboard("jobfleet-overview", "jobfleet / Overview", panels, [QUEUE_VARIABLE, ACTOR_VARIABLE])


def queue_drilldown() -> dict[str, Any]:
    panels = [
        panel(
            "timeseries", "Queue wait (ready → start)", "s", quantiles("jobfleet_job_queue_wait_seconds", "actor", QA)
        ),
        panel("timeseries", "Run time per attempt", "s", quantiles("jobfleet_job_run_seconds", "actor", QA)),
        panel(
            "timeseries",
            "End to end (accepted → succeeded)",
            "s",
            quantiles("jobfleet_job_end_to_end_seconds", "actor", QA + ', outcome="succeeded"'),
        ),
        panel(
            "timeseries",
            "SLO error ratio (1h), objective 99.5%",
            "percentunit",
            [
                (f"queue_actor:jobfleet_job_end_to_end_slo_errors:ratio_rate1h{{{QA}}}", "{{actor}} 1h"),
                (f"queue_actor:jobfleet_job_end_to_end_slo_errors:ratio_rate6h{{{QA}}}", "{{actor}} 6h"),
            ],
            description="Recorded by prometheus/rules/recording.yml; the error budget is 0.5%.",
        ),
        panel(
            "timeseries",
            "Failed attempts by exception",
            "ops",
            [
                (f"sum by (actor, exception) ({rate('jobfleet_jobs_failed_total', QA)})", "{{actor}} {{exception}}"),
            ],
        ),
        panel(
            "timeseries",
            "Retries scheduled",
            "ops",
            [
                (f"sum by (actor) ({rate('jobfleet_jobs_retried_total', QA)})", "{{actor}}"),
            ],
        ),
        panel(
            "timeseries",
            "Duplicate deliveries skipped",
            "ops",
            [
                (f"sum by (actor) ({rate('jobfleet_jobs_duplicates_skipped_total', QA)})", "{{actor}}"),
            ],
        ),
        panel(
            "timeseries",
            "Final failure ratio",
            "percentunit",
            [
                (final_failure_ratio("actor"), "{{actor}}"),
            ],
            extra_defaults={"min": 0, "max": 1},
        ),
        panel(
            "timeseries",
            "Attempts in progress",
            "short",
            [
                (f"sum by (actor) (jobfleet_jobs_in_progress{{{QA}}})", "{{actor}}"),
            ],
        ),
        panel(
            "timeseries",
            "Longest running job vs time limit",
            "s",
            [
                (f"max by (actor) (jobfleet_job_running_longest_seconds{{{QA}}})", "{{actor}} running"),
                (f"max by (actor) (jobfleet_job_time_limit_seconds{{{QA}}})", "{{actor}} limit"),
            ],
        ),
    ]
    return dashboard("jobfleet-queue", "jobfleet / Queue and actor", panels, [QUEUE_VARIABLE, ACTOR_VARIABLE])


def api() -> dict[str, Any]:
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


def dlq() -> dict[str, Any]:
    panels = [
        panel("stat", "Dead letters", "short", [(f"sum(jobfleet_dlq_depth{{{Q}}})", "dead letters")], w=8, h=4),
        panel(
            "stat", "Oldest dead letter", "s", [(f"max(jobfleet_dlq_oldest_age_seconds{{{Q}}})", "oldest")], w=8, h=4
        ),
        panel("stat", "Retention", "s", [("max(jobfleet_dlq_retention_seconds)", "retention")], w=8, h=4),
        panel(
            "timeseries",
            "DLQ depth by queue",
            "short",
            [
                (f"sum by (queue) (jobfleet_dlq_depth{{{Q}}})", "{{queue}}"),
            ],
        ),
        panel(
            "timeseries",
            "Oldest dead letter age vs expiry warning (80% of retention)",
            "s",
            [
                (f"max by (queue) (jobfleet_dlq_oldest_age_seconds{{{Q}}})", "{{queue}}"),
                ("0.8 * max(jobfleet_dlq_retention_seconds)", "80% of retention"),
            ],
        ),
        panel(
            "timeseries",
            "Jobs dead-lettered",
            "ops",
            [
                (f"sum by (queue, actor) ({rate('jobfleet_jobs_dead_lettered_total', QA)})", "{{queue}} {{actor}}"),
            ],
        ),
        panel(
            "timeseries",
            "Failed attempts by exception",
            "ops",
            [
                (f"sum by (actor, exception) ({rate('jobfleet_jobs_failed_total', QA)})", "{{actor}} {{exception}}"),
            ],
        ),
    ]
    return dashboard("jobfleet-dlq", "jobfleet / Dead letters", panels, [QUEUE_VARIABLE, ACTOR_VARIABLE])


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    boards = {
        "jobfleet-overview.json": overview(),
        "jobfleet-queue.json": queue_drilldown(),
        "jobfleet-api.json": api(),
        "jobfleet-dlq.json": dlq(),
    }
    return {name: json.dumps(board, indent=2) + "\n" for name, board in boards.items()}


def main(argv: list[str]) -> int:
    """Write the dashboards, or with --check report drift and exit 1."""
    drifted = []
    for name, text in render().items():
        path = DASHBOARD_DIR / name
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                drifted.append(name)
        else:
            path.write_text(text)
    for name in drifted:
        print(f"{name} differs from generate_dashboards.py; run python3 grafana/generate_dashboards.py")
    return 1 if drifted else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
