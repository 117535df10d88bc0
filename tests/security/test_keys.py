"""Keys without restarts: the keys file is reloaded when it changes (a broken one keeps the last good keys), keys can
expire, each key's last use is recorded in Redis, and the audit trail names the key that acted."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from jobfleet.app import create_app
from jobfleet.core.api_keys import load_keys
from jobfleet.core.errors import ConfigError
from jobfleet.core.settings import Settings
from jobfleet.ops import cli
from tests.conftest import Receiver, RunningWorker
from tests.security.conftest import EXPIRED_AT, bearer

LAST_USED = "jobfleet:keys:last_used"  # <namespace>:keys:last_used
RELOAD_WAIT = 1.1  # the keys file is looked at at most once a second


def issue(path: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert cli.main(["keys", "issue", "--scope", "jobs:write", "--scope", "jobs:read", "--file", str(path), *args]) == 0
    # The key is the line issue printed; stdout may also hold the access log of earlier requests.
    return [line for line in capsys.readouterr().out.splitlines() if line.startswith("jf_")][-1]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def keyed(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], FlaskClient]:
    monkeypatch.setenv("REDIS_URL", settings.redis_url)

    def build(path: Path) -> FlaskClient:
        return create_app(dataclasses.replace(settings, auth="enabled", api_keys_file=str(path))).test_client()

    return build


def test_issued_and_revoked_keys_take_effect_without_a_restart(
    keyed: Callable[[Path], FlaskClient], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys.json"
    old = issue(path, "--caller", "billing", "--id", "old", capsys=capsys)
    client = keyed(path)
    assert client.post("/v1/jobs/report", json={}, headers=auth(old)).status_code == 202
    # When a second key is issued and the first revoked, with the API running
    new = issue(path, "--caller", "billing", "--id", "new", capsys=capsys)
    assert cli.main(["keys", "revoke", "old", "--file", str(path)]) == 0
    time.sleep(RELOAD_WAIT)
    # Then the same process accepts the new key and refuses the old one
    assert client.post("/v1/jobs/report", json={}, headers=auth(new)).status_code == 202
    refused = client.post("/v1/jobs/report", json={}, headers=auth(old))
    assert refused.status_code == 401


def test_a_broken_keys_file_keeps_the_last_good_keys_and_logs_an_error(
    keyed: Callable[[Path], FlaskClient],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "keys.json"
    token = issue(path, "--caller", "billing", "--id", "k1", capsys=capsys)
    client = keyed(path)
    good = path.read_text()
    # When the file is half-edited (a bad scope in an otherwise valid file)
    data = json.loads(good)
    data["keys"][0]["scopes"] = ["jobs:everything"]
    path.write_text(json.dumps(data))
    time.sleep(RELOAD_WAIT)
    with caplog.at_level(logging.ERROR):
        # Then the keys loaded before still work, and the log says what is wrong and what it kept
        assert client.post("/v1/jobs/report", json={}, headers=auth(token)).status_code == 202
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("keys[0]" in m and "scopes" in m and "last good" in m for m in errors), errors
    # And the file is looked at again once fixed (a key removed in the fix is refused)
    path.write_text(json.dumps({"keys": []}))
    time.sleep(RELOAD_WAIT)
    assert client.post("/v1/jobs/report", json={}, headers=auth(token)).status_code == 401


def test_an_expired_key_is_refused_saying_so(secure_client: FlaskClient) -> None:
    refused = secure_client.post("/v1/jobs/report", json={}, headers=bearer("expired"))
    assert refused.status_code == 401
    assert "expired" in refused.get_json()["detail"]
    assert EXPIRED_AT[:10] in refused.get_json()["detail"]
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]


def test_keys_issue_expires_in_writes_an_expiry_the_api_honours(
    keyed: Callable[[Path], FlaskClient], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys.json"
    issue(path, "--caller", "billing", "--id", "month", "--expires-in", "30d", capsys=capsys)
    [entry] = json.loads(path.read_text())["keys"]
    expires = datetime.fromisoformat(entry["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=1)
    short = issue(path, "--caller", "billing", "--id", "short", "--expires-in", "2s", capsys=capsys)
    client = keyed(path)
    assert client.post("/v1/jobs/report", json={}, headers=auth(short)).status_code == 202
    time.sleep(2.1)
    late = client.post("/v1/jobs/report", json={}, headers=auth(short))
    assert late.status_code == 401
    assert "expired" in late.get_json()["detail"]
    bad = ["keys", "issue", "--caller", "b", "--scope", "jobs:read", "--file", str(path), "--expires-in", "soon"]
    assert cli.main(bad) == 2
    assert "--expires-in" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["tomorrow", "2030-01-01T00:00:00", 1700000000])
def test_a_bad_expires_at_stops_the_api_naming_the_entry(tmp_path: Path, value: object) -> None:
    path = tmp_path / "keys.json"
    entry = {"caller": "a", "sha256": "a" * 64, "scopes": ["jobs:read"], "expires_at": value}
    path.write_text(json.dumps({"keys": [entry]}))
    with pytest.raises(ConfigError, match=r"keys\[0\].*expires_at"):
        load_keys(str(path))


def test_each_keys_last_use_is_recorded_in_redis_at_most_once_a_minute(
    secure_client: FlaskClient, redis_client: redis.Redis
) -> None:
    before_ms = int(redis_client.time()[0]) * 1000
    assert secure_client.post("/v1/jobs/report", json={}, headers=bearer("alice")).status_code == 202
    used = redis_client.hgetall(LAST_USED)
    assert set(used) == {b"alice"}
    assert before_ms <= int(used[b"alice"]) <= before_ms + 5000  # Redis time, in ms
    # A second use within the minute writes nothing (one write per key per minute per process)
    redis_client.delete(LAST_USED)
    secure_client.get("/v1/dlq", headers=bearer("alice"))  # a 403 is still a use of a valid key
    secure_client.post("/v1/jobs/report", json={}, headers=bearer("bob"))
    assert set(redis_client.hgetall(LAST_USED)) == {b"bob"}


def test_a_failing_last_use_write_never_fails_the_request(
    secure_settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import jobfleet.store.key_usage

    # Given an API whose last-use write fails in Redis (everything else works)
    monkeypatch.setattr(jobfleet.store.key_usage, "script_source", lambda _name: 'return redis.error_reply("ERR boom")')
    client = create_app(secure_settings).test_client()
    with caplog.at_level(logging.WARNING):
        # Then requests are answered as usual and the failure is a warning naming the key
        assert client.post("/v1/jobs/report", json={}, headers=bearer("alice")).status_code == 202
    assert any("alice" in r.getMessage() and "boom" in r.getMessage() for r in caplog.records)


def test_keys_list_shows_expiry_and_last_use(
    keyed: Callable[[Path], FlaskClient], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys.json"
    token = issue(path, "--caller", "billing", "--id", "used", "--expires-in", "30d", capsys=capsys)
    issue(path, "--caller", "billing", "--id", "idle", capsys=capsys)
    assert keyed(path).post("/v1/jobs/report", json={}, headers=auth(token)).status_code == 202
    assert cli.main(["keys", "list", "--file", str(path)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    expiry = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%d")
    assert expiry in lines["used"]
    assert f"last used {today}" in lines["used"]
    assert "never used" in lines["idle"]
    assert "no expiry" in lines["idle"]


def _wait_dead(client: FlaskClient, job_id: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if client.get(f"/v1/jobs/{job_id}", headers=bearer("alice")).get_json()["state"] == "dead":
            return
        time.sleep(0.05)
    raise AssertionError(f"{job_id} never died")


def test_the_audit_trail_names_the_key_that_acted(
    secure_client: FlaskClient, worker: RunningWorker, receiver: Receiver
) -> None:
    # Given three dead webhooks of alice's and a queued report
    receiver.statuses = [404] * 3
    hook = {"url": receiver.url, "payload": {}}
    dead = [
        secure_client.post("/v1/jobs/webhook", json=hook, headers=bearer("alice")).get_json()["job_id"]
        for _ in range(3)
    ]
    for job_id in dead:
        _wait_dead(secure_client, job_id)
    # When alice cancels a job and the operator replays, bulk-replays and purges dead letters
    worker.worker.stop(timeout=10_000)  # the replayed jobs stay put
    report = secure_client.post("/v1/jobs/report", json={}, headers=bearer("alice")).get_json()["job_id"]
    assert secure_client.delete(f"/v1/jobs/{report}", headers=bearer("alice")).status_code == 200
    assert secure_client.post(f"/v1/dlq/{dead[0]}/replay", headers=bearer("admin")).status_code == 202
    assert secure_client.delete(f"/v1/dlq/{dead[1]}", headers=bearer("admin")).status_code == 204
    bulk = secure_client.post("/v1/dlq/replay", json={"limit": 10}, headers=bearer("admin"))
    assert bulk.status_code == 200
    # Then every audit entry names the caller and the key's id
    items: list[dict[str, Any]] = secure_client.get("/v1/audit", headers=bearer("admin")).get_json()["items"]
    seen = {(i["action"], i["who"], i["key_id"]) for i in items}
    assert ("cancel", "alice", "alice") in seen
    assert ("replay", "ops", "admin") in seen
    assert ("purge", "ops", "admin") in seen
    assert ("bulk_replay", "ops", "admin") in seen
    assert all(i["key_id"] for i in items), items
