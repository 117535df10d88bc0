"""The REDIS_URL convention for single node, Sentinel and Cluster: what is accepted, what a bad value says, how the
password, TLS and retries reach every connection, and why ``retries=0`` matters for state-changing scripts."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import redis

from jobfleet.core.errors import ConfigError
from jobfleet.core.redis_client import describe_topology, make_client
from jobfleet.core.redis_url import RedisTopology, parse_redis_url
from jobfleet.core.settings import Settings

SENTINELS = "redis+sentinel://jobfleet:s3cret@10.0.0.1:26379,10.0.0.2,[::1]:26380/mymaster/2"


def test_single_node_urls_are_left_to_redis_py() -> None:
    assert parse_redis_url("redis://h:6379/0") == RedisTopology("single", tls=False)
    assert parse_redis_url("rediss://:pw@h:6380/1") == RedisTopology("single", tls=True)
    assert parse_redis_url("unix:///run/redis.sock?db=1").kind == "single"


def test_a_sentinel_url_names_the_sentinels_and_the_master() -> None:
    assert parse_redis_url(SENTINELS) == RedisTopology(
        "sentinel",
        tls=False,
        nodes=(("10.0.0.1", 26379), ("10.0.0.2", 26379), ("::1", 26380)),  # 26379 unless said otherwise
        master_name="mymaster",
        db=2,
        username="jobfleet",
        password="s3cret",
    )
    assert parse_redis_url("rediss+sentinel://:p%40ss@s1:26379/main").password == "p@ss"
    assert parse_redis_url("rediss+sentinel://s1:26379/main").tls


def test_a_cluster_url_names_its_startup_nodes() -> None:
    topology = parse_redis_url("rediss+cluster://:pw@r1:7000,r2:7001/")
    assert (topology.kind, topology.tls, topology.nodes, topology.password) == (
        "cluster",
        True,
        (("r1", 7000), ("r2", 7001)),
        "pw",
    )


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://h:6379", "must start with redis://"),
        ("redis+proxy://h:1/x", "must start with redis://"),
        ("unix+sentinel://h/x", "must start with redis://"),
        ("redis+sentinel://:hunter2@s1:26379", "lacks the master name"),
        ("redis+sentinel://:hunter2@s1:26379/", "lacks the master name"),
        ("redis+sentinel://s1:26379/mymaster/one", "must be a number"),
        ("redis+sentinel://s1:port/mymaster", "not a number in 1-65535"),
        ("redis+sentinel:///mymaster", "empty host"),
        ("redis+cluster://:hunter2@r1:7000,r2", "cluster node 'r2' has no port"),
        ("redis+cluster://r1:70000", "not a number in 1-65535"),
        ("redis+cluster://r1:7000,", "empty host"),
        ("redis+cluster://r1:7000/3", "only database 0"),
        ("redis+cluster://r1:7000?ssl=true", "takes no ?options"),
    ],
)
def test_a_malformed_url_fails_naming_redis_url_and_how_to_write_it(url: str, says: str) -> None:
    with pytest.raises(ConfigError, match=r"^REDIS_URL=") as info:
        Settings.from_env({"REDIS_URL": url})
    assert says in str(info.value)
    assert "hunter2" not in str(info.value)
    if "+" in url.split("://", maxsplit=1)[0] and "must start" not in says:
        assert "write redis+" in str(info.value)  # the expected shape, to copy


def test_descriptions_for_logs_never_show_the_password() -> None:
    assert describe_topology(SENTINELS) == (
        "Sentinel master 'mymaster' db 2 via sentinels 10.0.0.1:26379,10.0.0.2:26379,[::1]:26380 as jobfleet"
    )
    assert describe_topology("rediss+cluster://:s3cret@r1:7000,r2:7001") == (
        "Cluster via startup nodes r1:7000,r2:7001 over TLS"
    )
    assert describe_topology("redis://u:s3cret@h:6379/0?password=s3cret") == "single node redis://u:***@h:6379/0"


def test_one_password_authenticates_to_the_sentinels_and_the_primary(tmp_path: Path) -> None:
    client = make_client(Settings.from_env({"REDIS_URL": SENTINELS}), timeout=0.5, retries=0)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["username"], kwargs["password"], kwargs["db"]) == ("jobfleet", "s3cret", 2)
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"], kwargs["health_check_interval"]) == (
        0.5,
        0.5,
        15,
    )
    assert kwargs["retry"].get_retries() == 0
    for sentinel in client.connection_pool.sentinel_manager.sentinels:
        sentinel_kwargs = sentinel.connection_pool.connection_kwargs
        assert (sentinel_kwargs["username"], sentinel_kwargs["password"]) == ("jobfleet", "s3cret")
        assert sentinel_kwargs["socket_timeout"] == 0.5
    client.close()

    secret = tmp_path / "password"
    secret.write_text("from-file\n")
    env = {"REDIS_URL": "rediss+sentinel://s1:26379/main", "JOBFLEET_REDIS_PASSWORD_FILE": str(secret)}
    client = make_client(Settings.from_env(env | {"JOBFLEET_REDIS_CA_FILE": "/etc/ca.pem"}))
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["password"], kwargs["ssl_ca_certs"], kwargs["ssl_cert_reqs"]) == (
        "from-file",
        "/etc/ca.pem",
        "required",
    )
    assert "SSL" in client.connection_pool.connection_class.__name__
    [sentinel] = client.connection_pool.sentinel_manager.sentinels
    assert sentinel.connection_pool.connection_kwargs["password"] == "from-file"
    assert "SSL" in sentinel.connection_pool.connection_class.__name__
    assert kwargs["retry"].get_retries() == 1  # the default, as before
    client.close()


def test_a_negative_retry_count_is_refused() -> None:
    with pytest.raises(ValueError, match="retries"):
        make_client(Settings.from_env({}), retries=-1)


BUSY_FOR_800_MS = """
local t = redis.call('TIME'); local start = t[1] * 1e6 + t[2]
repeat t = redis.call('TIME') until t[1] * 1e6 + t[2] - start > 8e5
return 1
"""


def incr_while_redis_is_busy(url: str, retries: int) -> tuple[str, int]:
    """INCR once through make_client while a script keeps Redis busy past the timeout: (outcome, final count)."""
    client = make_client(Settings.from_env({"REDIS_URL": url}), timeout=0.5, retries=retries)
    client.ping()  # connected before Redis gets busy: the INCR itself times out, not the handshake
    blocker = redis.Redis.from_url(url)
    blocked = threading.Thread(target=blocker.eval, args=(BUSY_FOR_800_MS, 0))
    blocked.start()
    time.sleep(0.1)
    try:
        outcome = f"returned {client.incr('count')}"
    except redis.TimeoutError:
        outcome = "TimeoutError"
    blocked.join()
    deadline = time.monotonic() + 2
    while not (count := int(blocker.get("count") or 0)) and time.monotonic() < deadline:
        time.sleep(0.02)  # the timed-out INCR runs just after the script: wait for it, not for more
    client.close()
    blocker.close()
    return outcome, count


def test_retries_resend_a_command_that_timed_out_so_scripts_ask_for_none(redis_url: str) -> None:
    # The timed-out INCR still runs once Redis is free: re-sending it runs it twice.
    assert incr_while_redis_is_busy(redis_url, retries=1) == ("returned 2", 2)
    with redis.Redis.from_url(redis_url) as admin:
        admin.delete("count")
    assert incr_while_redis_is_busy(redis_url, retries=0) == ("TimeoutError", 1)
