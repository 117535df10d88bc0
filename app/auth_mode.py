"""Whether the API may serve without auth (only when JOBFLEET_AUTH=disabled says so), and the loud warning when it
does. Checked when the app is built and by `jobfleet api` before it starts the server."""

from __future__ import annotations

import logging
import sys

from jobfleet.core.errors import ConfigError
from jobfleet.core.settings import Settings

log = logging.getLogger("jobfleet.auth")


def check_mode(settings: Settings) -> None:
    """Refuse to build an API without auth unless JOBFLEET_AUTH=disabled says so explicitly."""
    # Not the bind address: JOBFLEET_API_HOST is only what `jobfleet api` passes to granian, and any other server
    # command line may serve this app anywhere. `jobfleet run`/`stack` know their bind and say disabled themselves.
    if settings.auth == "auto" and not settings.api_keys_file:
        raise ConfigError(
            "JOBFLEET_AUTH=auto and no JOBFLEET_API_KEYS_FILE: the API does not serve without auth. Issue keys with "
            "`jobfleet keys issue --caller <tenant> --scope jobs:write --file <path>` and set "
            "JOBFLEET_API_KEYS_FILE=<path>, or set JOBFLEET_AUTH=disabled for local development"
        )


def warn_disabled() -> None:
    """Say loudly, on stderr and in the log, that the API accepts anyone."""
    message = (
        "!!! jobfleet API AUTHENTICATION IS DISABLED: anyone who can reach this port can enqueue, read, cancel "
        "and replay jobs. Fine for local development only; set JOBFLEET_API_KEYS_FILE for anything else. !!!"
    )
    print(message, file=sys.stderr, flush=True)
    log.warning(message)
