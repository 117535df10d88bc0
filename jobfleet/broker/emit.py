"""Dramatiq's middleware signals, sent only to the middleware that handle them.

``dramatiq.Broker.emit_before``/``emit_after`` call the hook of every middleware for every signal, most of them
Dramatiq's no-op defaults: with jobfleet's eleven middleware that is ~40 empty calls per job. This sends each signal
to the middleware whose class overrides its hook, in the same order, with the same error handling (a
``MiddlewareError`` from a ``before_*`` hook propagates, anything else is logged as Dramatiq logs it). The list of
handlers is cached per signal and rebuilt whenever the middleware list changes (``add_middleware``, or a list
mutated in place: its length is checked on every call)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dramatiq.middleware import Middleware, MiddlewareError

Handler = tuple[Middleware, Callable[..., Any]]


def handlers(middleware: list[Middleware], name: str) -> list[Handler]:
    """The middleware of ``middleware`` whose class overrides hook ``name``, with the bound hook, in list order."""
    default = getattr(Middleware, name, None)
    out: list[Handler] = []
    for m in middleware:
        hook = getattr(m, name)
        if default is None or getattr(type(m), name, None) is not default or name in getattr(m, "__dict__", {}):
            out.append((m, hook))
    return out


class SignalCache:
    """Per-signal handler lists of one broker's middleware list."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[int, int, list[Handler]]] = {}

    def clear(self) -> None:
        """Forget every list (the middleware changed)."""
        self._cache.clear()

    def get(self, middleware: list[Middleware], name: str, *, reverse: bool = False) -> list[Handler]:
        """The handlers of ``name`` (reversed for ``after_*`` signals), from the cache while the list is unchanged."""
        cached = self._cache.get(name)
        if cached is not None and cached[0] == id(middleware) and cached[1] == len(middleware):
            return cached[2]
        found = handlers(middleware, name)
        if reverse:
            found.reverse()
        self._cache[name] = (id(middleware), len(middleware), found)
        return found


def emit_before(broker: Any, cache: SignalCache, signal: str, *args: Any, **kwargs: Any) -> None:
    """Dramatiq's ``emit_before``, to the handlers only."""
    name = "before_" + signal
    for middleware, hook in cache.get(broker.middleware, name):
        try:
            hook(broker, *args, **kwargs)
        except MiddlewareError:
            raise
        except Exception:
            broker.logger.critical("Unexpected failure in %s of %r.", name, middleware, exc_info=True)


def emit_after(broker: Any, cache: SignalCache, signal: str, *args: Any, **kwargs: Any) -> None:
    """Dramatiq's ``emit_after`` (last middleware first), to the handlers only."""
    name = "after_" + signal
    for middleware, hook in cache.get(broker.middleware, name, reverse=True):
        try:
            hook(broker, *args, **kwargs)
        except Exception:
            broker.logger.critical("Unexpected failure in %s of %r.", name, middleware, exc_info=True)
