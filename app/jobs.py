"""/v1/jobs: enqueue, status, event trail and cancellation."""

from __future__ import annotations

import json
import math
import re
import time
from datetime import datetime
from typing import Any

import pydantic
from flask import Blueprint, Response, jsonify, request

from jobfleet.app.auth import current_caller, current_key_id, current_principal, ensure_may_write, ensure_owner
from jobfleet.app.enqueue import submit
from jobfleet.app.limits import check_body_shape
from jobfleet.app.problems import Problem
from jobfleet.app.schemas import JobAccepted, JobEvent, JobEvents, JobStatus, iso
from jobfleet.app.services import services
from jobfleet.app.telemetry import current_trace_context
from jobfleet.core.job_types import JOB_TYPES
from jobfleet.store.jobs import Quotas
from jobfleet.store.records import events as event_trail

bp = Blueprint("jobs", __name__, url_prefix="/v1/jobs")

# jobfleet's ids (32 hex) and Dramatiq's (a UUID with dashes, for jobs sent with .send()); matched whole.
_JOB_ID = re.compile(r"[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_PRINTABLE = re.compile(r"^[\x20-\x7e]{1,255}$")


def caller() -> str:
    """Who is calling: the authenticated API key's caller, else ``anonymous`` (JOBFLEET_AUTH=disabled)."""
    return current_caller()


def validation_problem(what: str, exc: pydantic.ValidationError) -> Problem:
    """A 422 problem listing every invalid field of ``what``."""
    errors = [
        {
            "field": ".".join(str(p) for p in err["loc"]) or "(body)",
            "message": err["msg"],
            "type": err["type"],
        }
        for err in exc.errors(include_url=False, include_input=False)
    ]
    return Problem(
        422,
        "validation-failed",
        "Unprocessable Content",
        f"the {what} has {len(errors)} invalid field(s): " + "; ".join(f"{e['field']}: {e['message']}" for e in errors),
        errors=errors,
    )


def check_job_id(job_id: str) -> None:
    """A 404 problem unless ``job_id`` has the shape of a job id."""
    if not _JOB_ID.fullmatch(job_id):
        raise Problem(404, "job-not-found", "Not Found", f"no job {job_id!r}: job ids are 32 hex characters or a UUID")


def read_json_object() -> Any:
    """The request body as JSON, or a 415/400/413 problem."""
    if request.mimetype != "application/json" and not request.mimetype.endswith("+json"):
        raise Problem(
            415,
            "unsupported-media-type",
            "Unsupported Media Type",
            f"send the job payload as JSON with 'Content-Type: application/json' (got {request.mimetype or 'none'!r})",
        )
    raw = request.get_data(cache=False)  # raises 413 past MAX_CONTENT_LENGTH
    try:
        body = json.loads(raw or b"")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Problem(
            400, "malformed-json", "Bad Request", f"the body is not valid JSON: {exc}; send a JSON object"
        ) from None
    except RecursionError:  # nesting deep enough to exhaust the parser's stack
        raise Problem(
            400, "json-too-complex", "Bad Request", "the JSON nests far too deep; send a smaller document"
        ) from None
    check_body_shape(body)
    return body


def _schedule(max_delay: int) -> tuple[float, str]:
    """The requested delay in seconds, and the schedule parameter as the client sent it (for the fingerprint)."""
    if not request.query_string:  # the common case: skip parsing the (empty) query string
        return 0.0, ""
    delay_raw = request.args.get("delay_seconds")
    not_before_raw = request.args.get("not_before")
    if delay_raw is not None and not_before_raw is not None:
        raise Problem(400, "bad-schedule", "Bad Request", "give delay_seconds or not_before, not both")
    delay = 0.0
    if delay_raw is not None:
        try:
            delay = float(delay_raw)
        except ValueError:
            delay = math.nan
        if not math.isfinite(delay) or delay < 0:
            raise Problem(400, "bad-schedule", "Bad Request", f"delay_seconds={delay_raw!r} must be a number >= 0")
    if not_before_raw is not None:
        try:
            when = datetime.fromisoformat(not_before_raw)
        except ValueError:
            raise Problem(
                400,
                "bad-schedule",
                "Bad Request",
                f"not_before={not_before_raw!r} must be an RFC 3339 timestamp like 2026-01-01T12:00:00Z",
            ) from None
        if when.tzinfo is None:
            raise Problem(400, "bad-schedule", "Bad Request", "not_before needs a timezone (e.g. a trailing Z)")
        delay = max(0.0, when.timestamp() - time.time())
    sent = ""
    if delay_raw is not None:
        sent = f"delay_seconds={delay_raw}"
    elif not_before_raw is not None:
        sent = f"not_before={not_before_raw}"
    if delay > max_delay:
        raise Problem(
            400,
            "bad-schedule",
            "Bad Request",
            f"the job would start in {delay:.0f}s; the maximum delay is {max_delay}s (JOBFLEET_MAX_DELAY_SECONDS)",
        )
    return delay, sent


@bp.post("/<job_type>")
def enqueue(job_type: str) -> tuple[Response, int]:
    """Validate and enqueue a job; 202 with where to poll."""
    spec = JOB_TYPES.get(job_type)
    if spec is None:
        raise Problem(
            404,
            "unknown-job-type",
            "Not Found",
            f"unknown job type {job_type!r}; available: {', '.join(sorted(JOB_TYPES))}",
        )
    key = request.headers.get("Idempotency-Key")
    if key is not None and not _PRINTABLE.match(key):
        raise Problem(
            400,
            "bad-idempotency-key",
            "Bad Request",
            "Idempotency-Key must be 1-255 printable ASCII characters (a UUID is a good choice)",
        )
    svc = services()
    body = read_json_object()
    delay, schedule = _schedule(svc.settings.max_delay_seconds)
    try:
        payload = spec.payload.model_validate(body)
    except pydantic.ValidationError as exc:
        raise validation_problem(f"{job_type} payload", exc) from None
    submitted = submit(
        svc.store,
        spec,
        payload.model_dump(mode="json"),
        caller=caller(),
        idempotency_key=key,
        idempotency_ttl=svc.settings.idempotency_window_seconds,
        delay_seconds=delay,
        schedule=schedule,
        trace_context=current_trace_context(),
        max_queue_depth=svc.settings.max_queue_depth,
        replicas=svc.settings.accept_replicas,
        replicas_timeout_ms=svc.settings.accept_replicas_timeout_ms,
        quotas=Quotas(*svc.settings.quotas_per_partition),
    )
    status_url = f"/v1/jobs/{submitted.job_id}"
    body_out = JobAccepted(
        job_id=submitted.job_id,
        status_url=status_url,
        state=submitted.state,  # type: ignore[arg-type]
        idempotent_replay=not submitted.created,
    )
    headers = {"Location": status_url}
    if not submitted.created:
        headers["Idempotent-Replayed"] = "true"
    # pydantic serialises the model straight to JSON bytes: a third of jsonify's cost on the hottest endpoint.
    return Response(body_out.model_dump_json(), headers=headers, mimetype="application/json"), 202


@bp.get("/<job_id>")
def status(job_id: str) -> Response:
    """The job's state, progress, result or error and attempt history."""
    check_job_id(job_id)
    record = services().store.get(job_id)
    ensure_owner(record, job_id)
    return jsonify(JobStatus.from_record(record).model_dump(mode="json"))


@bp.get("/<job_id>/events")
def events(job_id: str) -> Response:
    """The job's lifecycle events, oldest first."""
    check_job_id(job_id)
    record = services().store.get(job_id)
    ensure_owner(record, job_id)  # 404 for unknown (or another tenant's) ids, not an empty list
    items = [JobEvent(id=e["id"], event=e["event"], at=iso(e["at"]), data=e["data"]) for e in event_trail(record)]
    return jsonify(JobEvents(job_id=job_id, events=items).model_dump(mode="json"))


@bp.delete("/<job_id>")
def cancel(job_id: str) -> tuple[Response, int]:
    """Cancel a waiting job, or ask a running one to stop; 409 when it already finished."""
    check_job_id(job_id)
    store = services().store
    if current_principal() is not None:  # owner and type never change, so checking before the cancel script is safe
        record = store.get(job_id)
        ensure_owner(record, job_id)  # another tenant's job is a 404 before its type can be told by a 403
        ensure_may_write(str(record.get("type", "")), "cancel")
    previous = store.cancel(job_id, caller=caller(), key_id=current_key_id())
    record = store.get(job_id)
    return jsonify(JobStatus.from_record(record).model_dump(mode="json")), 202 if previous == "running" else 200
