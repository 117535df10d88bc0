"""API keys and scopes: who is calling, and may they do this? Every route needs a key with the scope listed for it
in ENDPOINT_SCOPES unless it is in PUBLIC_ENDPOINTS: a route in neither is refused (fail closed). Keys come from
JOBFLEET_API_KEYS_FILE (hashes only, reloaded when it changes); a request costs one SHA-256 and a dict lookup to
authenticate, then one rate-limit call (per caller, or per client address without a valid key)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import redis
from flask import Flask, g, request

from jobfleet.app.auth_mode import check_mode, warn_disabled
from jobfleet.app.problems import Problem
from jobfleet.core.api_keys import ANONYMOUS, DLQ_ADMIN, JOBS_READ, JOBS_WRITE, Principal, format_time
from jobfleet.core.errors import JobNotFound
from jobfleet.core.key_file import KeyFile
from jobfleet.core.settings import Settings
from jobfleet.store.key_usage import KeyUsage
from jobfleet.store.keys import Keys
from jobfleet.store.rate_limit import Admission

# Flask endpoint -> the scope it needs. An endpoint listed neither here nor in PUBLIC_ENDPOINTS is refused to all.
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
# Endpoints anyone may call: no key, no rate limit, no job data (README "Security"). "static": console assets, if any.
PUBLIC_ENDPOINTS = frozenset({"health.healthz", "health.readyz", "prometheus_metrics", "openapi.openapi", "static"})


def _unauthorized(detail: str, error: str | None) -> Problem:
    challenge = 'Bearer realm="jobfleet"' + (f', error="{error}"' if error else "")
    return Problem(401, "unauthorized", "Unauthorized", detail, headers={"WWW-Authenticate": challenge})


def _forbidden(detail: str, scope: str = "") -> Problem:
    challenge = 'Bearer realm="jobfleet", error="insufficient_scope"' + (f', scope="{scope}"' if scope else "")
    return Problem(403, "forbidden", "Forbidden", detail, headers={"WWW-Authenticate": challenge})


def current_principal() -> Principal | None:
    """The authenticated principal of this request (None when auth is disabled, the route is public or it failed)."""
    found: Principal | None = g.get("jf_principal")
    return found


def current_caller() -> str:
    """The caller id of this request: the key's caller, else ``anonymous``."""
    principal = current_principal()
    return principal.caller if principal is not None else ANONYMOUS


def current_key_id() -> str:
    """The id of the API key this request presented, when it names a known key (expired ones too), else ``""``."""
    found: str = g.get("jf_key_id", "")
    return found


def ensure_owner(record: Mapping[str, Any], job_id: str) -> None:
    """Answer 404 (as if absent) when an authenticated caller looks at another tenant's job (operators may read)."""
    principal = current_principal()
    if principal is None or record.get("caller") == principal.caller:
        return
    if DLQ_ADMIN in principal.scopes and request.method == "GET":
        return
    raise JobNotFound(f"no job {job_id!r} (unknown id, or its record expired)")


def ensure_may_write(job_type: str, verb: str) -> None:
    """Answer 403 when the request's key is restricted to other job types than ``job_type`` (``verb``: the action)."""
    principal = current_principal()
    if principal is not None and not principal.may_write(job_type):
        raise _forbidden(f"this API key ({principal.key_id}) may not {verb} {job_type!r} jobs")


def _authenticate(keys: KeyFile) -> Principal | Problem:
    """The principal of the request's Bearer key, or the 401 to answer (no Redis call either way)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        return _unauthorized("send an API key: 'Authorization: Bearer <key>'", None)
    if scheme.lower() != "bearer" or not token.strip():
        return _unauthorized("the Authorization header must be 'Bearer <key>'", "invalid_request")
    principal = keys.authenticate(token.strip())
    if principal is None:
        return _unauthorized("the API key is not valid (unknown, revoked or mistyped)", "invalid_token")
    g.jf_key_id = principal.key_id
    if principal.expires_at is not None and principal.expired(time.time()):
        detail = f"the API key ({principal.key_id}) expired at {format_time(principal.expires_at)}; use a current key"
        return _unauthorized(detail, "invalid_token")
    return principal


def _authorize(principal: Principal, endpoint: str) -> None:
    scope = ENDPOINT_SCOPES.get(endpoint)
    if scope is None:
        raise _forbidden(f"this operation declares no scope (app/auth.py ENDPOINT_SCOPES lacks {endpoint!r})")
    if scope not in principal.scopes:
        raise _forbidden(f"this API key ({principal.key_id}) lacks the {scope!r} scope this operation needs", scope)
    job_type = (request.view_args or {}).get("job_type")
    if endpoint == "jobs.enqueue" and isinstance(job_type, str):
        ensure_may_write(job_type, "enqueue")


def init_app(app: Flask, settings: Settings, client: redis.Redis, admission: Admission) -> None:
    """Require an API key with the right scope on every non-public route and rate-limit it (or warn: no auth)."""
    check_mode(settings)
    if not settings.auth_enabled:
        app.extensions["jobfleet_auth"] = None
        warn_disabled()
        return
    keys = KeyFile(settings.api_keys_file)
    usage = KeyUsage(client, Keys(settings.namespace))
    app.extensions["jobfleet_auth"] = keys

    @app.before_request
    def _guard() -> None:
        endpoint = request.endpoint
        # An unmatched URL runs no view: let routing answer its 404/405 (a mistyped path is no secret).
        if endpoint is None or endpoint in PUBLIC_ENDPOINTS:
            return
        found = _authenticate(keys)
        # Admission before any refusal and before the body is read: every request to a route counts, failed ones
        # too; without a valid key there is no caller to charge, so the client's address is.
        if isinstance(found, Problem):
            admission.admit_address(request.remote_addr or "unknown")
            raise found
        g.jf_principal = found
        usage.touch(found.key_id)
        admission.admit(found.caller)
        _authorize(found, endpoint)
