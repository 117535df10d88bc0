"""Entry point for the Dramatiq CLI: ``dramatiq workers.boot:setup`` builds the broker, then the actors."""

from __future__ import annotations

import os

from jobfleet.broker.broker import JobfleetBroker
from jobfleet.core.logging import configure_logging
from jobfleet.core.redis_check import warn_if_unsafe
from jobfleet.core.settings import Settings
from jobfleet.core.telemetry import configure_tracing
from jobfleet.workers.broker import install


def setup() -> JobfleetBroker:
    """Called by the dramatiq CLI in each worker process: settings from the environment, broker, actors."""
    settings = Settings.from_env(os.environ)
    configure_logging(settings.log_level, component="worker")
    configure_tracing("jobfleet-worker", os.environ)
    broker = install(settings)
    warn_if_unsafe(broker.client, where="worker")  # loud when this Redis could evict or forget queue data
    return broker
