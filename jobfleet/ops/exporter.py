"""The queue exporter (``jobfleet exporter``): reads queues, dead letters, running jobs and worker heartbeats from
Redis at scrape time (``jobfleet.queue_state``: two pipelined round trips whose size grows with queues times live
workers, never with the number of messages). When Redis cannot be read, the scrape still answers:
``jobfleet_exporter_redis_up 0`` and the error counted, the Redis-derived gauges absent."""

from __future__ import annotations

import platform
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from importlib import metadata

import redis
import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from jobfleet.core.errors import StoreUnavailable
from jobfleet.core.redis_client import make_client
from jobfleet.core.settings import Settings
from jobfleet.core.telemetry import serve_metrics
from jobfleet.store.factory import keys_for
from jobfleet.store.keys import Keys
from jobfleet.store.memory import redis_memory
from jobfleet.store.queue_state import QueueReader, QueueSpec, Snapshot, queue_specs
from jobfleet.store.scripts import redis_errors

log = structlog.get_logger(__name__)


class QueueCollector(Collector):
    """A custom collector: every ``collect()`` (one per scrape) reads Redis afresh."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        queues: Iterable[QueueSpec],
        *,
        dlq_retention_seconds: float,
        heartbeat_timeout_seconds: float,
    ) -> None:
        self.queues = list(queues)
        self.reader = QueueReader(
            client,
            keys,
            self.queues,
            dlq_retention_seconds=dlq_retention_seconds,
            heartbeat_timeout_seconds=heartbeat_timeout_seconds,
        )
        self.dlq_retention_seconds = dlq_retention_seconds
        self.heartbeat_timeout_seconds = heartbeat_timeout_seconds
        self.scrape_errors = 0
        self._lock = threading.Lock()
        try:
            self.version = metadata.version("jobfleet")
        except metadata.PackageNotFoundError:
            self.version = "unknown"

    def read(self) -> Snapshot:
        """Read the current state from Redis (raise StoreUnavailable when it cannot), for the job types' queues and
        every queue producers declared (teams' own actors)."""
        with redis_errors("read the queue registry"):
            raw = self.reader.client.smembers(self.reader.keys.queues())
        declared = {m.decode() for m in raw}  # type: ignore[union-attr]
        known = {q.name for q in self.queues}
        if not declared <= known:
            self.queues = queue_specs(declared | known)
            self.reader.queues = self.queues
        return self.reader.read()

    def collect(self) -> Iterator[Metric]:
        """Called by each scrape: read Redis and yield every exporter metric."""
        started = time.perf_counter()
        snapshot: Snapshot | None = None
        try:
            snapshot = self.read()
        except (StoreUnavailable, redis.RedisError, OSError) as exc:
            with self._lock:
                self.scrape_errors += 1
            log.warning("exporter could not read redis", error=f"{type(exc).__name__}: {exc}")
        duration = time.perf_counter() - started

        info = GaugeMetricFamily("jobfleet_build_info", "Always 1", labels=["version", "python"])
        info.add_metric([self.version, platform.python_version()], 1)
        yield info
        yield GaugeMetricFamily(
            "jobfleet_exporter_scrape_duration_seconds", "Time the last scrape spent reading Redis", value=duration
        )
        yield CounterMetricFamily(
            "jobfleet_exporter_scrape_errors", "Scrapes that failed to read Redis", value=self.scrape_errors
        )
        yield GaugeMetricFamily(
            "jobfleet_exporter_redis_up", "1 when the last scrape reached Redis", value=1 if snapshot else 0
        )
        yield GaugeMetricFamily(
            "jobfleet_dlq_retention_seconds",
            "How long dead letters are kept before expiry",
            value=self.dlq_retention_seconds,
        )
        limits = GaugeMetricFamily(
            "jobfleet_job_time_limit_seconds", "The actor's time limit", labels=["queue", "actor"]
        )
        for q in self.queues:
            for actor, seconds in q.actors.items():
                limits.add_metric([q.name, actor], seconds)
        yield limits
        if snapshot is not None:
            yield from self._redis_metrics(snapshot)
            yield from self._memory_metrics()

    def _memory_metrics(self) -> Iterator[Metric]:
        try:
            memory = redis_memory(self.reader.client)
        except StoreUnavailable:
            return
        yield GaugeMetricFamily(
            "jobfleet_redis_memory_used_bytes", "Redis used_memory (the fullest node)", value=memory.used_bytes
        )
        yield GaugeMetricFamily(
            "jobfleet_redis_memory_max_bytes", "Redis maxmemory of that node (0: no limit)", value=memory.max_bytes
        )
        yield GaugeMetricFamily(
            "jobfleet_redis_memory_used_ratio",
            "used_memory / maxmemory of the fullest node (0 without maxmemory); at 1 writes are refused",
            value=memory.ratio,
        )

    def _redis_metrics(self, s: Snapshot) -> Iterator[Metric]:
        per_queue: list[tuple[str, str, dict[str, int] | dict[str, float]]] = [
            ("jobfleet_queue_depth", "Messages ready to run", s.depth),
            ("jobfleet_queue_delayed", "Messages waiting for their eta (delay, backoff)", s.delayed),
            ("jobfleet_queue_in_flight", "Messages fetched by workers and not yet acked", s.in_flight),
            (
                "jobfleet_queue_oldest_message_age_seconds",
                "Age of the oldest ready message (queue lag), 0 when empty",
                s.oldest_age,
            ),
            ("jobfleet_dlq_depth", "Dead letters held", s.dlq_depth),
            ("jobfleet_dlq_oldest_age_seconds", "Age of the oldest dead letter, 0 when empty", s.dlq_oldest_age),
        ]
        for name, doc, values in per_queue:
            family = GaugeMetricFamily(name, doc, labels=["queue"])
            for queue, value in values.items():
                family.add_metric([queue], value)
            yield family
        partition_depth = GaugeMetricFamily(
            "jobfleet_queue_partition_depth",
            "Jobs ready to run in one partition of a queue",
            labels=["queue", "partition"],
        )
        partition_age = GaugeMetricFamily(
            "jobfleet_queue_partition_oldest_message_age_seconds",
            "Age of the oldest ready job in one partition of a queue, 0 when empty",
            labels=["queue", "partition"],
        )
        for (queue, partition), depth in sorted(s.depth_by_partition.items()):
            partition_depth.add_metric([queue, str(partition)], depth)
            partition_age.add_metric([queue, str(partition)], s.oldest_age_by_partition.get((queue, partition), 0.0))
        yield partition_depth
        yield partition_age
        held = CounterMetricFamily(
            "jobfleet_jobs_held_back",
            "Times a job was held back because the worker that took it lacks its actor (a deploy in progress?)",
            labels=["queue", "actor"],
        )
        for (queue, actor), count in sorted(s.held_back.items()):
            held.add_metric([queue, actor], count)
        yield held
        longest = GaugeMetricFamily(
            "jobfleet_job_running_longest_seconds",
            "How long the longest-running job has been running",
            labels=["queue", "actor"],
        )
        for q in self.queues:
            for actor in q.actors:
                longest.add_metric([q.name, actor], s.running_longest.get((q.name, actor), 0.0))
        yield longest
        yield GaugeMetricFamily(
            "jobfleet_workers_live", "Worker processes with a fresh heartbeat", value=s.workers_live
        )


def build_registry(settings: Settings, client: redis.Redis | None = None) -> CollectorRegistry:
    """A registry holding the queue collector for ``settings`` (the job types' queues and time limits)."""

    registry = CollectorRegistry()
    registry.register(
        QueueCollector(
            client or make_client(settings),
            keys_for(settings),
            queue_specs(),
            dlq_retention_seconds=settings.dlq_retention_seconds,
            heartbeat_timeout_seconds=settings.heartbeat_timeout_seconds,
        )
    )
    return registry


def serve(settings: Settings) -> None:
    """Serve the exporter at ``JOBFLEET_METRICS_HOST:JOBFLEET_EXPORTER_PORT`` until SIGTERM or Ctrl-C."""

    server = serve_metrics(build_registry(settings), settings.exporter_port, settings.metrics_host)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.info("queue exporter listening", host=settings.metrics_host, port=settings.exporter_port)
    stop.wait()
    server.shutdown()
