"""Bare Dramatiq: the stock RedisBroker with its default middleware and a trivial actor (one INCR)."""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker

COUNTER = "bench:done"


def setup() -> RedisBroker:
    """Broker for the dramatiq CLI."""
    broker = RedisBroker(url=os.environ["REDIS_URL"], namespace="bare")  # type: ignore[no-untyped-call]
    dramatiq.set_broker(broker)
    client = broker.client

    def bench_incr() -> None:
        client.incr(COUNTER)

    dramatiq.actor(bench_incr, broker=broker, queue_name="bench", actor_name="bench_incr")  # type: ignore[call-overload]
    return broker
