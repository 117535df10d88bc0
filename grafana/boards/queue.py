"""The jobfleet / Queue and actor dashboard: one queue's actors in detail.

Wait, run and end-to-end latency quantiles, the end-to-end SLO error ratio, failed attempts by exception, retries,
skipped duplicates, attempts in progress and the longest running job against its time limit, filtered by the $queue
and $actor variables.
"""

from __future__ import annotations

from typing import Any

from boards.panels import ACTOR_VARIABLE, QA, QUEUE_VARIABLE, dashboard, final_failure_ratio, panel, quantiles, rate


def board() -> dict[str, Any]:
    """The Queue and actor dashboard (uid jobfleet-queue)."""
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
