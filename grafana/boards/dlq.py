"""The jobfleet / Dead letters dashboard: what is in the dead-letter queues and how close it is to expiring.

DLQ depth, the oldest dead letter against 80% of the retention, jobs dead-lettered by queue and actor, and failed
attempts by exception, filtered by the $queue and $actor variables.
"""

from __future__ import annotations

from typing import Any

from boards.panels import ACTOR_VARIABLE, QA, QUEUE_VARIABLE, Q, dashboard, panel, rate


def board() -> dict[str, Any]:
    """The Dead letters dashboard (uid jobfleet-dlq)."""
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
