"""The objects the API's views share, kept in ``app.extensions["jobfleet"]``."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import current_app

from jobfleet.core.settings import Settings
from jobfleet.store.jobs import JobStore


@dataclass(frozen=True)
class Services:
    """Settings, Redis client and job store of one API process."""

    settings: Settings
    client: redis.Redis
    store: JobStore


def services() -> Services:
    """The Services of the current app."""
    found: Services = current_app.extensions["jobfleet"]
    return found
