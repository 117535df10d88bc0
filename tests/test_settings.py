"""Settings: one frozen object from the environment; a bad value fails with one line naming the variable."""

from __future__ import annotations

import dataclasses

import pytest

from jobfleet.core.errors import ConfigError
from jobfleet.core.redis_url import redact_url
from jobfleet.core.settings import Settings


def test_defaults_match_the_readme() -> None:
    s = Settings.from_env({})
    assert (s.api_host, s.api_port, s.worker_processes, s.worker_threads) == ("127.0.0.1", 8000, 2, 8)
    assert s.max_body_bytes == 1 << 20
    assert s.effective_redis_url == "redis://127.0.0.1:6379/0"


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings.from_env({}).api_port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"JOBFLEET_API_PORT": "eighty"}, "JOBFLEET_API_PORT"),
        ({"JOBFLEET_WORKER_THREADS": "0"}, "JOBFLEET_WORKER_THREADS"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL"),
        ({"JOBFLEET_SMTP_STARTTLS": "maybe"}, "JOBFLEET_SMTP_STARTTLS"),
        ({"JOBFLEET_MIN_BACKOFF_SECONDS": "10", "JOBFLEET_MAX_BACKOFF_SECONDS": "1"}, "JOBFLEET_MAX_BACKOFF_SECONDS"),
        ({"JOBFLEET_LOG_LEVEL": "LOUD"}, "JOBFLEET_LOG_LEVEL"),
    ],
)
def test_an_invalid_variable_fails_naming_it(env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        Settings.from_env(env)


def test_redis_passwords_never_appear_in_messages() -> None:
    assert redact_url("redis://user:hunter2@host:6379/0") == "redis://user:***@host:6379/0"
    assert redact_url("rediss://:hunter2@host") == "rediss://:***@host"
    assert redact_url("redis://host:6379") == "redis://host:6379"
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"REDIS_URL": "http://u:hunter2@host"})
    assert "hunter2" not in str(info.value)
