"""The one typed settings object, built from the environment at each entry point."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from jobfleet.core.errors import ConfigError
from jobfleet.core.setting_values import (
    Var,
    at_least,
    at_least_float,
    bool_value,
    one_of,
    redis_url_value,
    setting,
    text,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    """Every knob of jobfleet; ``Settings.from_env(os.environ)`` at each entry point, tests build their own."""

    redis_url: str = setting(
        "REDIS_URL",
        redis_url_value,
        'Redis for queues and job state: one node, redis+sentinel:// or redis+cluster:// (README "Redis topology")',
        "",
    )
    local_redis_port: int = setting(
        "JOBFLEET_LOCAL_REDIS_PORT",
        at_least(1),
        "Without REDIS_URL: the local port to use, or to start the embedded Redis on",
        6379,
    )
    redis_timeout_seconds: float = setting(
        "JOBFLEET_REDIS_TIMEOUT_SECONDS", at_least_float(0.05), "Socket/connect timeout for Redis calls", 2.0
    )
    namespace: str = setting("JOBFLEET_NAMESPACE", text, "Prefix of every Redis key jobfleet writes", "jobfleet")
    api_host: str = setting("JOBFLEET_API_HOST", text, "API bind address", "127.0.0.1")
    api_port: int = setting("JOBFLEET_API_PORT", at_least(0), "API port", 8000)
    api_workers: int = setting("JOBFLEET_API_WORKERS", at_least(), "API (granian) worker processes", 2)
    api_threads: int = setting("JOBFLEET_API_THREADS", at_least(), "Threads per API worker process", 4)
    max_body_bytes: int = setting("JOBFLEET_MAX_BODY_BYTES", at_least(), "Largest accepted request body", 1 << 20)
    worker_processes: int = setting("JOBFLEET_WORKER_PROCESSES", at_least(), "Worker processes", 2)
    worker_threads: int = setting("JOBFLEET_WORKER_THREADS", at_least(), "Threads per worker process", 8)
    worker_metrics_port: int = setting(
        "JOBFLEET_WORKER_METRICS_PORT", at_least(0), "Port of the workers' /metrics", 9191
    )
    exporter_port: int = setting("JOBFLEET_EXPORTER_PORT", at_least(0), "Port of the queue exporter", 9180)
    metrics_host: str = setting(
        "JOBFLEET_METRICS_HOST", text, "Bind address of the workers' /metrics and of the queue exporter", "127.0.0.1"
    )
    prometheus_port: int = setting("JOBFLEET_PROMETHEUS_PORT", at_least(1), "`make stack`: Prometheus port", 9090)
    alertmanager_port: int = setting("JOBFLEET_ALERTMANAGER_PORT", at_least(1), "`make stack`: Alertmanager port", 9093)
    stack_scrape_interval_seconds: int = setting(
        "JOBFLEET_STACK_SCRAPE_INTERVAL_SECONDS",
        at_least(1),
        "`make stack`: Prometheus scrape and rule evaluation interval",
        15,
    )
    prometheus_multiproc_dir: str = setting(
        "PROMETHEUS_MULTIPROC_DIR",
        text,
        "Set by `jobfleet api`/`worker` to a fresh dir under JOBFLEET_DATA_DIR: per-process metric files",
        "",
    )
    shutdown_timeout_seconds: int = setting(
        "JOBFLEET_SHUTDOWN_TIMEOUT_SECONDS", at_least(), "How long SIGTERM waits for in-flight jobs", 30
    )
    job_retention_seconds: int = setting(
        "JOBFLEET_JOB_RETENTION_SECONDS",
        at_least(60),
        "How long the records of failed and cancelled jobs are kept after they end",
        7 * 86400,
    )
    succeeded_retention_seconds: int = setting(
        "JOBFLEET_SUCCEEDED_RETENTION_SECONDS",
        at_least(1),
        "How long a succeeded job's record (state, result, history) is kept after it ends",
        86400,
    )
    keep_succeeded_payload: bool = setting(
        "JOBFLEET_KEEP_SUCCEEDED_PAYLOAD",
        bool_value,
        "Keep a succeeded job's payload (its message) in its record; off: only dead jobs keep theirs",
        False,
    )
    queue_partitions: int = setting(
        "JOBFLEET_QUEUE_PARTITIONS",
        at_least(1),
        "Partitions per namespace (hash tags): >1 spreads every queue over the masters of a Redis Cluster",
        1,
    )
    unknown_actor_hold_seconds: float = setting(
        "JOBFLEET_UNKNOWN_ACTOR_HOLD_SECONDS",
        at_least_float(0.1),
        "How long a job for an actor this worker lacks is held back for another worker (rolling deploys)",
        15.0,
    )
    dlq_retention_seconds: int = setting(
        "JOBFLEET_DLQ_RETENTION_SECONDS",
        at_least(60),
        "How long dead letters (a dead job's record, with its payload) are kept",
        14 * 86400,
    )
    idempotency_window_seconds: int = setting(
        "JOBFLEET_IDEMPOTENCY_WINDOW_SECONDS", at_least(1), "How long Idempotency-Keys are remembered", 86400
    )
    max_retries: int = setting("JOBFLEET_MAX_RETRIES", at_least(0), "Default retries after the first attempt", 5)
    min_backoff_seconds: float = setting(
        "JOBFLEET_MIN_BACKOFF_SECONDS", at_least_float(0.0), "First retry delay (before jitter)", 5.0
    )
    max_backoff_seconds: float = setting(
        "JOBFLEET_MAX_BACKOFF_SECONDS", at_least_float(0.0), "Cap on a retry delay", 600.0
    )
    max_delay_seconds: int = setting(
        "JOBFLEET_MAX_DELAY_SECONDS", at_least(0), "Largest delay_seconds a client may ask for", 7 * 86400
    )
    heartbeat_timeout_seconds: float = setting(
        "JOBFLEET_HEARTBEAT_TIMEOUT_SECONDS",
        at_least_float(1.0),
        "A worker silent this long is dead; its unacked jobs are redelivered",
        15.0,
    )
    max_crash_redeliveries: int = setting(
        "JOBFLEET_MAX_CRASH_REDELIVERIES",
        at_least(1),
        "Deliveries of one attempt that may die with their worker before the job is dead-lettered",
        3,
    )
    smtp_host: str = setting("JOBFLEET_SMTP_HOST", text, "SMTP server for email jobs", "127.0.0.1")
    smtp_port: int = setting("JOBFLEET_SMTP_PORT", at_least(1), "SMTP port", 25)
    smtp_sender: str = setting("JOBFLEET_SMTP_SENDER", text, "From: address of email jobs", "jobfleet@localhost")
    smtp_username: str = setting("JOBFLEET_SMTP_USERNAME", text, "SMTP user (empty: no auth)", "")
    smtp_password: str = setting("JOBFLEET_SMTP_PASSWORD", text, "SMTP password", "")
    smtp_starttls: bool = setting("JOBFLEET_SMTP_STARTTLS", bool_value, "Use STARTTLS for SMTP", False)
    report_dir: str = setting("JOBFLEET_REPORT_DIR", text, "Where report artifacts are written", ".jobfleet/reports")
    data_dir: str = setting("JOBFLEET_DATA_DIR", text, "Local state: embedded Redis, logs", ".jobfleet")
    log_level: str = setting("JOBFLEET_LOG_LEVEL", text, "Log level", "INFO")
    # --- security and limits (README "Security") ---
    auth: str = setting(
        "JOBFLEET_AUTH",
        one_of("auto", "enabled", "disabled"),
        "API auth: enabled, disabled (local development only), or auto (on with a keys file, else the API won't start)",
        "auto",
    )
    api_keys_file: str = setting(
        "JOBFLEET_API_KEYS_FILE",
        text,
        "JSON or TOML file of API keys (caller, sha256, scopes, expiry); reloaded within a second of a change",
        "",
    )
    rate_limit_per_second: float = setting(
        "JOBFLEET_RATE_LIMIT_PER_SECOND",
        at_least_float(0.0),
        "Requests per second per caller, or per client address without a valid key (0: no rate limit)",
        500.0,
    )
    rate_limit_burst: int = setting(
        "JOBFLEET_RATE_LIMIT_BURST",
        at_least(1),
        "Requests a caller (or address) may send at once (token bucket size)",
        1000,
    )
    max_queue_depth: int = setting(
        "JOBFLEET_MAX_QUEUE_DEPTH",
        at_least(0),
        "Jobs due now (not scheduled for later) on one partition of a queue before enqueue answers 503 (0: no limit)",
        100_000,
    )
    tenant_max_outstanding: int = setting(
        "JOBFLEET_TENANT_MAX_OUTSTANDING",
        at_least(0),
        "Jobs one caller may have waiting or running (0: no limit); over it, enqueue answers 429",
        0,
    )
    tenant_max_delayed: int = setting(
        "JOBFLEET_TENANT_MAX_DELAYED",
        at_least(0),
        "Scheduled (delayed) jobs one caller may have waiting (0: no limit)",
        0,
    )
    tenant_max_bytes: int = setting(
        "JOBFLEET_TENANT_MAX_BYTES",
        at_least(0),
        "Bytes of payload one caller's waiting and running jobs may hold in Redis (0: no limit)",
        0,
    )
    accept_replicas: int = setting(
        "JOBFLEET_ACCEPT_REPLICAS",
        at_least(0),
        "Replicas that must have a job before the API answers 202 (Redis WAIT; 0: the primary's word is enough)",
        0,
    )
    accept_replicas_timeout_ms: int = setting(
        "JOBFLEET_ACCEPT_REPLICAS_TIMEOUT_MS",
        at_least(1),
        "How long an enqueue waits for those replicas before it answers 503 (the job exists; retry with its key)",
        500,
    )
    max_json_depth: int = setting("JOBFLEET_MAX_JSON_DEPTH", at_least(1), "Deepest nesting of a request body", 32)
    max_json_items: int = setting(
        "JOBFLEET_MAX_JSON_ITEMS", at_least(1), "Most keys + array elements in a request body", 10_000
    )
    max_json_string: int = setting(
        "JOBFLEET_MAX_JSON_STRING", at_least(1), "Longest string (or object key) in a request body", 262_144
    )
    webhook_allowed_hosts: str = setting(
        "JOBFLEET_WEBHOOK_ALLOWED_HOSTS",
        text,
        "Comma-separated hosts (example.com, *.example.com) or CIDRs webhooks may call; * = any public host",
        "*",
    )
    webhook_allowed_networks: str = setting(
        "JOBFLEET_WEBHOOK_ALLOWED_NETWORKS",
        text,
        "Comma-separated CIDRs webhooks may call although loopback/private/link-local (e.g. 10.1.0.0/16)",
        "",
    )
    redis_ca_file: str = setting(
        "JOBFLEET_REDIS_CA_FILE", text, "CA bundle to verify a rediss:// server (empty: system CAs)", ""
    )
    redis_password_file: str = setting(
        "JOBFLEET_REDIS_PASSWORD_FILE", text, "File holding the Redis password (instead of one in REDIS_URL)", ""
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``); raise ConfigError naming a bad variable."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            var: Var = f.metadata["var"]
            raw = env.get(var.env)
            if raw is not None and raw != "":
                values[f.name] = var.parse(var.env, raw)
        values.update(overrides)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Check cross-field rules; raise ConfigError naming the variable to fix."""
        if self.max_backoff_seconds < self.min_backoff_seconds:
            raise ConfigError(
                "JOBFLEET_MAX_BACKOFF_SECONDS must be >= JOBFLEET_MIN_BACKOFF_SECONDS "
                f"(got {self.max_backoff_seconds} < {self.min_backoff_seconds})"
            )
        if self.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ConfigError(f"JOBFLEET_LOG_LEVEL={self.log_level!r} must be DEBUG, INFO, WARNING or ERROR")
        if self.auth == "enabled" and not self.api_keys_file:
            raise ConfigError(
                "JOBFLEET_AUTH=enabled needs JOBFLEET_API_KEYS_FILE (issue keys with `jobfleet keys issue`)"
            )
        if self.queue_partitions > 1024:
            raise ConfigError(f"JOBFLEET_QUEUE_PARTITIONS={self.queue_partitions} must be <= 1024")
        if not self.namespace or ":" in self.namespace or "{" in self.namespace or "}" in self.namespace:
            raise ConfigError(
                f"JOBFLEET_NAMESPACE={self.namespace!r} must be non-empty and contain no ':', '{{' or '}}'"
            )

    @property
    def effective_redis_url(self) -> str:
        """The Redis URL to use (the default local one when REDIS_URL is unset)."""
        return self.redis_url or f"redis://127.0.0.1:{self.local_redis_port}/0"

    @property
    def quotas_per_partition(self) -> tuple[int, int, int]:
        """The tenant limits as each partition enforces them (a caller's jobs spread evenly over the partitions)."""
        p = self.queue_partitions
        outstanding, delayed, size = self.tenant_max_outstanding, self.tenant_max_delayed, self.tenant_max_bytes
        return -(-outstanding // p), -(-delayed // p), -(-size // p)

    @property
    def auth_enabled(self) -> bool:
        """Whether the API requires an API key: explicit, or ``auto`` with a keys file configured."""
        return self.auth == "enabled" or (self.auth == "auto" and bool(self.api_keys_file))

    @classmethod
    def documentation(cls) -> list[tuple[str, str, str]]:
        """(variable, default, meaning) for every setting, for the README and ``jobfleet config``."""
        return [(f.metadata["var"].env, repr(f.default), f.metadata["var"].doc) for f in fields(cls)]
