"""make_client against a real Redis Cluster and a real Sentinel setup: routing, scripts within one hash slot, and
the same client working again after a master is SIGKILLed, within a bound (the measured times are printed)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from redis.exceptions import ClusterCrossSlotError, RedisClusterException

from jobfleet.core.redis_client import describe_topology, make_client
from jobfleet.core.settings import Settings
from tests.topology.cluster import RedisClusterSetup
from tests.topology.sentinel import RedisSentinelSetup
from tests.topology.servers import ask, wait_for

RECOVERY_BOUND_SECONDS = 15.0
# Sets the first key and counts in the second: a state-changing script, like the store's.
WRITE_BOTH = "redis.call('set', KEYS[1], ARGV[1]); return redis.call('incr', KEYS[2])"


@contextmanager
def client_for(url: str, **kwargs: Any) -> Iterator[redis.Redis]:
    """make_client for ``url``, closed afterwards."""
    client = make_client(Settings.from_env({"REDIS_URL": url}), **kwargs)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def cluster_client(redis_cluster: RedisClusterSetup) -> Iterator[redis.Redis]:
    """make_client for the cluster's redis+cluster:// URL."""
    with client_for(redis_cluster.url) as client:
        yield client


@pytest.fixture
def sentinel_client(redis_sentinel: RedisSentinelSetup) -> Iterator[redis.Redis]:
    """make_client for the setup's redis+sentinel:// URL."""
    with client_for(redis_sentinel.url) as client:
        yield client


def keys_on_every_master(cluster: RedisClusterSetup) -> dict[int, str]:
    """One key per master, by the master's port."""
    found: dict[int, str] = {}
    n = 0
    while len(found) < 3:
        found.setdefault(cluster.master_for_key(f"key-{n}"), f"key-{n}")
        n += 1
    return found


def test_the_cluster_client_reads_and_writes_keys_on_every_master(
    redis_cluster: RedisClusterSetup, cluster_client: redis.Redis
) -> None:
    for port, key in keys_on_every_master(redis_cluster).items():
        assert cluster_client.set(key, f"on {port}")
        assert cluster_client.get(key) == f"on {port}".encode()
        assert ask(port, "GET", key) == f"on {port}"  # the data lives on that master: a real cluster
    assert describe_topology(redis_cluster.url).startswith("Cluster via startup nodes 127.0.0.1:")


def test_cluster_scripts_and_transactions_stay_within_one_hash_slot(
    redis_cluster: RedisClusterSetup, cluster_client: redis.Redis
) -> None:
    assert cluster_client.eval(WRITE_BOTH, 2, "{job:1}:state", "{job:1}:count", "queued") == 1
    assert cluster_client.get("{job:1}:state") == b"queued"
    # The server refuses a script over two slots ("a" and "b" hash apart); redis-py refuses before sending.
    node = cluster_client.get_node(host="127.0.0.1", port=redis_cluster.master_for_key("a"))
    with pytest.raises(ClusterCrossSlotError):  # the server's -CROSSSLOT reply
        cluster_client.execute_command("EVAL", WRITE_BOTH, 2, "a", "b", "x", target_nodes=node)
    with pytest.raises(RedisClusterException, match="same key slot"):  # not a redis.RedisError
        cluster_client.eval(WRITE_BOTH, 2, "a", "b", "x")
    with cluster_client.pipeline(transaction=False) as pipe:  # split per node, so not atomic
        assert pipe.set("a", 1).set("b", 2).execute() == [True, True]
    with pytest.raises(RedisClusterException, match="slot"), cluster_client.pipeline(transaction=True) as pipe:
        pipe.set("a", 1).set("b", 2).execute()


def test_retries_reach_the_cluster_client(redis_cluster: RedisClusterSetup) -> None:
    for retries in (0, 2):
        with client_for(redis_cluster.url, retries=retries) as client:
            assert client.retry.get_retries() == retries


def test_the_cluster_client_keeps_working_after_a_master_is_killed(
    redis_cluster: RedisClusterSetup, cluster_client: redis.Redis
) -> None:
    key, counter = "{victim}:state", "{victim}:count"
    script = cluster_client.register_script(WRITE_BOTH)
    assert script(keys=[key, counter], args=["before"]) == 1
    replica = redis_cluster.replica_of(redis_cluster.master_for_key(key))
    print(f"\ncluster: script cached on the replica before failover: {ask(replica, 'SCRIPT', 'EXISTS', script.sha)}")

    killed = redis_cluster.kill_master(key, wait=False)
    start, errors = time.monotonic(), []
    while True:
        try:
            assert cluster_client.set(key, "after")
            assert script(keys=[key, counter], args=["after"]) >= 1
            break
        except (redis.RedisError, RedisClusterException) as exc:
            errors.append(type(exc).__name__)
            assert time.monotonic() - start < RECOVERY_BOUND_SECONDS, f"still failing: {errors[-5:]}"
            time.sleep(0.05)
    recovered = time.monotonic() - start
    promoted = redis_cluster.master_for_key(key)
    print(
        f"cluster: master {killed.port} SIGKILLed; the same client worked again after {recovered:.2f}s "
        f"(new master {promoted}; {len(errors)} failed attempts: {sorted(set(errors))})"
    )
    assert promoted == replica
    assert ask(promoted, "GET", key) == "after"
    redis_cluster.wait_promoted(killed.node_id)
    print(f"cluster: whole again (the killed node rejoined as a replica) after {redis_cluster.revive():.2f}s")


