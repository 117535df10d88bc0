"""What a dead letter holds: the final attempt's error with its traceback and a replayable copy of the message."""

from __future__ import annotations

import traceback
from typing import Any

from dramatiq.common import q_name


def dead_letter(message: Any, attempt: Any, error: dict[str, Any], reason: str) -> dict[str, Any]:
    """The dead-letter entry for ``message``'s final attempt (finish.lua adds history and timestamps)."""
    return {
        "job_id": attempt.job_id,
        "type": attempt.job_type,
        "queue": message.queue_name,
        "actor": message.actor_name,
        "payload": message.kwargs,
        "idempotency_key": attempt.scoped_key,
        "reason": reason,
        "error": error,
        "trace_id": message.options.get("trace_id"),
        "traceparent": message.options.get("traceparent"),
        "message": replayable(message),
    }


def error_info(exc: BaseException) -> dict[str, Any]:
    """Type, message and traceback of an attempt's exception, bounded in size."""
    return {
        "type": type(exc).__name__,
        "message": str(exc)[:2000],
        "traceback": "".join(traceback.format_exception(exc))[-8000:],
    }


def replayable(message: Any) -> dict[str, Any]:
    """The message as a replay will re-create it (no per-delivery options)."""
    options = {
        k: v
        for k, v in message.options.items()
        if k
        not in {"redis_message_id", "eta", "retries", "traceback", "requeue_timestamp", "ready_at", "delivery_token"}
    }
    return {
        "queue_name": q_name(message.queue_name),
        "actor_name": message.actor_name,
        "args": list(message.args),
        "kwargs": message.kwargs,
        "options": options,
        "message_id": message.message_id,
    }
