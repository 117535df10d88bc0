"""Claims at fetch time: the attempt of every message a worker fetches from a ready queue is started inside the
fetch script (claim.lua), so a delivery costs no Redis round trip of its own before the actor runs.

The broker caps the messages a process holds at its worker thread count while claiming, so a claimed message
is one a thread is about to run (no job shows ``running`` while it waits in a prefetch buffer). Claimed messages
that go back to the queue without running (shutdown, consumer restart) are released: the attempt is undone, so
it counts neither as an attempt nor as an interrupted delivery."""

from __future__ import annotations

import json
from typing import Any

import dramatiq
import structlog

from jobfleet.core.errors import StoreUnavailable
from jobfleet.store.delivery import DEFAULT_TIME_LIMIT_MS, LEASE_MARGIN_MS, Claim, delivery
from jobfleet.store.jobs import EVENTS_MAX, JobStore

log = structlog.get_logger(__name__)


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

    def release(self, claimed: list[tuple[Any, Claim]]) -> bool:
        """Undo the attempts of ``(message, claim)`` pairs that go back to their queue without having run; return
        False when Redis could not be reached (the claims stay: a redelivery then counts one interruption)."""
        entries = []
        for message, claim in claimed:
            if claim.verdict != "run":
                continue
            who = delivery(self.broker, message)
            ledger = self.store.keys.ledger(who.job_type, who.scoped_key)
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