def recovery(ticks: list[tuple[float, str]], start: float) -> float | None:
    """Seconds from ``start`` to the first successful tick after the first failed one; None before that."""
    after = [(t, outcome) for t, outcome in ticks if t > start]
    failed = next((i for i, (_, outcome) in enumerate(after) if outcome != "ok"), None)
    if failed is None:
        return None
    return next((t - start for t, outcome in after[failed:] if outcome == "ok"), None)


def write_ticks(settings: Settings, ticks: list[tuple[float, str]], stop: threading.Event) -> None:
    """Write every 50 ms through one make_client client, recording each outcome, until ``stop``."""
    client = make_client(settings)
    n = 0
    while not stop.is_set():
        n += 1
        try:
            client.set("tick", n)
            ticks.append((time.monotonic(), "ok"))
        except redis.RedisError as exc:
            ticks.append((time.monotonic(), type(exc).__name__))
        time.sleep(0.05)
    client.close()


def test_the_sentinel_client_follows_the_primary_through_a_failover(
    redis_sentinel: RedisSentinelSetup, sentinel_client: redis.Redis
) -> None:
    settings = Settings.from_env({"REDIS_URL": redis_sentinel.url})
    no_retry = make_client(settings, retries=0)
    script = sentinel_client.register_script(WRITE_BOTH)
    assert sentinel_client.set("before", 1)
    assert no_retry.set("before", 2)
    assert script(keys=["s", "n"], args=["before"]) == 1

    ticks: list[tuple[float, str]] = []
    stop = threading.Event()
    writer = threading.Thread(target=write_ticks, args=(settings, ticks, stop))
    writer.start()
    try:
        wait_for("the writer's first tick", lambda: bool(ticks))
        start = time.monotonic()
        failover = redis_sentinel.failover(kill=True)
        wait_for("the writer to write again", lambda: recovery(ticks, start) is not None, RECOVERY_BOUND_SECONDS)
    finally:
        stop.set()
        writer.join()
    recovered = recovery(ticks, start)
    failed = sorted({outcome for t, outcome in ticks if t > start and outcome != "ok"})
    print(
        f"\nsentinel: primary {failover.old} SIGKILLed; sentinels agreed on {failover.new} after "
        f"{failover.seconds:.2f}s; a writer on one client wrote again after {recovered:.2f}s (errors: {failed})"
    )
    assert recovered is not None
    assert recovered < RECOVERY_BOUND_SECONDS
    print(f"sentinel: script cached on the new primary: {ask(failover.new, 'SCRIPT', 'EXISTS', script.sha)}")
    assert sentinel_client.set("after", 1)  # its dead connection is dropped and the one retry finds the new primary
    assert script(keys=["s", "n"], args=["after"]) >= 1  # NOSCRIPT on the new primary is answered by reloading
    # Even with retries=0: the pool replaces a connection the server closed while idle before handing it out.
    assert no_retry.set("after", 2)
    no_retry.close()
    assert ask(failover.new, "GET", "after") == "2"

    print(f"sentinel: old primary demoted to a replica in sync after {redis_sentinel.wait_ready():.2f}s more")
    with pytest.raises(redis.ReadOnlyError):
        ask(failover.old, "SET", "stale", 1)
    assert sentinel_client.set("after", 3)
    # A connection still on the demoted primary gets READONLY: redis-py's SentinelManagedConnection turns it into a
    # ConnectionError and disconnects, so the caller's next try asks the sentinels again. Checked with our parser.
    pool = sentinel_client.connection_pool
    connection = pool.get_connection()
    try:
        for command in [("SET", "stale", 1), ("EVAL", WRITE_BOTH, 2, "s", "n", "stale")]:
            connection.disconnect()
            connection.connect_to(("127.0.0.1", failover.old))
            connection.send_command(*command)
            with pytest.raises(redis.ConnectionError, match="previous master is now a slave"):
                connection.read_response()
    finally:
        connection.disconnect()
        pool.release(connection)


@pytest.mark.slow
def test_after_a_planned_failover_writes_reach_the_old_primary_until_the_sentinels_demote_it(
    redis_sentinel: RedisSentinelSetup, sentinel_client: redis.Redis
) -> None:
    # Sentinel does not touch a live old primary while it fails over (SENTINEL FAILOVER, or a partition): it demotes
    # it ~8 s later. Until then a pooled connection keeps writing there, acknowledged, and those writes are lost.
    redis_sentinel.wait_ready()
    assert sentinel_client.set("warm", 1)  # a pooled connection to the primary
    failover = redis_sentinel.failover(kill=False)
    start = time.monotonic()
    assert sentinel_client.set("stray", 1)
    assert (ask(failover.old, "GET", "stray"), ask(failover.new, "GET", "stray")) == ("1", None)
    n = 0
    while True:
        n += 1
        with contextlib.suppress(redis.ConnectionError):  # the sentinels close our connection while demoting
            sentinel_client.set("planned", n)
        if ask(failover.new, "GET", "planned") == str(n):
            break
        assert time.monotonic() - start < 30, "the client never reached the new primary"
        time.sleep(0.05)
    waited = time.monotonic() - start
    print(f"\nsentinel: SENTINEL FAILOVER took {failover.seconds:.2f}s; writes went on to the old one {waited:.2f}s")
    # The old primary is a replica now: it drops its data (and "stray" with it) to sync from the new primary.
    assert ask(failover.new, "GET", "stray") is None
    assert ask(failover.old, "ROLE")[0] == "slave"
