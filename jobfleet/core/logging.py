"""Structured JSON logs (structlog) for every process, with secrets redacted before rendering."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = re.compile(r"(authorization|password|secret|token|api[_-]?key|cookie)", re.IGNORECASE)
_URL_USERINFO = re.compile(r"([a-z][a-z0-9+.-]*://)([^/@\s:]*):([^/@\s]*)@", re.IGNORECASE)
_URL_USER_ONLY = re.compile(r"([a-z][a-z0-9+.-]*://)[^/@\s:]+@", re.IGNORECASE)
# Secrets inside rendered text: "'Authorization': 'Bearer x'", "password=x", "token: x" (Dramatiq logs a
# message's kwargs, webhook headers included), and bare "Bearer x" / "Basic x" credentials.
_INLINE_SECRET = re.compile(
    r"((?:authorization|password|passwd|secret|token|api[_-]?key|cookie)['\"]?\s*[:=]\s*['\"]?)"
    r"(?:(?:bearer|basic)\s+)?[^'\",\s})&]+",
    re.IGNORECASE,
)
_CREDENTIALS = re.compile(r"\b(bearer|basic)\s+[a-z0-9._~+/=-]+", re.IGNORECASE)
# Every word the two patterns above need: text without any of them has nothing to mask (one search, not two subs,
# for the short values of most lines, e.g. the access log's).
_MAYBE_INLINE = re.compile(r"authorization|password|passwd|secret|token|api[_-]?key|cookie|bearer|basic", re.IGNORECASE)


def scrub(value: Any) -> Any:
    """``value`` with secret-looking keys, URL passwords and inline credentials masked, recursively."""
    if isinstance(value, str):
        if "@" in value:
            value = _URL_USER_ONLY.sub(r"\1***@", _URL_USERINFO.sub(r"\1\2:***@", value))
        if not _MAYBE_INLINE.search(value):
            return value
        return _CREDENTIALS.sub(r"\1 ***", _INLINE_SECRET.sub(r"\1***", value))
    if isinstance(value, dict):
        return {k: "***" if isinstance(k, str) and _SECRET_KEYS.search(k) else scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


def redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask secret-looking keys and credentials in values (nested ones and text too)."""
    for key, value in list(event.items()):
        if _SECRET_KEYS.search(key):
            event[key] = "***"
        elif isinstance(value, str | dict | list | tuple):
            event[key] = scrub(value)
    return event


def configure_logging(level: str = "INFO", *, component: str) -> None:
    """Send structlog and stdlib logging (Dramatiq, gunicorn) to stdout as one JSON object per line."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # Tracebacks are rendered before redaction: exception messages can hold URLs and headers too.
        structlog.processors.format_exc_info,
        redact,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(component=component)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
