"""One delivery of a job as the store and every middleware see it, and the typed state a message carries between
the consumer and the middleware hooks (``state_of(message)``, never ad-hoc attributes on the message)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dramatiq

from jobfleet.core.states import Outcome

# A lease outlives the actor's time limit by this much, so a live worker's lease never lapses mid-attempt.
LEASE_MARGIN_MS = 30_000
# Dramatiq's TimeLimit default, for actors that set none.
DEFAULT_TIME_LIMIT_MS = 600_000


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
class Delivery:
    """Who a delivery is, as the store sees it (fetch.lua derives the same values in Lua)."""

    job_id: str
    job_type: str
    #: The caller-scoped idempotency key (``<caller>:<Idempotency-Key>``), or the job id for jobs without one.
    scoped_key: str
    token: str
    member: str
    lease_ms: int


def delivery(broker: dramatiq.Broker, message: Any) -> Delivery:
    """The delivery's identity: job, idempotency key, delivery token, running-set member and lease length."""
    job_id = message.message_id
    # The delivery token names this delivery in the ledger. A redelivery after a failed begin keeps it: the
    # begin may have been applied before the connection broke, and its lease must stay ours.
    token = message.options.get("delivery_token") or message.options.get("redis_message_id") or job_id
    time_limit_ms = option(broker, message, "time_limit", DEFAULT_TIME_LIMIT_MS)
    return Delivery(
        job_id=job_id,
        job_type=option(broker, message, "job_type", message.actor_name),
        scoped_key=message.options.get("idempotency_key") or job_id,
        token=token,
        member=running_member(message.queue_name, message.actor_name, job_id),
        lease_ms=int(time_limit_ms) + LEASE_MARGIN_MS,
    )


def running_member(queue_name: str, actor_name: str, job_id: str) -> str:
    """The running set's member for an attempt (claim.lua's ``running_member`` builds the same string)."""
    return f"{queue_name}|{actor_name}|{job_id}"


def parse_running_member(member: str) -> tuple[str, str, str]:
    """(queue, actor, job id) of a running set member."""
    queue, _, rest = member.partition("|")
    actor, _, job_id = rest.partition("|")
    return queue, actor, job_id


@dataclass(frozen=True)
class Claim:
    """What claiming an attempt decided: ``run``, ``missing``, ``cancelled``, ``finished``, ``duplicate``, ``busy``
    or ``poison`` (claim.lua)."""

    verdict: str
    attempt: int = 0
    detail: str = ""
    enqueued_at: float | None = None
    ready_at: float | None = None

    @classmethod
    def from_reply(cls, parts: list[str]) -> Claim:
        """Parse claim()'s reply: ``run`` with attempt, enqueued_at, ready_at; else verdict, detail."""
        if parts[0] == "run":
            return cls(
                "run",
                attempt=int(parts[1]),
                enqueued_at=float(parts[2]) if parts[2] else None,
                ready_at=float(parts[3]) if parts[3] else None,
            )
        return cls(parts[0], detail=parts[1])


@dataclass
class Attempt:
    """The attempt a delivery is running (claimed), with what the observers need to know about it."""

    job_id: str
    job_type: str
    scoped_key: str
    token: str
    attempt: int
    running_member: str
    started: float
    enqueued_at: float | None
    ready_at: float | None


@dataclass(frozen=True)
class DeliveryOutcome:
    """How a delivery ended (``outcome``), for the metrics and tracing middleware; ``attempt`` is None for skipped
    deliveries, ``exception`` the attempt's error if any."""

    outcome: Outcome
    attempt: Attempt | None = None
    exception: BaseException | None = None


@dataclass
class MessageState:
    """Everything jobfleet keeps on one delivered message (never in its options: none of it is JSON)."""

    #: Set by the consumer when the fetch script already claimed the attempt.
    claim: Claim | None = None
    #: Set by JobLifecycle once the attempt runs; cleared when it is recorded.
    attempt: Attempt | None = None
    #: Set by JobLifecycle when the delivery's outcome is decided.
    outcome: DeliveryOutcome | None = None
    #: Set by JobLifecycle when its finish call also acked the delivery: the consumer must not ack again.
    acked: bool = False
    #: Set by JobLifecycle when the outcome could not be recorded: the consumer puts the message back.
    requeue: bool = False
    #: Tracing's open span for this delivery (a ``middleware.tracing`` object; this layer does not know its type).
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
