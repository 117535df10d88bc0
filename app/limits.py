"""Request limits: the rate limit's Admission (applied by app/auth.py to every request to a non-public route, one
Redis call), per-queue backpressure (in the submit script), and bounds on the shape of a JSON body checked before
anything touches Redis."""

from __future__ import annotations

import math
from typing import Any

import redis
from flask import Flask, current_app

from jobfleet.app.problems import Problem
from jobfleet.core.settings import Settings
from jobfleet.store.keys import Keys
from jobfleet.store.rate_limit import Admission


def check_json_shape(value: Any, *, max_depth: int, max_items: int, max_string: int) -> None:
    """Raise a 400 problem when ``value`` nests deeper, has more members or longer strings than allowed."""
    items = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if len(node) > max_string:
                raise _too_complex(f"a string is {len(node)} characters long; the limit is {max_string}")
            continue
        if not isinstance(node, dict | list):
            continue
        if depth > max_depth:
            raise _too_complex(f"the JSON nests deeper than {max_depth} levels")
        items += len(node)
        if items > max_items:
            raise _too_complex(f"the JSON has more than {max_items} keys and array elements in total")
        if isinstance(node, dict):
            for key, child in node.items():
                if len(key) > max_string:
                    raise _too_complex(f"an object key is {len(key)} characters long; the limit is {max_string}")
                stack.append((child, depth + 1))
        else:
            stack.extend((child, depth + 1) for child in node)


def _too_complex(detail: str) -> Problem:
    return Problem(400, "json-too-complex", "Bad Request", f"{detail}; send a smaller document")


def check_body_shape(value: Any) -> None:
    """check_json_shape with the limits configured for the current app."""
    settings: Settings = current_app.extensions["jobfleet"].settings
    check_json_shape(
        value,
        max_depth=settings.max_json_depth,
        max_items=settings.max_json_items,
        max_string=settings.max_json_string,
    )


def retry_after(seconds: float) -> str:
    """A Retry-After value (whole seconds, at least 1)."""
    return str(max(1, math.ceil(seconds)))


def init_app(app: Flask, settings: Settings, client: redis.Redis) -> Admission:
    """The Admission of ``app``: the per-caller (or per-address) token bucket that app/auth.py takes from."""
    # Without auth every request is the one caller "anonymous" (local development): no rate limit to apply.
    rate = settings.rate_limit_per_second if settings.auth_enabled else 0.0
    limiter = Admission(client, Keys(settings.namespace), rate_per_second=rate, burst=settings.rate_limit_burst)
    app.extensions["jobfleet_admission"] = limiter
    return limiter
