"""The production broker as a team's worker process has it: set as Dramatiq's global broker (as
`dramatiq jobfleet.workers.boot:setup` does) so plain `@dramatiq.actor` code declares on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import dramatiq

from jobfleet.broker.broker import JobfleetBroker
from jobfleet.core.settings import Settings
from jobfleet.workers.broker import build_broker


@contextmanager
def own_broker(settings: Settings, *, threads: int = 2) -> Iterator[tuple[JobfleetBroker, Callable[[], None]]]:
    """The production broker (set as Dramatiq's global one, as `dramatiq jobfleet.workers.boot:setup` does) and a
    function that starts an in-process worker on it; both stopped after."""
    broker = build_broker(settings)
    dramatiq.set_broker(broker)
    broker.emit_after("process_boot")
    workers: list[dramatiq.Worker] = []

    def start() -> None:
        worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=100)
        worker.start()
        workers.append(worker)

    try:
        yield broker, start
    finally:
        for worker in workers:
            worker.stop()
        broker.close()
