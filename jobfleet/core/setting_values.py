"""How a setting is declared (its variable, parser and documentation) and the parsers of its values: each bad value
is a ConfigError that names the variable and says what to write instead."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jobfleet.core.errors import ConfigError
from jobfleet.core.redis_url import parse_redis_url


def int_value(name: str, raw: str, minimum: int) -> int:
    """``raw`` as an integer >= ``minimum``."""
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be >= {minimum}")
    return value


def float_value(name: str, raw: str, minimum: float) -> float:
    """``raw`` as a number >= ``minimum``."""
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be >= {minimum}")
    return value


def bool_value(name: str, raw: str) -> bool:
    """``raw`` as a boolean (true/false, yes/no, on/off, 1/0)."""
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (use true or false)")


def redis_url_value(name: str, raw: str) -> str:
    """``raw`` checked as a REDIS_URL (jobfleet.core.redis_url)."""
    parse_redis_url(raw, name)
    return raw


@dataclass(frozen=True)
class Var:
    """A setting's environment variable, parser and one-line documentation."""

    env: str
    parse: Callable[[str, str], Any]
    doc: str


def setting(env: str, parse: Callable[[str, str], Any], doc: str, default: Any) -> Any:
    """A Settings field read from ``env`` with ``parse``."""
    return field(default=default, metadata={"var": Var(env, parse, doc)})


def at_least(minimum: int = 1) -> Callable[[str, str], int]:
    """A parser of integers >= ``minimum``."""
    return lambda name, raw: int_value(name, raw, minimum)


def at_least_float(minimum: float = 0.0) -> Callable[[str, str], float]:
    """A parser of numbers >= ``minimum``."""
    return lambda name, raw: float_value(name, raw, minimum)


def text(_name: str, raw: str) -> str:
    """Any string."""
    return raw


def one_of(*allowed: str) -> Callable[[str, str], str]:
    """A parser of one of ``allowed`` (case-insensitive)."""

    def parse(name: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise ConfigError(f"{name}={raw!r} must be one of {', '.join(allowed)}")
        return value

    return parse
