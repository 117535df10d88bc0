"""jobfleet: the production broker with every middleware, the real actors, plus two trivial actors: one INCR
(succeeds) and one that raises PermanentError (dead at its first attempt)."""

from __future__ import annotations

import dramatiq

from jobfleet.broker.broker import JobfleetBroker
from jobfleet.core.errors import PermanentError
from jobfleet.workers.boot import setup as production_setup

COUNTER = "bench:done"


def setup() -> JobfleetBroker:
    """Broker for the dramatiq CLI."""
    broker = production_setup()
    client = broker.client

    def bench_incr() -> None:
        client.incr(COUNTER)

    def bench_fail() -> None:
        raise PermanentError("bench: this job always fails")

    dramatiq.actor(  # type: ignore[call-overload]
        bench_incr, broker=broker, queue_name="bench", actor_name="bench_incr", job_type="bench", time_limit=60_000
    )
    dramatiq.actor(  # type: ignore[call-overload]
        bench_fail, broker=broker, queue_name="bench", actor_name="bench_fail", job_type="bench_fail", time_limit=60_000
    )
    return broker
