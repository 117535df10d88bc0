"""Dramatiq's Redis broker with the two gaps that lose work closed: a delivery whose outcome could not be
recorded is requeued instead of acked, and crashed workers' messages are recovered on a timer."""

from __future__ import annotations

from typing import Any

import redis
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import current_millis, dq_name
from dramatiq.errors import ConnectionClosed


class JobfleetRedisBroker(RedisBroker):
    """A RedisBroker whose maintenance (dead-worker recovery) runs when told to, not by chance."""

    def __init__(self, **kwargs: Any) -> None:
        # Random maintenance (0.1% of commands) is replaced by RecoveryMiddleware's timer.
        kwargs.setdefault("maintenance_chance", 0)
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self.jobfleet_store: Any = None

    @property
    def consumer_class(self) -> type[_RedisConsumer]:
        return _JobfleetConsumer

    def heartbeat(self) -> None:
        """Mark this worker process alive, even when every thread is busy and nothing is fetched."""
        self.client.zadd(f"{self.namespace}:__heartbeats__", {self.broker_id: current_millis()})

    def run_maintenance(self) -> None:
        """Requeue unacked messages of workers whose heartbeat is stale, for every declared queue."""
        script = self.scripts["dispatch"]
        for queue_name in sorted(self.queues):
            for name in (queue_name, dq_name(queue_name)):
                script(
                    keys=[self.namespace],
                    args=[
                        "requeue",
                        current_millis(),
                        name,
                        self.broker_id,
                        self.heartbeat_timeout,
                        self.dead_message_ttl,
                        1,
                        self._max_unpack_size(),  # type: ignore[no-untyped-call]
                    ],
                )


class _JobfleetConsumer(_RedisConsumer):
    def ack(self, message: Any) -> None:
        if not getattr(message, "_jf_requeue", False):
            super().ack(message)  # type: ignore[no-untyped-call]
            return
        # The outcome of this delivery could not be recorded (or its retry could not be enqueued): put the
        # message back on its queue rather than acking it away. ConnectionClosed makes Dramatiq retry this.
        try:
            self.broker.do_requeue(self.queue_name, message.options["redis_message_id"])
        except redis.ConnectionError as exc:
            raise ConnectionClosed(exc) from None  # type: ignore[no-untyped-call]
        self.queued_message_ids.discard(message.message_id)
