"""The API baseline: a minimal Flask endpoint that only calls ``actor.send`` (no validation, no status record,
no idempotency), served by the same server as the real API."""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from flask import Flask, Response, jsonify


def create() -> Flask:
    """App factory for granian/gunicorn."""
    broker = RedisBroker(url=os.environ["REDIS_URL"], namespace="minimal")  # type: ignore[no-untyped-call]
    dramatiq.set_broker(broker)

    def bench_incr() -> None:
        """Never run: the benchmark only enqueues."""

    actor = dramatiq.actor(bench_incr, broker=broker, queue_name="bench", actor_name="bench_incr")  # type: ignore[call-overload]
    app = Flask(__name__)

    @app.post("/v1/jobs/<job_type>")
    def enqueue(job_type: str) -> tuple[Response, int]:
        message = actor.send()
        return jsonify({"job_id": message.message_id}), 202

    return app
