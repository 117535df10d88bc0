"""/v1/dlq and /v1/audit: inspect, replay and purge dead letters; every operator action is audited."""

from __future__ import annotations

import re
from typing import Any

import pydantic
from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from jobfleet.app.auth import current_key_id
from jobfleet.app.jobs import caller, check_job_id, read_json_object, validation_problem
from jobfleet.app.problems import Problem
from jobfleet.app.schemas import iso
from jobfleet.app.services import services
from jobfleet.store.audit import Audit
from jobfleet.store.dead_letters import MAX_BULK, DeadLetters, Filter
from jobfleet.store.records import summary

bp = Blueprint("dlq", __name__, url_prefix="/v1")


class DlqFilter(BaseModel):
    """Which dead letters to list or replay (all criteria optional, combined with AND)."""

    model_config = ConfigDict(extra="forbid")

    type: str | None = Field(default=None, max_length=64, description="Job type, e.g. webhook")
    queue: str | None = Field(default=None, max_length=64, description="Queue, e.g. webhooks")
    exception: str | None = Field(default=None, max_length=128, description="Final exception class name")
    reason: str | None = Field(default=None, description="permanent | exhausted | crash_loop | poison")


class DlqListQuery(DlqFilter):
    """Query string of GET /v1/dlq."""

    cursor: str = Field(
        default="",
        pattern=r"^(\d{1,15}:[0-9a-f-]{32,36})?$",
        description="Where to continue from (next_cursor of the last page)",
    )
    limit: int = Field(default=50, ge=1, le=500)


class BulkReplayRequest(DlqFilter):
    """Body of POST /v1/dlq/replay."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"type": "webhook", "limit": 100, "dry_run": True}]})

    limit: int = Field(default=100, ge=1, le=MAX_BULK, description="At most this many dead letters, oldest first")
    per_second: float = Field(default=50.0, gt=0, le=1000, description="Throttle: replays per second")
    dry_run: bool = Field(default=False, description="Only report what would be replayed")


def _dlq() -> DeadLetters:
    return DeadLetters(services().store)


def _filter(model: DlqFilter) -> Filter:
    return Filter(type=model.type, queue=model.queue, exception=model.exception, reason=model.reason)


def _present(item: dict[str, Any]) -> dict[str, Any]:
    out = dict(item)
    for key in ("dead_lettered_at", "first_failure_at", "last_failure_at"):
        if isinstance(out.get(key), int | float):
            out[key] = iso(out[key])
    return out


@bp.get("/dlq")
def list_dead_letters() -> Response:
    """Dead letters, newest first, filtered and paginated."""
    try:
        query = DlqListQuery.model_validate(request.args.to_dict())
    except pydantic.ValidationError as exc:
        raise validation_problem("dlq query", exc) from None
    dlq = _dlq()
    items, next_cursor = dlq.page(_filter(query), cursor=query.cursor, limit=query.limit)
    return jsonify({"items": [_present(i) for i in items], "next_cursor": next_cursor, "total": dlq.count()})


@bp.get("/dlq/<job_id>")
def show_dead_letter(job_id: str) -> Response:
    """One dead letter in full: payload, final error and traceback, attempt history, trace id."""
    check_job_id(job_id)
    entry = _dlq().get(job_id)
    return jsonify({**_present(entry), "summary": summary(entry)})


@bp.post("/dlq/<job_id>/replay")
def replay_dead_letter(job_id: str) -> tuple[Response, int]:
    """Re-enqueue one dead letter with fresh attempts and its original idempotency key."""
    check_job_id(job_id)
    replay = _dlq().replay(job_id, caller=caller(), key_id=current_key_id())
    status_url = f"/v1/jobs/{job_id}"
    response = jsonify({"job_id": job_id, "status_url": status_url, "replay": replay})
    response.headers["Location"] = status_url
    return response, 202


@bp.post("/dlq/replay")
def bulk_replay() -> Response:
    """Replay the dead letters matching a filter: bounded batch, throttled, with a dry run."""
    body = read_json_object()
    try:
        req = BulkReplayRequest.model_validate(body)
    except pydantic.ValidationError as exc:
        raise validation_problem("bulk replay request", exc) from None
    result = _dlq().bulk_replay(
        _filter(req),
        caller=caller(),
        key_id=current_key_id(),
        limit=req.limit,
        per_second=req.per_second,
        dry_run=req.dry_run,
    )
    return jsonify(
        {
            "dry_run": result.dry_run,
            "matched": result.matched,
            "replayed": result.replayed,
            "job_ids": result.job_ids,
            "skipped": result.skipped,
        }
    )


@bp.delete("/dlq/<job_id>")
def purge_dead_letter(job_id: str) -> tuple[str, int]:
    """Delete a dead letter for good; the job's state becomes ``failed``."""
    check_job_id(job_id)
    _dlq().purge(job_id, caller=caller(), key_id=current_key_id())
    return "", 204


@bp.get("/audit")
def audit() -> Response:
    """Operator actions (replay, bulk replay, purge, cancel), newest first."""
    try:
        limit = int(request.args.get("limit", "100"))
    except ValueError:
        limit = -1
    if not 1 <= limit <= 1000:
        raise Problem(400, "bad-limit", "Bad Request", "limit must be an integer from 1 to 1000")
    before = request.args.get("before")
    if before is not None and (
        not re.fullmatch(r"\d{1,20}-\d{1,20}", before, flags=re.ASCII)
        or max(int(p) for p in before.split("-")) >= 2**64
    ):
        raise Problem(400, "bad-cursor", "Bad Request", "before must be an audit entry id like 1700000000000-0")
    if before is not None and not any(int(p) for p in before.split("-")):
        return jsonify({"items": []})  # nothing is older than 0-0 (Redis refuses the exclusive range)
    items = Audit(services().store).entries(limit=limit, before=before)
    return jsonify({"items": [{**i, "at": iso(i["at"])} for i in items]})
