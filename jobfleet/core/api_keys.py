"""The API-key file format (JOBFLEET_API_KEYS_FILE): scopes, principals, the hashed keys and their expiry. Shared by
the API (authentication, reloading: jobfleet/core/key_file.py) and the operator CLI (`jobfleet keys`); a key costs one
SHA-256, a dict lookup and ``hmac.compare_digest`` to check, never a Redis call."""

from __future__ import annotations

import hashlib
import hmac
import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jobfleet.core.errors import ConfigError

JOBS_WRITE = "jobs:write"
JOBS_READ = "jobs:read"
DLQ_ADMIN = "dlq:admin"
SCOPES = frozenset({JOBS_WRITE, JOBS_READ, DLQ_ADMIN})
ANONYMOUS = "anonymous"
_INDEX_CHARS = 16  # hash prefix used to find the candidate entry; the full hash is compared in constant time


def hash_key(token: str) -> str:
    """The SHA-256 (hex) of an API key: what the keys file stores."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: its id (tenant), the key's id for logs, scopes, allowed job types and expiry."""

    caller: str
    key_id: str
    scopes: frozenset[str]
    job_types: frozenset[str] | None = None  # None: every job type
    expires_at: float | None = None  # Unix time; None: never

    def may_write(self, job_type: str) -> bool:
        """Whether this key may enqueue or cancel jobs of ``job_type`` (its ``job_types``, when it has any)."""
        return self.job_types is None or job_type in self.job_types

    def expired(self, now: float) -> bool:
        """Whether the key's ``expires_at`` has passed at Unix time ``now``."""
        return self.expires_at is not None and now >= self.expires_at


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
                    expires_at=_expiry(item.get("expires_at"), where),
                ),
            )
        )
    return KeyRing(entries)


def _expiry(value: Any, where: str) -> float | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise ConfigError(f"{where}: 'expires_at' must be an RFC 3339 time with a zone, like 2026-01-31T00:00:00Z")
    return when.timestamp()


def format_time(unix: float) -> str:
    """``unix`` as an RFC 3339 UTC time to the second (what the keys file and `jobfleet keys list` show)."""
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
