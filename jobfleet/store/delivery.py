"""One delivery of a job as the store, the consumer and every middleware see it, and the typed state a message
carries between the consumer and the middleware hooks (``state_of(message)``, never ad-hoc attributes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dramatiq

from jobfleet.core.states import DeadLetterReason, Outcome


def option(broker: dramatiq.Broker, message: Any, name: str, default: Any) -> Any:
    """Resolve an option: message options, then the actor's options, then ``default``."""
    if name in message.options:
        return message.options[name]
    try:
        actor = broker.get_actor(message.actor_name)
    except dramatiq.errors.ActorNotFound:
        return default
    return actor.options.get(name, default)


@dataclass(frozen=True)
class Claimed:
    """A job a fetch (or a finish that took the next job) claimed for this worker: the delivery's fencing token
    (the job's token, raised by each claim), the attempt number and the encoded message exactly as accepted."""

    job_id: str
    token: int
    attempt: int
    #: Which delivery of the job this is, replays included: names its history line.
    try_number: int
    replay: int
    message: bytes
    enqueued_ms: int | None
    due_ms: int | None
    started_ms: int
    partition: int
    queue: str
    #: What the job still counts against its caller's quotas ("o": outstanding and bytes; "" nothing), its stored
    #: bytes and its caller: finish gives them back when the job ends.
    quota: str = ""
    stored_bytes: int = 0
    caller: str = ""

    @property
    def member(self) -> str:
        """Its entry in the queue's running set (what finish and release remove)."""
        return f"{self.job_id}:{self.token}"


def parse_claimed(flat: list[bytes], partition: int, queue: str) -> list[Claimed]:
    """The jobs of a fetch.lua / finish.lua reply (12 entries each: claim in lib.lua)."""
    out = []
    for i in range(0, len(flat), 12):
        enqueued, due = flat[i + 6], flat[i + 7]
        out.append(
            Claimed(
                job_id=flat[i].decode(),
                token=int(flat[i + 1]),
                attempt=int(flat[i + 2]),
                try_number=int(flat[i + 3]),
                replay=int(flat[i + 4]),
                message=bytes(flat[i + 5] or b""),
                enqueued_ms=int(enqueued) if enqueued else None,
                due_ms=int(due) if due else None,
                started_ms=int(flat[i + 8]),
                partition=partition,
                queue=queue,
                quota=flat[i + 9].decode(),
                stored_bytes=int(flat[i + 10] or 0),
                caller=flat[i + 11].decode(),
            )
        )
    return out


@dataclass
class Attempt:
    """The attempt a delivery is running, with what the observers (metrics, tracing, logs) need to know about it."""

    job_id: str
    job_type: str
    scoped_key: str
    token: int
    attempt: int
    #: Epoch seconds (Redis's clock): when the attempt was claimed, the job accepted, and the job due.
    started: float
    enqueued_at: float | None
    ready_at: float | None


@dataclass(frozen=True)
class DeliveryOutcome:
    """How a delivery ends, decided by JobLifecycle and recorded by the consumer when it acks.

    ``attempt`` is None for deliveries that never ran; ``error`` is the attempt's error_info; ``retry_delay_ms`` is
    set for ``retrying``, ``reason`` for ``dead``."""

    outcome: Outcome
    attempt: Attempt | None = None
    exception: BaseException | None = None
    result: Any = None
    error: dict[str, Any] | None = None
    retry_delay_ms: int | None = None
    reason: DeadLetterReason | None = None


@dataclass
class MessageState:
    """Everything jobfleet keeps on one delivered message (never in its options: none of it is JSON)."""

    #: Set by the consumer: the claim this message was handed out under.
    claimed: Claimed | None = None
    #: Set by JobLifecycle while the attempt runs.
    attempt: Attempt | None = None
    #: Set by JobLifecycle when the delivery's outcome is decided; recorded by the consumer's ack or nack.
    outcome: DeliveryOutcome | None = None
    #: Tracing's open span for this delivery (a jobfleet.middleware.tracing object; this layer knows no spans).
    span_scope: Any = None
    #: WorkerMetrics' ``perf_counter()`` at the attempt's start.
    run_started: float | None = None


def state_of(message: Any) -> MessageState:
    """The state jobfleet keeps on ``message`` (a MessageProxy), created on first use."""
    state: MessageState | None = getattr(message, "_jobfleet", None)
    if state is None:
        state = MessageState()
        message._jobfleet = state
    return state
