"""The startup check says loudly when the connected Redis could evict or lose queue data, and says so honestly
when a managed Redis does not let it look."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from jobfleet.core.redis_check import check_durability, warn_if_unsafe
from tests.conftest import socket_closed_port


@pytest.fixture
def configurable(redis_client: redis.Redis) -> Iterator[redis.Redis]:
    """The session Redis, its maxmemory-policy, appendonly and ACL users restored afterwards."""
    saved = {key: redis_client.config_get(key)[key] for key in ("maxmemory-policy", "appendonly")}
    yield redis_client
    for key, value in saved.items():
        redis_client.config_set(key, value)
    for user in ("noconfig", "noinspect"):
        redis_client.acl_deluser(user)


def restricted_client(admin: redis.Redis, user: str, *commands: str) -> redis.Redis:
    """A client logged in as an ACL user that may run everything except ``commands`` (a managed Redis)."""
    admin.acl_setuser(
        user, enabled=True, passwords=["+pw"], keys=["~*"], channels=["&*"], commands=["+@all", *commands]
    )
    kwargs = admin.connection_pool.connection_kwargs
    return redis.Redis(host=kwargs["host"], port=kwargs["port"], username=user, password="pw")


def test_noeviction_with_aof_is_ok(configurable: redis.Redis) -> None:
    configurable.config_set("maxmemory-policy", "noeviction")
    configurable.config_set("appendonly", "yes")

    result = check_durability(configurable)

    assert (result.verdict, result.source, result.problems) == ("ok", "CONFIG GET", [])


def test_an_evicting_policy_is_unsafe_and_named(configurable: redis.Redis) -> None:
    configurable.config_set("maxmemory-policy", "allkeys-lru")
    configurable.config_set("appendonly", "yes")

    result = check_durability(configurable)

    assert result.verdict == "unsafe"
    assert result.maxmemory_policy == "allkeys-lru"
    assert len(result.problems) == 1
    assert "EVICT" in result.problems[0]
    assert "noeviction" in result.problems[0]


def test_appendonly_off_is_unsafe(configurable: redis.Redis) -> None:
    configurable.config_set("maxmemory-policy", "noeviction")
    configurable.config_set("appendonly", "no")

    result = check_durability(configurable)

    assert result.verdict == "unsafe"
    assert result.appendonly is False
    assert any("appendonly" in problem for problem in result.problems)


def test_a_redis_that_forbids_config_is_checked_through_info(configurable: redis.Redis) -> None:
    # Given a managed Redis whose user may not run CONFIG (the usual ElastiCache/Memorystore restriction)
    configurable.config_set("maxmemory-policy", "volatile-lru")
    configurable.config_set("appendonly", "yes")
    client = restricted_client(configurable, "noconfig", "-config")
    try:
        with pytest.raises(redis.ResponseError):
            client.config_get("maxmemory-policy")

        result = check_durability(client)
    finally:
        client.close()

    # Then INFO still tells the truth
    assert (result.verdict, result.source, result.maxmemory_policy) == ("unsafe", "INFO", "volatile-lru")


def test_a_redis_that_forbids_config_and_info_is_reported_as_unverified(configurable: redis.Redis) -> None:
    client = restricted_client(configurable, "noinspect", "-config", "-info")
    try:
        result = check_durability(client)
    finally:
        client.close()

    assert result.verdict == "unverified"
    assert "could not read" in result.problems[0]


def test_warn_if_unsafe_never_raises_for_an_unreachable_redis() -> None:
    client = redis.Redis(port=socket_closed_port(), socket_connect_timeout=0.5)

    result = warn_if_unsafe(client, where="test")

    assert result.verdict == "unverified"
    assert "unreachable" in result.problems[0]
