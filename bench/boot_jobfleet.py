"""jobfleet: the production broker with every middleware, the real actors, plus a trivial actor (one INCR)."""

from __future__ import annotations

import dramatiq

from jobfleet.broker.broker import JobfleetBroker
from jobfleet.workers.boot import setup as production_setup

COUNTER = "bench:done"


def setup() -> JobfleetBroker:
    """Broker for the dramatiq CLI."""
    broker = production_setup()
    client = broker.client

    def bench_incr() -> None:
        client.incr(COUNTER)

    dramatiq.actor(  # type: ignore[call-overload]
        bench_incr, broker=broker, queue_name="bench", actor_name="bench_incr", job_type="bench", time_limit=60_000
    )
    return broker
