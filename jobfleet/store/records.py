"""The job record, built in one place and read back in one place: the fields a new job gets, the record as the API
and the CLI see it (typed, times in epoch seconds), its history and event trail, and what an error looks like.

One Redis hash per job holds everything: the encoded Dramatiq message exactly as accepted (its kwargs are the
payload: stored once), the state, the fencing token, one history line per attempt (``a<n>``) and the outcome."""

from __future__ import annotations

import json
import traceback
from typing import Any

from jobfleet.core.states import JobState

#: Stored errors keep this much of the exception's message; the history line keeps less.
ERROR_MESSAGE_MAX = 2000
HISTORY_MESSAGE_MAX = 200
TRACEBACK_MAX = 8000


def new_job_fields(
    *,
    encoded_message: bytes,
    job_type: str,
    queue: str,
    actor: str,
    caller: str,
    scoped_key: str,
    trace_id: str,
) -> dict[str, Any]:
    """The fields a job is created with (submit.lua adds the state, counters and Redis's times)."""
    return {
        "msg": encoded_message,
        "type": job_type,
        "queue": queue,
        "actor": actor,
        "caller": caller,
        "key": scoped_key,
        "trace": trace_id,
    }


def error_info(exc: BaseException) -> dict[str, Any]:
    """Type, message and traceback of an attempt's exception, bounded in size."""
    return {
        "type": type(exc).__name__,
        "message": str(exc)[:ERROR_MESSAGE_MAX],
        "traceback": "".join(traceback.format_exception(exc))[-TRACEBACK_MAX:],
    }


def _seconds(ms: str | None) -> float | None:
    return int(ms) / 1000 if ms else None


def _json(raw: str | None) -> Any:
    return json.loads(raw) if raw else None


def parse_attempt_line(try_number: int, line: str) -> dict[str, Any]:
    """One history entry from its stored line ``start|end|outcome|next due|attempt|replay|error type|message``."""
    start, end, outcome, next_due, attempt, replay, error_type, error_message = (line.split("|", 7) + [""] * 8)[:8]
    entry: dict[str, Any] = {
        "attempt": int(attempt or try_number),
        "replay": int(replay or 0),
        "try": try_number,
        "started_at": _seconds(start),
        "finished_at": _seconds(end),
    }
    if outcome and outcome != "running":
        entry["outcome"] = outcome
    if error_type:
        entry["error"] = {"type": error_type, "message": error_message}
    if next_due:
        entry["next_retry_at"] = _seconds(next_due)
    return entry


def history(fields: dict[str, str]) -> list[dict[str, Any]]:
    """Every delivery of a job, oldest first (replays included)."""
    entries = []
    for name, line in fields.items():
        if name.startswith("a") and name[1:].isdigit():
            entries.append(parse_attempt_line(int(name[1:]), line))
    return sorted(entries, key=lambda e: e["try"])


def decode_record(job_id: str, raw: dict[bytes, bytes]) -> dict[str, Any]:
    """The job record as stored, typed: times in epoch seconds, JSON decoded, the payload read from the message."""
    fields = {k.decode(): v.decode(errors="replace") for k, v in raw.items()}
    message = _message(fields.get("msg", ""))
    cancel = fields.get("cancel", "")
    state: JobState = fields.get("state", "queued")  # type: ignore[assignment]
    return {
        "id": job_id,
        "type": fields.get("type", ""),
        "queue": fields.get("queue", ""),
        "actor": fields.get("actor", ""),
        "caller": fields.get("caller", ""),
        "state": state,
        "attempts": int(fields.get("attempts") or 0),
        "token": int(fields.get("token") or 0),
        "progress": int(fields.get("progress") or (100 if state == "succeeded" else 0)),
        "progress_message": fields.get("progress_message", ""),
        "result": _json(fields.get("result")),
        "error": _json(fields.get("error")),
        "traceback": fields.get("traceback", ""),
        "reason": fields.get("reason") or None,
        "history": history(fields),
        "enqueued_at": _seconds(fields.get("enqueued")),
        "ready_at": _seconds(fields.get("due")),
        "started_at": _seconds(fields.get("started")),
        "finished_at": _seconds(fields.get("finished")),
        "cancel_requested": bool(cancel),
        "replays": int(fields.get("replays") or 0),
        "deduplicated": fields.get("dedup", ""),
        "trace_id": fields.get("trace", ""),
        "idempotency_key": fields.get("key") or job_id,
        "payload": message.get("kwargs") if message else None,
        "message": message,
        "interruptions": int(fields.get("interruptions") or 0),
        "_fields": fields,
    }


