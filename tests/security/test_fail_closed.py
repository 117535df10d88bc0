"""Fail closed: an API without keys starts only when JOBFLEET_AUTH=disabled says so (`jobfleet run` and `make stack`
say it for a loopback API on a fresh clone)."""

from __future__ import annotations

import dataclasses

import pytest

from jobfleet.core.errors import ConfigError
from jobfleet.core.settings import Settings


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
