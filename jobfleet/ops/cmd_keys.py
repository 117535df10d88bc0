"""``jobfleet keys issue | hash | list | revoke``: API keys for the keys file (JSON). The key itself is printed
once and never stored; the file holds its SHA-256, the caller (tenant) it authenticates, its scopes and expiry. A
running API picks up every change within a second; ``list`` shows each key's last use (from Redis)."""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from jobfleet.core.api_keys import format_time, hash_key, parse_keys, read_keys_document
from jobfleet.core.errors import ConfigError, StoreUnavailable
from jobfleet.core.redis_client import make_client
from jobfleet.core.settings import Settings
from jobfleet.store.key_usage import last_used
from jobfleet.store.keys import Keys

EXIT_OK, EXIT_USAGE, EXIT_NOT_FOUND = 0, 2, 3
_SCOPES = ("jobs:write", "jobs:read", "dlq:admin")
_DURATION = re.compile(r"(\d+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def new_token() -> str:
    """A fresh API key: ``jf_`` (easy to spot by secret scanners) and 256 random bits."""
    return "jf_" + secrets.token_urlsafe(32)


def parse_duration(text: str) -> int:
    """Seconds in a duration like ``30d``, ``12h``, ``90m``, ``45s`` or ``2w``; ConfigError naming --expires-in."""
    found = _DURATION.fullmatch(text.strip())
    if found is None or int(found.group(1)) == 0:
        raise ConfigError(f"--expires-in {text!r}: give a duration like 30d, 12h, 90m, 45s or 2w")
    return int(found.group(1)) * _UNIT_SECONDS[found.group(2)]


def _file(settings: Settings, args: argparse.Namespace) -> Path:
    name = args.file or settings.api_keys_file
    if not name:
        raise ConfigError("give --file or set JOBFLEET_API_KEYS_FILE")
    return Path(name)


def _read(path: Path) -> dict[str, Any]:

    if not path.exists():
        return {"keys": []}
    if path.suffix == ".toml":
        raise ConfigError(f"{path} is TOML: edit it by hand (`jobfleet keys hash` gives the sha256); use JSON here")
    data = read_keys_document(path)
    parse_keys(data, str(path))  # refuse to build on a file the API would reject
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as out:  # mkstemp: mode 0600, only the owner reads the hashes
        json.dump(data, out, indent=2)
        out.write("\n")
    os.replace(tmp, path)


def cmd_issue(settings: Settings, args: argparse.Namespace) -> int:
    """Create a key for a caller, add its hash to the keys file, print the key once."""

    path = _file(settings, args)
    data = _read(path)
    lifetime = parse_duration(args.expires_in) if args.expires_in else None
    token = new_token()
    digest = hash_key(token)
    now = time.time()
    entry: dict[str, Any] = {
        "id": args.id or digest[:12],
        "caller": args.caller,
        "sha256": digest,
        "scopes": sorted(set(args.scope)),
        "created_at": format_time(now),
    }
    if args.job_type:
        entry["job_types"] = sorted(set(args.job_type))
    if lifetime is not None:
        entry["expires_at"] = format_time(now + lifetime)
    if any(k.get("id") == entry["id"] for k in data["keys"]):
        raise ConfigError(f"a key with id {entry['id']!r} already exists in {path}")
    data["keys"].append(entry)
    parse_keys(data, str(path))
    _write(path, data)
    print(token)
    print(
        f"jobfleet: key {entry['id']} for caller {args.caller!r} ({', '.join(entry['scopes'])}"
        f"{', expires ' + entry['expires_at'] if lifetime else ''}) added to {path}; the key above is shown once — "
        "a running API accepts it within a second",
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_hash(_settings: Settings, _args: argparse.Namespace) -> int:
    """Print the sha256 of a key read from stdin (for keys files managed elsewhere)."""

    token = sys.stdin.readline().strip()
    if not token:
        raise ConfigError('send the key on stdin: echo "$KEY" | jobfleet keys hash')
    print(hash_key(token))
    return EXIT_OK


def _last_uses(settings: Settings) -> dict[str, int] | None:
    client = make_client(settings)
    try:
        return last_used(client, Keys(settings.namespace))
    except StoreUnavailable as exc:
        print(f"jobfleet: last use unknown ({exc})", file=sys.stderr)
        return None
    finally:
        client.close()


def cmd_list(settings: Settings, args: argparse.Namespace) -> int:
    """List the keys of the keys file (ids, callers, scopes, job types, expiry, last use; never hashes)."""
    keys = _read(_file(settings, args))["keys"]
    uses = _last_uses(settings)  # Redis is asked, but the listing does not depend on it
    for key in keys:
        types = ",".join(key.get("job_types") or ["*"])
        ident = key.get("id") or key["sha256"][:12]
        expiry = f"expires {key['expires_at']}" if key.get("expires_at") else "no expiry"
        used = "last use unknown" if uses is None else "never used"
        if uses is not None and ident in uses:
            used = f"last used {format_time(uses[ident] / 1000)}"
        print(f"{ident:14} {key['caller']:24} {','.join(key['scopes']):32} {types:16} {expiry:30} {used}")
    return EXIT_OK


def cmd_revoke(settings: Settings, args: argparse.Namespace) -> int:
    """Remove a key from the keys file by id."""
    path = _file(settings, args)
    data = _read(path)
    kept = [k for k in data["keys"] if (k.get("id") or k["sha256"][:12]) != args.key_id]
    if len(kept) == len(data["keys"]):
        print(f"jobfleet: no key {args.key_id!r} in {path}", file=sys.stderr)
        return EXIT_NOT_FOUND
    _write(path, {**data, "keys": kept})
    print(f"jobfleet: key {args.key_id} revoked; a running API refuses it within a second", file=sys.stderr)
    return EXIT_OK


def register(sub: Any) -> None:
    """Add ``keys`` and its subcommands to the ``jobfleet`` parser."""
    keys = sub.add_parser("keys", help="issue, hash, list and revoke API keys").add_subparsers(
        dest="keys_command", required=True
    )
    issue = keys.add_parser("issue", help="create a key and add its hash to the keys file")
    issue.add_argument("--caller", required=True, help="the tenant the key authenticates as")
    issue.add_argument("--scope", action="append", required=True, choices=_SCOPES)
    issue.add_argument("--job-type", action="append", help="restrict jobs:write to these job types")
    issue.add_argument("--id", help="key id shown in logs (default: start of its hash)")
    issue.add_argument("--expires-in", help="the key stops working after this long: 30d, 12h, 90m, 45s, 2w")
    issue.add_argument("--file", help="keys file (default JOBFLEET_API_KEYS_FILE)")
    issue.set_defaults(func=cmd_issue)
    keys.add_parser("hash", help="sha256 of a key read from stdin").set_defaults(func=cmd_hash)
    listing = keys.add_parser("list", help="list the keys of the keys file")
    listing.add_argument("--file")
    listing.set_defaults(func=cmd_list)
    revoke = keys.add_parser("revoke", help="remove a key by id")
    revoke.add_argument("key_id")
    revoke.add_argument("--file")
    revoke.set_defaults(func=cmd_revoke)
