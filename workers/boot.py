"""Entry point for the Dramatiq CLI: ``dramatiq workers.boot:setup`` builds the broker, then the actors."""

from __future__ import annotations

import os

from jobfleet.logging import configure_logging
from jobfleet.settings import Settings
from jobfleet.telemetry import configure_tracing
from middleware.redis_broker import JobfleetRedisBroker
from workers.broker import install


def setup() -> JobfleetRedisBroker:
    """Called by the dramatiq CLI in each worker process: settings from the environment, broker, actors."""
    settings = Settings.from_env(os.environ)
    configure_logging(settings.log_level, component="worker")
    configure_tracing("jobfleet-worker", os.environ)
    return install(settings)
