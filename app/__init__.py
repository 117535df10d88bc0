"""The enqueue API: an app factory with a blueprint per resource."""

from __future__ import annotations

from flask import Flask
from opentelemetry.trace import TracerProvider

from jobfleet.core.redis_client import make_client
from jobfleet.core.settings import Settings
from jobfleet.store.factory import open_store

from . import access_log, auth, dlq, health, jobs, limits, metrics, openapi, problems, telemetry
from .services import Services


def create_app(settings: Settings | None = None, *, tracer_provider: TracerProvider | None = None) -> Flask:
    """Build the API for ``settings`` (default: from the environment); traces go to ``tracer_provider``
    (default: the process's global one, installed by the entry point)."""
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    client = make_client(settings)
    app.extensions["jobfleet"] = Services(settings=settings, client=client, store=open_store(settings, client))
    problems.init_app(app)
    access_log.init_app(app)  # first: its clock starts before, and its line is written after, every other hook
    metrics.init_app(app, multiprocess_dir=settings.prometheus_multiproc_dir)
    telemetry.init_app(app, tracer_provider=tracer_provider)
    admission = limits.init_app(app, settings, client)
    auth.init_app(app, settings, client, admission)  # after metrics and tracing: refusals are measured and traced
    app.register_blueprint(jobs.bp)
    app.register_blueprint(dlq.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(openapi.bp)
    return app
