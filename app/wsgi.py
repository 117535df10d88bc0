"""WSGI entry for the server: ``granian --interface wsgi --factory app.wsgi:create`` (or gunicorn
``'app.wsgi:create()'``) — settings from the environment at start."""

from __future__ import annotations

import os

from flask import Flask

from jobfleet.app import create_app
from jobfleet.core.logging import configure_logging
from jobfleet.core.redis_check import warn_if_unsafe
from jobfleet.core.settings import Settings
from jobfleet.core.telemetry import configure_tracing


def create() -> Flask:
    """Build the API from the environment (the server calls this once per worker process)."""

    settings = Settings.from_env()
    configure_logging(settings.log_level, component="api")
    configure_tracing("jobfleet-api", os.environ)
    app = create_app(settings)
    warn_if_unsafe(app.extensions["jobfleet"].client, where="api")  # loud when Redis could evict queue data
    return app
