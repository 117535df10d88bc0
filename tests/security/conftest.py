"""Security fixtures: a keys file with one key per role, the API built with auth enabled, and helpers."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from jobfleet.core.api_keys import hash_key
from jobfleet.core.settings import Settings

# role -> (caller, scopes, job types or None); the key of each role is "key-<role>"
ROLES: dict[str, tuple[str, list[str], list[str] | None]] = {
    "writer": ("alice", ["jobs:write"], None),
    "reader": ("alice", ["jobs:read"], None),
    "alice": ("alice", ["jobs:write", "jobs:read"], None),
    "bob": ("bob", ["jobs:write", "jobs:read"], None),
    "admin": ("ops", ["dlq:admin"], None),
    "webhooks_only": ("carol", ["jobs:write", "jobs:read"], ["webhook"]),
    "carol": ("carol", ["jobs:write", "jobs:read"], None),
    "expired": ("dave", ["jobs:write", "jobs:read"], None),
    "everything": ("root", ["jobs:write", "jobs:read", "dlq:admin"], None),
}
EXPIRED_AT = "2020-01-01T00:00:00Z"  # the "expired" role's key expired then


def key(role: str) -> str:
    """The API key of ``role``."""
    return f"jf_test_{role}_0123456789abcdef"


def bearer(role: str) -> dict[str, str]:
    """Authorization header for ``role``."""
    return {"Authorization": f"Bearer {key(role)}"}


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.json"
    entries = [
        {"id": role, "caller": caller, "sha256": hash_key(key(role)), "scopes": scopes}
        | ({"job_types": types} if types is not None else {})
        | ({"expires_at": EXPIRED_AT} if role == "expired" else {})
        for role, (caller, scopes, types) in ROLES.items()
    ]
    path.write_text(json.dumps({"keys": entries}))
    return path


@pytest.fixture
def secure_settings(settings: Settings, keys_file: Path) -> Settings:
    return dataclasses.replace(settings, auth="auto", api_keys_file=str(keys_file))


@pytest.fixture
def secure_app(secure_settings: Settings) -> Flask:
    from jobfleet.app import create_app

    return create_app(secure_settings)


@pytest.fixture
def secure_client(secure_app: Flask) -> FlaskClient:
    return secure_app.test_client()
