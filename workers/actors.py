"""The actors: validate the payload again (a forged message gets no further than the API would), then run
the job. Declared on an explicit broker by declare_actors(); nothing happens at import time."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

import dramatiq
import pydantic

from jobfleet.core.errors import PermanentError
from jobfleet.core.job_types import JOB_TYPES
from jobfleet.core.payloads import EmailPayload, JobPayload, ReportPayload, WebhookPayload
from jobfleet.core.settings import Settings
from jobfleet.middleware.job_context import current_job, report_progress, set_result
from jobfleet.workers.jobs import email, report, webhook
from jobfleet.workers.jobs.ssrf import DestinationPolicy


def _validated(model: type[JobPayload], kwargs: dict[str, Any]) -> Any:
    try:
        return model.model_validate(kwargs)
    except pydantic.ValidationError as exc:
        raise PermanentError(f"invalid {model.__name__}: {exc.error_count()} error(s): {exc}") from None


def _ids() -> tuple[str, str]:
    ctx = current_job()
    if ctx is None:  # run outside the lifecycle middleware (unit use): no ledger, no key
        return "local", "local"
    return ctx.job_id, ctx.scoped_key


def _returning_via_context(fn: Callable[..., dict[str, Any]]) -> Callable[..., None]:
    @wraps(fn)
    def actor(**kwargs: Any) -> None:
        set_result(fn(**kwargs))

    return actor


def declare_actors(broker: dramatiq.Broker, settings: Settings) -> dict[str, dramatiq.Actor[..., None]]:
    """Declare every job type's actor on ``broker``; return them by job type."""
    smtp = email.SmtpConfig(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.smtp_sender,
        username=settings.smtp_username,
        password=settings.smtp_password,
        starttls=settings.smtp_starttls,
    )

    destinations = DestinationPolicy.from_settings(settings.webhook_allowed_hosts, settings.webhook_allowed_networks)

    def deliver_webhook(**kwargs: Any) -> dict[str, Any]:
        _, key = _ids()
        return webhook.deliver(_validated(WebhookPayload, kwargs), idempotency_key=key, destinations=destinations)

    def build_report(**kwargs: Any) -> dict[str, Any]:
        job_id, _ = _ids()
        return report.build(
            _validated(ReportPayload, kwargs),
            job_id=job_id,
            out_dir=settings.report_dir,
            progress=report_progress,
        )

    def send_email(**kwargs: Any) -> dict[str, Any]:
        _, key = _ids()
        return email.send(_validated(EmailPayload, kwargs), idempotency_key=key, smtp=smtp)

    functions: dict[str, Callable[..., dict[str, Any]]] = {
        "webhook": deliver_webhook,
        "report": build_report,
        "email": send_email,
    }
    actors = {}
    for name, fn in functions.items():
        spec = JOB_TYPES[name]
        options: dict[str, Any] = {"time_limit": spec.time_limit_seconds * 1000, "job_type": spec.name}
        if spec.max_retries is not None:
            options["max_retries"] = spec.max_retries
        actors[name] = dramatiq.actor(  # type: ignore[call-overload]
            _returning_via_context(fn),
            actor_name=spec.actor_name,
            queue_name=spec.queue_name,
            broker=broker,
            **options,
        )
    return actors
