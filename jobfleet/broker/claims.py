"""Claims at fetch time: the attempt of every message a worker fetches from a ready queue is started inside the
fetch script (claim.lua), so a delivery costs no Redis round trip of its own before the actor runs.

The broker caps the messages a process holds at its worker thread count while claiming, so a claimed message
is one a thread is about to run (no job shows ``running`` while it waits in a prefetch buffer). Claimed messages
that go back to the queue without running (shutdown, consumer restart) are released: the attempt is undone, so
it counts neither as an attempt nor as an interrupted delivery."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import dramatiq
import structlog

from jobfleet.core.errors import StoreUnavailable
from jobfleet.store.jobs import EVENTS_MAX, Begin, JobStore

log = structlog.get_logger(__name__)

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
    idempotency_key: str
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
        idempotency_key=message.options.get("idempotency_key") or job_id,
        token=token,
        member=f"{message.queue_name}|{message.actor_name}|{job_id}",
        lease_ms=int(time_limit_ms) + LEASE_MARGIN_MS,
    )


class Claims:
    """What the broker's consumers need to claim at fetch (``fetch_args``) and to give claims back (``release``)."""

    def __init__(
        self,
        broker: dramatiq.Broker,
        store: JobStore,
        *,
        heartbeat_timeout_ms: int,
        max_interruptions: int,
        slots: int,
    ) -> None:
        self.broker = broker
        self.store = store
        #: Messages this process may hold from ready queues at once: its worker threads.
        self.slots = slots
        #: Set when the worker starts draining: finishing threads no longer take their next message.
        self.draining = False
        actors = {
            name: [
                broker.get_actor(name).options.get("job_type", name),
                int(broker.get_actor(name).options.get("time_limit", DEFAULT_TIME_LIMIT_MS)),
            ]
            for name in sorted(broker.get_declared_actors())
        }
        self.fetch_args: list[Any] = [
            "1",
            store.keys.ns,
            store.job_ttl,
            store.ledger_ttl,
            heartbeat_timeout_ms,
            max_interruptions,
            EVENTS_MAX,
            LEASE_MARGIN_MS,
            json.dumps(actors, separators=(",", ":")),
        ]

    def release(self, claimed: list[tuple[Any, Begin]]) -> bool:
        """Undo the attempts of ``(message, claim)`` pairs that go back to their queue without having run; return
        False when Redis could not be reached (the claims stay: a redelivery then counts one interruption)."""
        entries = []
        for message, claim in claimed:
            if claim.verdict != "run":
                continue
            who = delivery(self.broker, message)
            ledger = self.store.keys.ledger(who.job_type, who.idempotency_key)
            entries.append((who.job_id, claim.attempt, who.token, ledger, who.member))
        if not entries:
            return True
        try:
            released = self.store.release(entries)
        except StoreUnavailable as exc:
            log.warning("could not release claims; their redeliveries will count as interrupted", error=str(exc))
            return False
        log.info("released the claims of messages put back without running", count=released)
        return True
