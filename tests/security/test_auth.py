"""API keys and scopes: every endpoint x (no key, wrong key, right key with the wrong scope, right key), tenant
isolation, the disabled mode and its warning, and the keys file and CLI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from jobfleet.core.api_keys import hash_key, load_keys
from jobfleet.core.errors import ConfigError
from jobfleet.core.settings import Settings
from jobfleet.ops import cli
from tests.security.conftest import bearer

UNKNOWN = "0" * 32

# (method, path with {job} for a job of caller alice, body, scope, status for the right key)
ENDPOINTS = [
    ("POST", "/v1/jobs/report", {}, "jobs:write", 202),
    ("GET", "/v1/jobs/{job}", None, "jobs:read", 200),
    ("GET", "/v1/jobs/{job}/events", None, "jobs:read", 200),
    ("DELETE", "/v1/jobs/{job}", None, "jobs:write", 200),
    ("GET", "/v1/dlq", None, "dlq:admin", 200),
    ("GET", "/v1/dlq/{job}", None, "dlq:admin", 404),  # authorised: the job has no dead letter
    # authorised: the job is queued, not dead (v2: DLQ ids are job ids; an unknown id is a 404, see below)
    ("POST", "/v1/dlq/{job}/replay", None, "dlq:admin", 409),
    ("POST", "/v1/dlq/replay", {"dry_run": True}, "dlq:admin", 200),
    ("DELETE", "/v1/dlq/{job}", None, "dlq:admin", 404),
    ("GET", "/v1/audit", None, "dlq:admin", 200),
]
PUBLIC = ["/healthz", "/readyz", "/metrics", "/openapi.json"]
RIGHT_ROLE = {"jobs:write": "writer", "jobs:read": "reader", "dlq:admin": "admin"}
WRONG_ROLE = {"jobs:write": "reader", "jobs:read": "writer", "dlq:admin": "alice"}


def enqueue(client: FlaskClient, role: str = "alice", **headers: str) -> str:
    response = client.post("/v1/jobs/report", json={}, headers={**bearer(role), **headers})
    assert response.status_code == 202, response.get_json()
    job_id: str = response.get_json()["job_id"]
    return job_id


@pytest.mark.parametrize("credentials", ["none", "wrong", "wrong_scope", "right"])
@pytest.mark.parametrize(("method", "path", "body", "scope", "expected"), ENDPOINTS)
def test_auth_matrix(  # noqa: PLR0917 - one argument per parametrized column
    secure_client: FlaskClient,
    credentials: str,
    method: str,
    path: str,
    body: object,
    scope: str,
    expected: int,
) -> None:
    job_id = enqueue(secure_client)
    url = path.format(job=job_id)
    headers = {
        "none": {},
        "wrong": {"Authorization": "Bearer jf_not_a_key"},
        "wrong_scope": bearer(WRONG_ROLE[scope]),
        "right": bearer(RIGHT_ROLE[scope]),
    }[credentials]
    response = secure_client.open(url, method=method, json=body, headers=headers)
    want = {"none": 401, "wrong": 401, "wrong_scope": 403, "right": expected}[credentials]
    assert response.status_code == want, response.get_data(as_text=True)
    if want in {401, 403}:
        assert response.mimetype == "application/problem+json"
        assert response.headers["WWW-Authenticate"].startswith('Bearer realm="jobfleet"')
        assert job_id not in response.get_data(as_text=True).replace(url, "")  # says nothing about the job
    if credentials == "wrong":
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    if credentials == "wrong_scope":
        assert scope in response.get_json()["detail"]


@pytest.mark.parametrize("path", PUBLIC)
def test_health_metrics_and_openapi_need_no_key(secure_client: FlaskClient, path: str) -> None:
    assert secure_client.get(path).status_code == 200
    assert secure_client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 200


def test_a_caller_without_read_scope_cannot_tell_whether_a_job_exists(secure_client: FlaskClient) -> None:
    job_id = enqueue(secure_client)
    existing = secure_client.get(f"/v1/jobs/{job_id}", headers=bearer("writer"))
    missing = secure_client.get(f"/v1/jobs/{UNKNOWN}", headers=bearer("writer"))
    assert existing.status_code == missing.status_code == 403
    assert existing.get_json()["detail"] == missing.get_json()["detail"]


def test_another_tenants_job_is_answered_exactly_like_an_unknown_one(secure_client: FlaskClient) -> None:
    job_id = enqueue(secure_client, "alice")
    for suffix in ("", "/events"):
        theirs = secure_client.get(f"/v1/jobs/{job_id}{suffix}", headers=bearer("bob"))
        unknown = secure_client.get(f"/v1/jobs/{UNKNOWN}{suffix}", headers=bearer("bob"))
        assert theirs.status_code == unknown.status_code == 404
        assert theirs.get_json()["detail"].replace(job_id, UNKNOWN) == unknown.get_json()["detail"]
    assert secure_client.delete(f"/v1/jobs/{job_id}", headers=bearer("bob")).status_code == 404
    # alice's job was not touched by bob's cancel
    assert secure_client.get(f"/v1/jobs/{job_id}", headers=bearer("alice")).get_json()["state"] == "queued"


def test_an_operator_with_dlq_admin_may_read_any_job_but_not_cancel_it(secure_client: FlaskClient) -> None:
    job_id = enqueue(secure_client, "alice")
    assert secure_client.get(f"/v1/jobs/{job_id}", headers=bearer("everything")).status_code == 200
    assert secure_client.delete(f"/v1/jobs/{job_id}", headers=bearer("everything")).status_code == 404


def test_replaying_an_unknown_job_is_404_and_a_job_that_is_not_dead_is_409_without_touching_it(
    secure_client: FlaskClient,
) -> None:
    job_id = enqueue(secure_client, "alice")
    unknown = secure_client.post(f"/v1/dlq/{UNKNOWN}/replay", headers=bearer("admin"))
    assert unknown.status_code == 404
    assert unknown.mimetype == "application/problem+json"
    queued = secure_client.post(f"/v1/dlq/{job_id}/replay", headers=bearer("admin"))
    assert queued.status_code == 409
    assert queued.mimetype == "application/problem+json"
    assert queued.get_json()["state"] == "queued"
    job = secure_client.get(f"/v1/jobs/{job_id}", headers=bearer("alice")).get_json()
    assert (job["state"], job["attempts"], job["replays"]) == ("queued", 0, 0)
    assert secure_client.get("/v1/audit", headers=bearer("admin")).get_json()["items"] == []  # nothing replayed


def test_idempotency_keys_are_scoped_per_caller(secure_client: FlaskClient) -> None:
    # Given alice and bob using the same Idempotency-Key for different bodies
    a = secure_client.post(
        "/v1/jobs/report", json={"rows": 1}, headers={**bearer("alice"), "Idempotency-Key": "k"}
    ).get_json()
    b = secure_client.post(
        "/v1/jobs/report", json={"rows": 2}, headers={**bearer("bob"), "Idempotency-Key": "k"}
    ).get_json()
    # Then neither collides with the other: two jobs, no 422, no replay
    assert a["job_id"] != b["job_id"]
    assert not a["idempotent_replay"]
    assert not b["idempotent_replay"]
    assert secure_client.get(f"/v1/jobs/{b['job_id']}", headers=bearer("alice")).status_code == 404


def test_the_audit_trail_names_the_authenticated_caller(secure_client: FlaskClient) -> None:
    job_id = enqueue(secure_client, "alice")
    assert secure_client.delete(f"/v1/jobs/{job_id}", headers=bearer("alice")).status_code == 200
    [entry] = secure_client.get("/v1/audit", headers=bearer("admin")).get_json()["items"]
    assert (entry["who"], entry["action"]) == ("alice", "cancel")


def test_a_key_limited_to_some_job_types_cannot_enqueue_others(secure_client: FlaskClient) -> None:
    webhook = {"url": "https://example.com/hook", "payload": {}}
    assert secure_client.post("/v1/jobs/webhook", json=webhook, headers=bearer("webhooks_only")).status_code == 202
    refused = secure_client.post("/v1/jobs/report", json={}, headers=bearer("webhooks_only"))
    assert refused.status_code == 403
    assert "'report'" in refused.get_json()["detail"]


def test_a_key_limited_to_some_job_types_cannot_cancel_others_but_may_read_them(secure_client: FlaskClient) -> None:
    # Given carol's report job (made with her unrestricted key) and her webhook job
    report = enqueue(secure_client, "carol")
    webhook = secure_client.post(
        "/v1/jobs/webhook", json={"url": "https://example.com/hook", "payload": {}}, headers=bearer("webhooks_only")
    ).get_json()["job_id"]
    # When her webhook-only key cancels the report, it is refused and the job is untouched
    refused = secure_client.delete(f"/v1/jobs/{report}", headers=bearer("webhooks_only"))
    assert refused.status_code == 403
    assert "'report'" in refused.get_json()["detail"]
    assert secure_client.get(f"/v1/jobs/{report}", headers=bearer("carol")).get_json()["state"] == "queued"
    # But reading is jobs:read, which the restriction does not narrow; and its own type it may cancel
    assert secure_client.get(f"/v1/jobs/{report}", headers=bearer("webhooks_only")).status_code == 200
    assert secure_client.delete(f"/v1/jobs/{webhook}", headers=bearer("webhooks_only")).status_code == 200


@pytest.mark.parametrize(
    ("header", "error"),
    [("Basic dXNlcjpwYXNz", "invalid_request"), ("Bearer ", "invalid_request"), ("Bearer nope", "invalid_token")],
)
def test_malformed_or_wrong_credentials_are_401_problems(secure_client: FlaskClient, header: str, error: str) -> None:
    response = secure_client.get("/v1/dlq", headers={"Authorization": header})
    assert response.status_code == 401
    assert f'error="{error}"' in response.headers["WWW-Authenticate"]
    assert response.get_json()["type"] == "urn:jobfleet:problem:unauthorized"


def test_refused_enqueues_are_counted_by_reason(secure_client: FlaskClient) -> None:
    secure_client.post("/v1/jobs/report", json={})
    secure_client.post("/v1/jobs/report", json={}, headers=bearer("reader"))
    registry = secure_client.application.extensions["jobfleet_metrics"].registry
    sample = registry.get_sample_value
    labels = {"job_type": "report"}
    assert sample("jobfleet_enqueue_rejections_total", {**labels, "reason": "unauthorized"}) == 1
    assert sample("jobfleet_enqueue_rejections_total", {**labels, "reason": "forbidden"}) == 1


def test_disabled_auth_warns_loudly_and_everyone_is_anonymous(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    from jobfleet.app import create_app

    client = create_app(settings).test_client()  # the settings fixture says auth="disabled"
    assert "AUTHENTICATION IS DISABLED" in capsys.readouterr().err
    job_id = client.post("/v1/jobs/report", json={}).get_json()["job_id"]
    assert client.application.extensions["jobfleet"].store.get(job_id)["caller"] == "anonymous"


def test_auth_settings_are_checked_when_read() -> None:
    # (auto without a keys file is refused by the app itself: tests/security/test_fail_closed.py)
    with pytest.raises(ConfigError, match="JOBFLEET_API_KEYS_FILE"):
        Settings.from_env({"JOBFLEET_AUTH": "enabled"})
    with pytest.raises(ConfigError, match="JOBFLEET_AUTH"):
        Settings.from_env({"JOBFLEET_AUTH": "maybe"})


def test_a_keys_file_configures_auth_by_default() -> None:
    assert Settings.from_env({"JOBFLEET_API_KEYS_FILE": "/etc/jobfleet/keys.json"}).auth_enabled
    assert not Settings.from_env({}).auth_enabled


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"caller": "a", "sha256": "abc", "scopes": ["jobs:read"]}, "sha256"),
        ({"caller": "a", "sha256": "a" * 64, "scopes": ["root"]}, "scopes"),
        ({"caller": "anonymous", "sha256": "a" * 64, "scopes": ["jobs:read"]}, "reserved"),
        ({"caller": "a b", "sha256": "a" * 64, "scopes": ["jobs:read"]}, "caller"),
    ],
)
def test_a_bad_keys_file_stops_the_api_naming_the_entry(tmp_path: Path, entry: dict[str, object], message: str) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"keys": [entry]}))
    with pytest.raises(ConfigError, match=message):
        load_keys(str(path))


def test_a_toml_keys_file_works_too(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    path.write_text(f'[[keys]]\ncaller = "billing"\nsha256 = "{hash_key("s3cret")}"\nscopes = ["jobs:write"]\n')
    principal = load_keys(str(path)).authenticate("s3cret")
    assert principal is not None
    assert principal.caller == "billing"
    assert load_keys(str(path)).authenticate("s3cret2") is None


def test_keys_cli_issues_a_key_stores_only_its_hash_and_revokes_it(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobfleet.app import create_app

    path = tmp_path / "keys.json"
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    code = cli.main(
        ["keys", "issue", "--caller", "billing", "--scope", "jobs:write", "--id", "k1", "--file", str(path)]
    )
    assert code == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("jf_")
    stored = path.read_text()
    assert token not in stored
    assert hash_key(token) in stored
    assert path.stat().st_mode & 0o077 == 0  # only the owner can read the hashes

    client = create_app(dataclasses.replace(settings, auth="enabled", api_keys_file=str(path))).test_client()
    assert client.post("/v1/jobs/report", json={}, headers={"Authorization": f"Bearer {token}"}).status_code == 202

    assert cli.main(["keys", "list", "--file", str(path)]) == 0
    assert "billing" in capsys.readouterr().out
    assert cli.main(["keys", "revoke", "k1", "--file", str(path)]) == 0
    assert cli.main(["keys", "revoke", "k1", "--file", str(path)]) == 3
    restarted = create_app(dataclasses.replace(settings, auth="enabled", api_keys_file=str(path))).test_client()
    assert restarted.post("/v1/jobs/report", json={}, headers={"Authorization": f"Bearer {token}"}).status_code == 401
