"""The job types jobfleet offers: name → actor, queue, payload model and per-actor limits."""

from __future__ import annotations

from dataclasses import dataclass

from jobfleet.core.payloads import EmailPayload, JobPayload, ReportPayload, WebhookPayload


@dataclass(frozen=True)
class JobType:
    """One job type as the API and the workers know it."""

    name: str
    actor_name: str
    queue_name: str
    payload: type[JobPayload]
    time_limit_seconds: int
    max_retries: int | None = None  # None: the fleet default (JOBFLEET_MAX_RETRIES)


JOB_TYPES: dict[str, JobType] = {
    t.name: t
    for t in (
        JobType("webhook", "deliver_webhook", "webhooks", WebhookPayload, time_limit_seconds=120),
        JobType("report", "build_report", "reports", ReportPayload, time_limit_seconds=600),
        JobType("email", "send_email", "emails", EmailPayload, time_limit_seconds=120),
    )
}

BY_ACTOR: dict[str, JobType] = {t.actor_name: t for t in JOB_TYPES.values()}
