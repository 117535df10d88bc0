"""Real multi-node Redis for the topology tests: a six-node Cluster (3 masters, 3 replicas) and a Sentinel setup
(primary, replica, three sentinels), module-scoped. Every process runs in its own process group with data in a tmp
dir and is stopped by the fixture's finalizer; failures are real SIGKILLs, waited out by asking the servers."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.conftest import require_binary
from tests.topology.cluster import RedisClusterSetup
from tests.topology.sentinel import MASTER_NAME, RedisSentinelSetup, sentinel_argv
from tests.topology.servers import Process, free_ports, redis_server, wait_for


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterSetup]:
    """A real six-node Redis Cluster on free ports, ready (cluster_state:ok on all nodes, replicas in sync)."""
    cli = require_binary("redis-cli")
    base = tmp_path_factory.mktemp("cluster")
    ports = free_ports(12)
    setup = RedisClusterSetup({})
    for port, bus in zip(ports[:6], ports[6:], strict=True):
        extra = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-port", str(bus)]
        # Fast failure detection: a dead master is replaced within ~2 s instead of the default 15 s.
        extra += ["--cluster-node-timeout", "1000", "--cluster-replica-validity-factor", "0"]
        setup.processes[port] = redis_server(port, base / str(port), *extra)
    try:
        for process in setup.processes.values():
            process.start()
        addresses = [f"127.0.0.1:{port}" for port in setup.processes]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "1", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        wait_for("the new cluster to be ok on every node", setup.healthy, timeout=30)
        setup.url = "redis+cluster://" + ",".join(addresses[:3])
        yield setup
    finally:
        for process in setup.processes.values():
            process.stop()


@pytest.fixture(scope="module")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisSentinelSetup]:
    """A real Sentinel setup on free ports, ready: sentinels agree on the primary and see the replica in sync."""
    base = tmp_path_factory.mktemp("sentinel")
    primary, replica, *sentinel_ports = free_ports(5)
    setup = RedisSentinelSetup(
        {
            primary: redis_server(primary, base / str(primary)),
            replica: redis_server(replica, base / str(replica), "--replicaof", "127.0.0.1", str(primary)),
        },
        {},
    )
    for port in sentinel_ports:
        conf = base / f"sentinel-{port}" / "sentinel.conf"
        conf.parent.mkdir()
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {conf.parent}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {primary} 2\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
            f"sentinel failover-timeout {MASTER_NAME} 3000\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n"
        )
        setup.sentinels[port] = Process(port, sentinel_argv(conf), conf.parent / "sentinel.log")
    try:
        for process in [*setup.data.values(), *setup.sentinels.values()]:
            process.start()
        setup.wait_ready()
        setup.url = f"redis+sentinel://{','.join(f'127.0.0.1:{p}' for p in sentinel_ports)}/{MASTER_NAME}/0"
        yield setup
    finally:
        for process in [*setup.sentinels.values(), *setup.data.values()]:
            process.stop()
