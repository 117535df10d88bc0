"""The one typed settings object, built from the environment at each entry point."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from jobfleet.core.errors import ConfigError
from jobfleet.core.redis_url import parse_redis_url

T = TypeVar("T")


def _int(name: str, raw: str, minimum: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be >= {minimum}")
    return value


def _float(name: str, raw: str, minimum: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be >= {minimum}")
    return value


def _bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (use true or false)")


def _redis_url(name: str, raw: str) -> str:
    parse_redis_url(raw, name)
    return raw


@dataclass(frozen=True)
class _Var:
    env: str
    parse: Callable[[str, str], Any]
    doc: str


def _var(env: str, parse: Callable[[str, str], Any], doc: str, default: Any) -> Any:
    return field(default=default, metadata={"var": _Var(env, parse, doc)})


def _pos_int(minimum: int = 1) -> Callable[[str, str], int]:
    return lambda name, raw: _int(name, raw, minimum)


def _pos_float(minimum: float = 0.0) -> Callable[[str, str], float]:
    return lambda name, raw: _float(name, raw, minimum)


def _str(_name: str, raw: str) -> str:
    return raw


def _choice(*allowed: str) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise ConfigError(f"{name}={raw!r} must be one of {', '.join(allowed)}")
        return value

    return parse


@dataclass(frozen=True)
class Settings:
    """Every knob of jobfleet; ``Settings.from_env(os.environ)`` at each entry point, tests build their own."""

    redis_url: str = _var(
        "REDIS_URL",
        _redis_url,
        'Redis for queues and job state: one node, redis+sentinel:// or redis+cluster:// (README "Redis topology")',
        "",
    )
    local_redis_port: int = _var(
        "JOBFLEET_LOCAL_REDIS_PORT",
        _pos_int(1),
        "Without REDIS_URL: the local port to use, or to start the embedded Redis on",
        6379,
    )
    redis_timeout_seconds: float = _var(
        "JOBFLEET_REDIS_TIMEOUT_SECONDS", _pos_float(0.05), "Socket/connect timeout for Redis calls", 2.0
    )
    namespace: str = _var("JOBFLEET_NAMESPACE", _str, "Prefix of every Redis key jobfleet writes", "jobfleet")
    api_host: str = _var("JOBFLEET_API_HOST", _str, "API bind address", "127.0.0.1")
    api_port: int = _var("JOBFLEET_API_PORT", _pos_int(0), "API port", 8000)
    api_workers: int = _var("JOBFLEET_API_WORKERS", _pos_int(), "API (granian) worker processes", 2)
    api_threads: int = _var("JOBFLEET_API_THREADS", _pos_int(), "Threads per API worker process", 4)
    max_body_bytes: int = _var("JOBFLEET_MAX_BODY_BYTES", _pos_int(), "Largest accepted request body", 1 << 20)
    worker_processes: int = _var("JOBFLEET_WORKER_PROCESSES", _pos_int(), "Worker processes", 2)
    worker_threads: int = _var("JOBFLEET_WORKER_THREADS", _pos_int(), "Threads per worker process", 8)
    worker_metrics_port: int = _var("JOBFLEET_WORKER_METRICS_PORT", _pos_int(0), "Port of the workers' /metrics", 9191)
    exporter_port: int = _var("JOBFLEET_EXPORTER_PORT", _pos_int(0), "Port of the queue exporter", 9180)
    metrics_host: str = _var(
        "JOBFLEET_METRICS_HOST", _str, "Bind address of the workers' /metrics and of the queue exporter", "127.0.0.1"
    )
    prometheus_port: int = _var("JOBFLEET_PROMETHEUS_PORT", _pos_int(1), "`make stack`: Prometheus port", 9090)
    alertmanager_port: int = _var("JOBFLEET_ALERTMANAGER_PORT", _pos_int(1), "`make stack`: Alertmanager port", 9093)
    stack_scrape_interval_seconds: int = _var(
        "JOBFLEET_STACK_SCRAPE_INTERVAL_SECONDS",
        _pos_int(1),
        "`make stack`: Prometheus scrape and rule evaluation interval",
        15,
    )
    prometheus_multiproc_dir: str = _var(
        "PROMETHEUS_MULTIPROC_DIR",
        _str,
        "Set by `jobfleet api`/`worker` to a fresh dir under JOBFLEET_DATA_DIR: per-process metric files",
        "",
    )
    shutdown_timeout_seconds: int = _var(
        "JOBFLEET_SHUTDOWN_TIMEOUT_SECONDS", _pos_int(), "How long SIGTERM waits for in-flight jobs", 30
    )
    job_retention_seconds: int = _var(
        "JOBFLEET_JOB_RETENTION_SECONDS",
        _pos_int(60),
        "How long the records of failed and cancelled jobs are kept after they end",
        7 * 86400,
    )
    succeeded_retention_seconds: int = _var(
        "JOBFLEET_SUCCEEDED_RETENTION_SECONDS",
        _pos_int(1),
        "How long a succeeded job's record (state, result, history) is kept after it ends",
        86400,
    )
    keep_succeeded_payload: bool = _var(
        "JOBFLEET_KEEP_SUCCEEDED_PAYLOAD",
        _bool,
        "Keep a succeeded job's payload (its message) in its record; off: only dead jobs keep theirs",
        False,
    )
    queue_partitions: int = _var(
        "JOBFLEET_QUEUE_PARTITIONS",
        _pos_int(1),
        "Partitions per namespace (hash tags): >1 spreads every queue over the masters of a Redis Cluster",
        1,
    )
    unknown_actor_hold_seconds: float = _var(
        "JOBFLEET_UNKNOWN_ACTOR_HOLD_SECONDS",
        _pos_float(0.1),
        "How long a job for an actor this worker lacks is held back for another worker (rolling deploys)",
        15.0,
    )
    dlq_retention_seconds: int = _var(
        "JOBFLEET_DLQ_RETENTION_SECONDS",
        _pos_int(60),
        "How long dead letters (a dead job's record, with its payload) are kept",
        14 * 86400,
    )
    idempotency_window_seconds: int = _var(
        "JOBFLEET_IDEMPOTENCY_WINDOW_SECONDS", _pos_int(1), "How long Idempotency-Keys are remembered", 86400
    )
    max_retries: int = _var("JOBFLEET_MAX_RETRIES", _pos_int(0), "Default retries after the first attempt", 5)
    min_backoff_seconds: float = _var(
        "JOBFLEET_MIN_BACKOFF_SECONDS", _pos_float(0.0), "First retry delay (before jitter)", 5.0
    )
    max_backoff_seconds: float = _var("JOBFLEET_MAX_BACKOFF_SECONDS", _pos_float(0.0), "Cap on a retry delay", 600.0)
    max_delay_seconds: int = _var(
        "JOBFLEET_MAX_DELAY_SECONDS", _pos_int(0), "Largest delay_seconds a client may ask for", 7 * 86400
    )
    heartbeat_timeout_seconds: float = _var(
        "JOBFLEET_HEARTBEAT_TIMEOUT_SECONDS",
        _pos_float(1.0),
        "A worker silent this long is dead; its unacked jobs are redelivered",
        15.0,
    )
    max_crash_redeliveries: int = _var(
        "JOBFLEET_MAX_CRASH_REDELIVERIES",
        _pos_int(1),
        "Deliveries of one attempt that may die with their worker before the job is dead-lettered",
        3,
    )
    smtp_host: str = _var("JOBFLEET_SMTP_HOST", _str, "SMTP server for email jobs", "127.0.0.1")
    smtp_port: int = _var("JOBFLEET_SMTP_PORT", _pos_int(1), "SMTP port", 25)
    smtp_sender: str = _var("JOBFLEET_SMTP_SENDER", _str, "From: address of email jobs", "jobfleet@localhost")
    smtp_username: str = _var("JOBFLEET_SMTP_USERNAME", _str, "SMTP user (empty: no auth)", "")
    smtp_password: str = _var("JOBFLEET_SMTP_PASSWORD", _str, "SMTP password", "")
    smtp_starttls: bool = _var("JOBFLEET_SMTP_STARTTLS", _bool, "Use STARTTLS for SMTP", False)
    report_dir: str = _var("JOBFLEET_REPORT_DIR", _str, "Where report artifacts are written", ".jobfleet/reports")
    data_dir: str = _var("JOBFLEET_DATA_DIR", _str, "Local state: embedded Redis, logs", ".jobfleet")
    log_level: str = _var("JOBFLEET_LOG_LEVEL", _str, "Log level", "INFO")
    # --- security and limits (README "Security") ---
    auth: str = _var(
        "JOBFLEET_AUTH",
        _choice("auto", "enabled", "disabled"),
        "API auth: enabled, disabled (local development only), or auto (enabled when a keys file is set)",
        "auto",
    )
    api_keys_file: str = _var(
        "JOBFLEET_API_KEYS_FILE", _str, "JSON or TOML file of API keys (caller, sha256 of the key, scopes)", ""
    )
    rate_limit_per_second: float = _var(
        "JOBFLEET_RATE_LIMIT_PER_SECOND", _pos_float(0.0), "Requests per second per caller (0: no rate limit)", 500.0
    )
    rate_limit_burst: int = _var(
        "JOBFLEET_RATE_LIMIT_BURST", _pos_int(1), "Requests a caller may send at once (token bucket size)", 1000
    )
    max_queue_depth: int = _var(
        "JOBFLEET_MAX_QUEUE_DEPTH",
        _pos_int(0),
        "Jobs waiting (ready + delayed) on one partition of a queue before enqueue answers 503 (0: no limit)",
        100_000,
    )
    accept_replicas: int = _var(
        "JOBFLEET_ACCEPT_REPLICAS",
        _pos_int(0),
        "Replicas that must have a job before the API answers 202 (Redis WAIT; 0: the primary's word is enough)",
        0,
    )
    accept_replicas_timeout_ms: int = _var(
        "JOBFLEET_ACCEPT_REPLICAS_TIMEOUT_MS",
        _pos_int(1),
        "How long an enqueue waits for those replicas before it answers 503 (the job exists; retry with its key)",
        500,
    )
    max_json_depth: int = _var("JOBFLEET_MAX_JSON_DEPTH", _pos_int(1), "Deepest nesting of a request body", 32)
    max_json_items: int = _var(
        "JOBFLEET_MAX_JSON_ITEMS", _pos_int(1), "Most keys + array elements in a request body", 10_000
    )
    max_json_string: int = _var(
        "JOBFLEET_MAX_JSON_STRING", _pos_int(1), "Longest string (or object key) in a request body", 262_144
    )
    webhook_allowed_hosts: str = _var(
        "JOBFLEET_WEBHOOK_ALLOWED_HOSTS",
        _str,
        "Comma-separated hosts (example.com, *.example.com) or CIDRs webhooks may call; * = any public host",
        "*",
    )
    webhook_allowed_networks: str = _var(
        "JOBFLEET_WEBHOOK_ALLOWED_NETWORKS",
        _str,
        "Comma-separated CIDRs webhooks may call although loopback/private/link-local (e.g. 10.1.0.0/16)",
        "",
    )
    redis_ca_file: str = _var(
        "JOBFLEET_REDIS_CA_FILE", _str, "CA bundle to verify a rediss:// server (empty: system CAs)", ""
    )
    redis_password_file: str = _var(
        "JOBFLEET_REDIS_PASSWORD_FILE", _str, "File holding the Redis password (instead of one in REDIS_URL)", ""
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``); raise ConfigError naming a bad variable."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            var: _Var = f.metadata["var"]
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
    def auth_enabled(self) -> bool:
        """Whether the API requires an API key: explicit, or ``auto`` with a keys file configured."""
        return self.auth == "enabled" or (self.auth == "auto" and bool(self.api_keys_file))

    @classmethod
    def documentation(cls) -> list[tuple[str, str, str]]:
        """(variable, default, meaning) for every setting, for the README and ``jobfleet config``."""
        return [(f.metadata["var"].env, repr(f.default), f.metadata["var"].doc) for f in fields(cls)]
