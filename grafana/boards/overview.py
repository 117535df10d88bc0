"""The jobfleet / Overview dashboard: the fleet at a glance.

Live workers and thread saturation, ready and dead-letter counts, throughput by final outcome, queue lag and depth,
the final failure ratio and DLQ depth and age, filtered by the $queue and $actor variables.
"""

from __future__ import annotations

from typing import Any

from boards.panels import ACTOR_VARIABLE, QA, QUEUE_VARIABLE, Q, dashboard, final_failure_ratio, panel, rate


def board() -> dict[str, Any]:
    """The Overview dashboard (uid jobfleet-overview)."""
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
