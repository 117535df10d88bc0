"""AttemptStarted: the moment JobLifecycle has claimed an attempt, tell the observers (metrics, tracing, logs).

Dramatiq has no "after before_process_message" hook, so this middleware sits right after JobLifecycle in the
list; its ``before_process_message`` runs only for deliveries JobLifecycle let through."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

from jobfleet.store.delivery import state_of

Listener = Callable[[Any, Any], None]


class AttemptStarted(Middleware):
    """Calls each ``listener(message, attempt)`` once per attempt that is about to run."""

    def __init__(self, *listeners: Listener) -> None:
        self.listeners = listeners

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        """Called after JobLifecycle's before hook: notify listeners when it claimed an attempt."""
        attempt = state_of(message).attempt
        if attempt is None:
            return
        # Fail open on purpose: Dramatiq logs and swallows a listener's error, and the job still runs.
        for listener in self.listeners:
            listener(message, attempt)
