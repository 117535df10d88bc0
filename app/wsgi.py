"""WSGI entry for the server: ``granian --interface wsgi --factory app.wsgi:create`` (or gunicorn
``'app.wsgi:create()'``) — settings from the environment at start."""

from __future__ import annotations

from flask import Flask

from jobfleet.logging import configure_logging
from jobfleet.settings import Settings


def create() -> Flask:
    """Build the API from the environment (the server calls this once per worker process)."""
    import os

    from app import create_app
    from jobfleet.redis_check import warn_if_unsafe
    from jobfleet.telemetry import configure_tracing

    settings = Settings.from_env()
    configure_logging(settings.log_level, component="api")
    configure_tracing("jobfleet-api", os.environ)
    app = create_app(settings)
    warn_if_unsafe(app.extensions["jobfleet"].client, where="api")  # loud when Redis could evict queue data
    return app
