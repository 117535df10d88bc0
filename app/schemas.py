"""Response models: they shape the JSON the API returns and the OpenAPI document that describes it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from jobfleet.core.states import JobState

State = JobState


def iso(ts: float | None) -> str | None:
    """Epoch seconds → RFC 3339 UTC timestamp (None stays None)."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


class JobAccepted(BaseModel):
    """Answer to an enqueue: where to poll."""

    job_id: str
    status_url: str
    state: State
    idempotent_replay: bool = Field(description="True when an earlier request with this Idempotency-Key made the job")


class ErrorInfo(BaseModel):
    """The last error of a job."""

    type: str
    message: str


class AttemptInfo(BaseModel):
    """One attempt in a job's history."""

    model_config = ConfigDict(extra="allow")

    attempt: int
    started_at: str | None = None
    finished_at: str | None = None
    outcome: str | None = None
    error: ErrorInfo | None = None
    next_retry_at: str | None = None


class JobStatus(BaseModel):
    """A job's current state, progress, result or error, and its attempt history."""

    id: str
    type: str
    state: State
    progress: int = Field(ge=0, le=100)
    progress_message: str | None = None
    result: Any = None
    error: ErrorInfo | None = None
    attempts: int
    history: list[AttemptInfo]
    enqueued_at: str | None
    ready_at: str | None = None
    started_at: str | None
    finished_at: str | None
    cancel_requested: bool = False
    replays: int = 0
    deduplicated: bool = False
    trace_id: str | None = None

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> JobStatus:
        """Build from a decoded store record."""
        state = record.get("state", "queued")
        if state == "queued" and record.get("ready_at") and record["ready_at"] > datetime.now(UTC).timestamp():
            state = "scheduled"
        history = []
        for entry in record.get("history", []):
            item = dict(entry)
            for key in ("started_at", "finished_at", "next_retry_at"):
                if isinstance(item.get(key), int | float):
                    item[key] = iso(item[key])
            history.append(AttemptInfo.model_validate(item))
        error = record.get("error")
        return cls(
            id=record["id"],
            type=record.get("type", ""),
            state=state,
            progress=record.get("progress", 0),
            progress_message=record.get("progress_message") or None,
            result=record.get("result"),
            error=ErrorInfo(type=error["type"], message=error["message"]) if error else None,
            attempts=record.get("attempts", 0),
            history=history,
            enqueued_at=iso(record.get("enqueued_at")),
            ready_at=iso(record.get("ready_at")),
            started_at=iso(record.get("started_at")),
            finished_at=iso(record.get("finished_at")),
            cancel_requested=record.get("cancel_requested", False),
            replays=record.get("replays", 0),
            deduplicated=record.get("deduplicated") == "1",
            trace_id=record.get("trace_id") or None,
        )


class JobEvent(BaseModel):
    """One lifecycle event of a job."""

    id: str
    event: str
    at: str | None
    data: dict[str, Any]


class JobEvents(BaseModel):
    """A job's event trail, oldest first."""

    job_id: str
    events: list[JobEvent]


class RedisMemory(BaseModel):
    """How full Redis is (the fullest node of a Cluster)."""

    used_bytes: int
    max_bytes: int = Field(description="maxmemory (0: no limit)")
    used_ratio: float = Field(description="used / max; at 1 a noeviction Redis refuses new jobs")


class Health(BaseModel):
    """Liveness / readiness answer."""

    status: Literal["ok"]
    redis_memory: RedisMemory | None = Field(default=None, description="Readiness only")


class ProblemDetails(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
