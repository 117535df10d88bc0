"""API keys and scopes: who is calling, and may they do this? Keys are loaded once per process from
JOBFLEET_API_KEYS_FILE (hashes only); a request costs one SHA-256 and one dict lookup, never a Redis call."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

from flask import Flask, g, request

from jobfleet.app.problems import Problem
from jobfleet.core.api_keys import ANONYMOUS, DLQ_ADMIN, JOBS_READ, JOBS_WRITE, Principal, load_keys
from jobfleet.core.errors import ConfigError, JobNotFound
from jobfleet.core.settings import Settings

# Flask endpoint -> the scope it needs; endpoints not listed (health, metrics, openapi) are public.
ENDPOINT_SCOPES: Mapping[str, str] = {
    "jobs.enqueue": JOBS_WRITE,
    "jobs.cancel": JOBS_WRITE,
    "jobs.status": JOBS_READ,
    "jobs.events": JOBS_READ,
    "dlq.list_dead_letters": DLQ_ADMIN,
    "dlq.show_dead_letter": DLQ_ADMIN,
    "dlq.replay_dead_letter": DLQ_ADMIN,
    "dlq.bulk_replay": DLQ_ADMIN,
    "dlq.purge_dead_letter": DLQ_ADMIN,
    "dlq.audit": DLQ_ADMIN,
}

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


def _unauthorized(detail: str, error: str | None) -> Problem:
    challenge = 'Bearer realm="jobfleet"' + (f', error="{error}"' if error else "")
    return Problem(401, "unauthorized", "Unauthorized", detail, headers={"WWW-Authenticate": challenge})


def current_principal() -> Principal | None:
    """The authenticated principal of this request (None when auth is disabled or the endpoint is public)."""
    found: Principal | None = g.get("jf_principal")
    return found


def current_caller() -> str:
    """The caller id of this request: the key's caller, else ``anonymous``."""
    principal = current_principal()
    return principal.caller if principal is not None else ANONYMOUS


def ensure_owner(record: Mapping[str, Any], job_id: str) -> None:
    """Answer 404 (as if absent) when an authenticated caller looks at another tenant's job.
    Holders of dlq:admin (operators) may read every job."""
    principal = current_principal()
    if principal is None or record.get("caller") == principal.caller:
        return
    if DLQ_ADMIN in principal.scopes and request.method == "GET":
        return
    raise JobNotFound(f"no job {job_id!r} (unknown id, or its record expired)")


def init_app(app: Flask, settings: Settings) -> None:
    """Require an API key with the right scope on every non-public endpoint (or warn that nothing is checked)."""
    check_mode(settings)
    if not settings.auth_enabled:
        app.extensions["jobfleet_auth"] = None
        warn_disabled()
        return
    keys = load_keys(settings.api_keys_file)
    app.extensions["jobfleet_auth"] = keys

    @app.before_request
    def _authenticate() -> None:
        scope = ENDPOINT_SCOPES.get(request.endpoint or "")
        if scope is None:
            return
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            raise _unauthorized("send an API key: 'Authorization: Bearer <key>'", None)
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("the Authorization header must be 'Bearer <key>'", "invalid_request")
        principal = keys.authenticate(token.strip())
        if principal is None:
            raise _unauthorized("the API key is not valid (unknown, revoked or mistyped)", "invalid_token")
        g.jf_principal = principal
        if scope not in principal.scopes:
            raise Problem(
                403,
                "forbidden",
                "Forbidden",
                f"this API key ({principal.key_id}) lacks the {scope!r} scope this operation needs",
                headers={"WWW-Authenticate": f'Bearer realm="jobfleet", error="insufficient_scope", scope="{scope}"'},
            )
        job_type = (request.view_args or {}).get("job_type")
        if request.endpoint == "jobs.enqueue" and isinstance(job_type, str) and not principal.may_enqueue(job_type):
            raise Problem(
                403,
                "forbidden",
                "Forbidden",
                f"this API key ({principal.key_id}) may not enqueue {job_type!r} jobs",
            )
