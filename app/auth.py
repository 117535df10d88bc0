"""API keys and scopes: who is calling, and may they do this? Keys are loaded once per process from
JOBFLEET_API_KEYS_FILE (hashes only); a request costs one SHA-256 and one dict lookup, never a Redis call."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import sys
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, g, request

from jobfleet.app.problems import Problem
from jobfleet.core.errors import ConfigError, JobNotFound
from jobfleet.core.net import is_loopback_host
from jobfleet.core.settings import Settings

JOBS_WRITE = "jobs:write"
JOBS_READ = "jobs:read"
DLQ_ADMIN = "dlq:admin"
SCOPES = frozenset({JOBS_WRITE, JOBS_READ, DLQ_ADMIN})
ANONYMOUS = "anonymous"
_INDEX_CHARS = 16  # hash prefix used to find the candidate entry; the full hash is compared in constant time

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


def hash_key(token: str) -> str:
    """The SHA-256 (hex) of an API key: what the keys file stores."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: its id (tenant), the key's id for logs, scopes and allowed job types."""

    caller: str
    key_id: str
    scopes: frozenset[str]
    job_types: frozenset[str] | None = None  # None: every job type

    def may_enqueue(self, job_type: str) -> bool:
        """Whether this key may enqueue ``job_type``."""
        return self.job_types is None or job_type in self.job_types


@dataclass(frozen=True)
class _Entry:
    sha256: str
    principal: Principal


class KeyRing:
    """The configured API keys, indexed by a prefix of their hash for O(1) lookup."""

    def __init__(self, entries: Iterable[_Entry]) -> None:
        self._index: dict[str, list[_Entry]] = {}
        for entry in entries:
            self._index.setdefault(entry.sha256[:_INDEX_CHARS], []).append(entry)

    def __len__(self) -> int:
        return sum(len(v) for v in self._index.values())

    def authenticate(self, token: str) -> Principal | None:
        """The principal whose key is ``token``, or None."""
        digest = hash_key(token)
        found = None
        for entry in self._index.get(digest[:_INDEX_CHARS], ()):
            if hmac.compare_digest(entry.sha256, digest):
                found = entry.principal
        return found


def parse_keys(data: Mapping[str, Any], source: str) -> KeyRing:
    """Build a KeyRing from the decoded keys file ``{"keys": [...]}``; raise ConfigError naming the bad entry."""
    raw = data.get("keys")
    if not isinstance(raw, list):
        raise ConfigError(f"{source}: expected a top-level 'keys' list")
    entries = []
    seen: set[str] = set()
    for n, item in enumerate(raw):
        where = f"{source}: keys[{n}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where} must be a table/object")
        caller, digest, scopes = item.get("caller"), item.get("sha256"), item.get("scopes")
        if not isinstance(caller, str) or not caller or not caller.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"{where}: 'caller' must be a non-empty name of letters, digits, - and _")
        if caller == ANONYMOUS:
            raise ConfigError(f"{where}: 'caller' may not be {ANONYMOUS!r} (reserved for JOBFLEET_AUTH=disabled)")
        if not isinstance(digest, str) or len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise ConfigError(f"{where}: 'sha256' must be 64 lowercase hex characters (`jobfleet keys hash`)")
        if digest in seen:
            raise ConfigError(f"{where}: the same key appears twice")
        seen.add(digest)
        if not isinstance(scopes, list) or not scopes or not set(scopes) <= SCOPES:
            raise ConfigError(f"{where}: 'scopes' must be a non-empty list of {', '.join(sorted(SCOPES))}")
        job_types = item.get("job_types")
        if job_types is not None and (
            not isinstance(job_types, list) or not all(isinstance(t, str) for t in job_types)
        ):
            raise ConfigError(f"{where}: 'job_types' must be a list of job type names")
        entries.append(
            _Entry(
                digest,
                Principal(
                    caller=caller,
                    key_id=str(item.get("id") or digest[:12]),
                    scopes=frozenset(scopes),
                    job_types=frozenset(job_types) if job_types is not None else None,
                ),
            )
        )
    return KeyRing(entries)


def read_keys_document(path: Path) -> dict[str, Any]:
    """The decoded keys file (TOML when it ends in .toml, else JSON); ConfigError when unreadable."""
    try:
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"JOBFLEET_API_KEYS_FILE={str(path)!r} cannot be read: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"JOBFLEET_API_KEYS_FILE={str(path)!r}: expected an object with a 'keys' list")
    return data


def load_keys(path: str) -> KeyRing:
    """Read and check the keys file at ``path``."""
    return parse_keys(read_keys_document(Path(path)), f"JOBFLEET_API_KEYS_FILE={path!r}")


def check_mode(settings: Settings) -> None:
    """Refuse to serve without auth on a non-loopback address unless JOBFLEET_AUTH=disabled says so."""
    if settings.auth == "auto" and not settings.api_keys_file and not is_loopback_host(settings.api_host):
        raise ConfigError(
            f"JOBFLEET_API_HOST={settings.api_host!r} is not loopback and no JOBFLEET_API_KEYS_FILE is set: "
            "issue keys with `jobfleet keys issue`, or set JOBFLEET_AUTH=disabled if you really mean it"
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
