"""Fail closed: an API without keys starts only when JOBFLEET_AUTH=disabled says so (`jobfleet run` and `make stack`
say it for a loopback API on a fresh clone), and a route nobody gave a scope needs a key all the same."""

from __future__ import annotations

import dataclasses

import pytest
from flask import Blueprint, Flask, jsonify
from flask.testing import FlaskClient

from jobfleet.core.errors import ConfigError
from jobfleet.core.settings import Settings
from tests.security.conftest import bearer

PUBLIC = ["/healthz", "/readyz", "/metrics", "/openapi.json"]


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0", "localhost"])
def test_auto_without_a_keys_file_refuses_to_start_wherever_it_binds(settings: Settings, host: str) -> None:
    from jobfleet.app import create_app

    # JOBFLEET_API_HOST is only what `jobfleet api` passes to granian: another server's command line may bind
    # anything, so the app cannot trust it and never serves without auth unless told to.
    with pytest.raises(ConfigError) as refused:
        create_app(dataclasses.replace(settings, auth="auto", api_keys_file="", api_host=host))
    message = str(refused.value)
    assert "jobfleet keys issue" in message
    assert "JOBFLEET_AUTH=disabled" in message


def test_the_wsgi_factory_fails_closed_under_any_server(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    from jobfleet.app.wsgi import create

    # e.g. `granian --host 0.0.0.0 --factory jobfleet.app.wsgi:create` with the environment of a fresh clone
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    for name in ("JOBFLEET_AUTH", "JOBFLEET_API_KEYS_FILE", "JOBFLEET_API_HOST"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="JOBFLEET_AUTH=disabled"):
        create()


def test_run_and_stack_disable_auth_only_for_a_loopback_api_without_keys() -> None:
    from jobfleet.ops.fleet import api_env

    assert api_env(Settings.from_env({})) == {"JOBFLEET_AUTH": "disabled"}
    assert api_env(Settings.from_env({"JOBFLEET_API_HOST": "::1"})) == {"JOBFLEET_AUTH": "disabled"}
    assert api_env(Settings.from_env({"JOBFLEET_API_KEYS_FILE": "/etc/keys.json"})) == {}
    assert api_env(Settings.from_env({"JOBFLEET_AUTH": "disabled", "JOBFLEET_API_HOST": "0.0.0.0"})) == {}
    with pytest.raises(ConfigError, match="jobfleet keys issue"):
        api_env(Settings.from_env({"JOBFLEET_API_HOST": "0.0.0.0"}))


def test_the_supervisor_gives_only_the_api_the_disabled_mode() -> None:
    from jobfleet.ops.supervisor import Supervisor

    children = {c.name: c for c in Supervisor(Settings.from_env({}), {"PATH": "/usr/bin"}).plan("redis://r:6379/0")}
    assert children["api"].env["JOBFLEET_AUTH"] == "disabled"
    assert "JOBFLEET_AUTH" not in children["worker"].env
    assert children["worker"].env["REDIS_URL"] == "redis://r:6379/0"


def _with_an_unscoped_route(app: Flask) -> FlaskClient:
    extra = Blueprint("extra", __name__)

    @extra.get("/v1/extra")
    def unscoped() -> object:
        return jsonify({"secret": "tenant data"})

    app.register_blueprint(extra)
    return app.test_client()


def test_a_route_without_a_scope_entry_needs_a_key(secure_app: Flask) -> None:
    client = _with_an_unscoped_route(secure_app)
    anonymous = client.get("/v1/extra")
    assert anonymous.status_code == 401
    assert "tenant data" not in anonymous.get_data(as_text=True)
    # A valid key is not enough either: no scope grants an endpoint that declares none.
    keyed = client.get("/v1/extra", headers=bearer("everything"))
    assert keyed.status_code == 403
    assert "ENDPOINT_SCOPES" in keyed.get_json()["detail"]


@pytest.mark.parametrize("path", PUBLIC)
def test_only_the_listed_routes_are_public(secure_client: FlaskClient, path: str) -> None:
    from jobfleet.app.auth import PUBLIC_ENDPOINTS

    assert secure_client.get(path).status_code == 200
    rules = {r.rule: r.endpoint for r in secure_client.application.url_map.iter_rules()}
    assert rules[path] in PUBLIC_ENDPOINTS


def test_an_unknown_url_is_still_a_404(secure_client: FlaskClient) -> None:
    # No view runs for an unmatched URL, so there is nothing to protect and a client's typo stays a 404.
    assert secure_client.get("/v1/nothing-here", headers=bearer("alice")).status_code == 404