def _message(encoded: str) -> dict[str, Any] | None:
    if not encoded:
        return None
    try:
        decoded = json.loads(encoded)
    except ValueError:
        return None
    return decoded if isinstance(decoded, dict) else None


# The order of events that share a millisecond: acceptance, a start, what happens during it, how it ended, then what
# operators did after.
_PHASE = {"accepted": 0, "started": 1, "progress": 2, "cancel_requested": 2, "held": 2, "released": 2, "replayed": 4}


def events(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The job's event trail, oldest first, derived from its record (accepted, each attempt's start and outcome,
    cancel, replay, give-backs, the latest progress, holds and purge)."""
    fields: dict[str, str] = record["_fields"]
    out: list[tuple[float, int, str, str, dict[str, Any]]] = []

    def add(at: float | None, name: str, data: dict[str, Any], key: str) -> None:
        if at is not None:  # events of one millisecond keep their lifecycle order
            out.append((at, _PHASE.get(name, 3), key, name, data))

    add(record["enqueued_at"], "accepted", {"type": record["type"], "caller": record["caller"]}, "accepted")
    for entry in record["history"]:
        n, key = entry["attempt"], f"a{entry['try']}"
        add(entry["started_at"], "started", {"attempt": n}, f"{key}.start")
        if entry.get("outcome"):
            data: dict[str, Any] = {"attempt": n}
            if entry.get("error"):
                data["error"] = entry["error"]["type"]
            if entry.get("next_retry_at"):
                data["next_retry_at"] = entry["next_retry_at"]
            add(entry["finished_at"], entry["outcome"], data, f"{key}.end")
    if fields.get("cancel"):
        at, _, who = fields["cancel"].partition(" ")
        name = "cancelled" if record["state"] == "cancelled" and not record["history"] else "cancel_requested"
        add(int(at) / 1000, name, {"by": who}, "cancel")
    add(_seconds(fields.get("replayed")), "replayed", {"replay": record["replays"]}, "replayed")
    add(_seconds(fields.get("released_at")), "released", {"count": int(fields.get("released") or 0)}, "released")
    for n, line in enumerate(filter(None, fields.get("progress_log", "").split("\n"))):
        at, _, rest = line.partition(" ")
        percent, _, text = rest.partition(" ")
        add(int(at) / 1000, "progress", {"progress": int(percent), "message": text}, f"progress.{n}")
    add(_seconds(fields.get("held")), "held", {"reason": "no worker with this actor took it"}, "held")
    add(_seconds(fields.get("purged")), "purged", {}, "purged")
    out.sort(key=lambda e: (e[0], e[1]))
    return [{"id": key, "event": name, "at": at, "data": data} for at, _, key, name, data in out]


def dead_letter(record: dict[str, Any]) -> dict[str, Any]:
    """A dead job as the DLQ shows it: the record's payload, final error and traceback, attempts and the message."""
    history_entries = record["history"]
    failures = [e["finished_at"] for e in history_entries if e.get("outcome") not in (None, "succeeded")]
    error = dict(record["error"] or {})
    error["traceback"] = record["traceback"]
    return {
        "job_id": record["id"],
        "type": record["type"],
        "queue": record["queue"],
        "actor": record["actor"],
        "caller": record["caller"],
        "payload": record["payload"],
        "idempotency_key": record["idempotency_key"],
        "reason": record["reason"],
        "error": error,
        "trace_id": record["trace_id"],
        "attempts": record["attempts"],
        "first_failure_at": failures[0] if failures else record["finished_at"],
        "last_failure_at": record["finished_at"],
        "dead_lettered_at": record["finished_at"],
        "history": history_entries,
        "message": record["message"],
        # What is left of a message that cannot be decoded (a poison message), to inspect before purging it.
        "raw": None if record["message"] else record["_fields"].get("msg", "")[:65536],
    }


def summary(entry: dict[str, Any]) -> dict[str, Any]:
    """The list view of a dead letter (no payload or traceback)."""
    error = entry.get("error") or {}
    return {
        "job_id": entry.get("job_id"),
        "type": entry.get("type"),
        "queue": entry.get("queue"),
        "reason": entry.get("reason"),
        "exception": error.get("type"),
        "message": error.get("message"),
        "attempts": entry.get("attempts", 0),
        "dead_lettered_at": entry.get("dead_lettered_at"),
        # A poison message could not be decoded when it was delivered: replaying it would only poison it again.
        "replayable": bool(entry.get("message")) and entry.get("reason") != "poison",
    }
