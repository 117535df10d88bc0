"""A six-node Redis Cluster the tests own: its nodes and roles as the servers report them, and real failures."""

from __future__ import annotations

from dataclasses import dataclass

from tests.topology.servers import Process, ask, wait_for


@dataclass
class ClusterNodeInfo:
    """One node as CLUSTER NODES reports it."""

    port: int
    node_id: str
    role: str  # "master" or "replica"
    master_id: str  # "-" for a master
    slots: list[tuple[int, int]]
    failed: bool


@dataclass
class KilledMaster:
    """What ``kill_master`` did: the port and node id it SIGKILLed, and the seconds until the cluster was ok."""

    port: int
    node_id: str
    seconds: float


@dataclass
class RedisClusterSetup:
    """Six cluster nodes (3 masters with one replica each); ``url`` is the redis+cluster:// startup URL."""

    processes: dict[int, Process]
    url: str = ""

    def live_ports(self) -> list[int]:
        """Ports of the nodes whose process runs."""
        return [port for port, process in self.processes.items() if process.alive]

    def nodes(self) -> list[ClusterNodeInfo]:
        """Every node with its role and slot ranges, as a live node sees the cluster now."""
        raw: str = ask(self.live_ports()[0], "CLUSTER", "NODES")
        nodes = []
        for line in raw.strip().splitlines():
            # <id> <ip:port@bus> <flags> <master-id> <ping> <pong> <epoch> <link> <slot or lo-hi>...
            node_id, address, flags, master_id, _, _, _, link, *slots = line.split()
            ranges = [s.split("-") for s in slots if not s.startswith("[")]  # [..] are slots being migrated
            port = int(address.split("@")[0].rsplit(":", 1)[1])
            role = "master" if "master" in flags.split(",") else "replica"
            failed = bool({"fail", "fail?"} & set(flags.split(","))) or link == "disconnected"
            nodes.append(
                ClusterNodeInfo(port, node_id, role, master_id, [(int(r[0]), int(r[-1])) for r in ranges], failed)
            )
        return nodes

    def masters(self) -> list[ClusterNodeInfo]:
        """The live masters ordered by their first slot (index 0 serves slot 0)."""
        live = [n for n in self.nodes() if n.role == "master" and n.slots and not n.failed]
        return sorted(live, key=lambda n: n.slots[0][0])

    def replica_of(self, master_port: int) -> int:
        """Port of a live replica of the master at ``master_port``."""
        nodes = self.nodes()
        master_id = next(n.node_id for n in nodes if n.port == master_port)
        return next(n.port for n in nodes if n.master_id == master_id and not n.failed)

    def master_for_key(self, key: str) -> int:
        """Port of the master that serves ``key``'s hash slot now."""
        slot = int(ask(self.live_ports()[0], "CLUSTER", "KEYSLOT", key))
        return next(n.port for n in self.masters() if any(lo <= slot <= hi for lo, hi in n.slots))

    def healthy(self) -> bool:
        """Every live node says cluster_state:ok; 3 masters serve all slots, each with a live replica in sync."""
        if not all("cluster_state:ok" in ask(port, "CLUSTER", "INFO") for port in self.live_ports()):
            return False
        masters = self.masters()
        covered = sum(hi - lo + 1 for n in masters for lo, hi in n.slots)
        replicas = [n for n in self.nodes() if n.role == "replica" and not n.failed]
        if not all(ask(n.port, "INFO", "replication").get("master_link_status") == "up" for n in replicas):
            return False
        served = {n.master_id for n in replicas}
        return len(masters) == 3 and covered == 16384 and all(m.node_id in served for m in masters)

    def kill_master(self, which: int | str = 0, *, wait: bool = True) -> KilledMaster:
        """SIGKILL a master (by index in ``masters()``, or the one serving a key); with ``wait``, return once its
        replica serves its slots and the cluster is ok again (else call ``wait_promoted`` later)."""
        port = self.master_for_key(which) if isinstance(which, str) else self.masters()[which].port
        dead_id = next(n.node_id for n in self.nodes() if n.port == port)
        self.processes[port].kill()
        return KilledMaster(port, dead_id, self.wait_promoted(dead_id) if wait else 0.0)

    def wait_promoted(self, dead_id: str) -> float:
        """Wait until a replica of the master ``dead_id`` serves its slots and the cluster is ok; the seconds."""

        def promoted() -> bool:
            live = all("cluster_state:ok" in ask(port, "CLUSTER", "INFO") for port in self.live_ports())
            return live and len(self.masters()) == 3 and all(n.node_id != dead_id for n in self.masters())

        return wait_for("a replica to take over the killed master's slots", promoted)

    def revive(self) -> float:
        """Restart every killed node (it rejoins as a replica); return the seconds until the cluster is whole."""
        for process in self.processes.values():
            if not process.alive:
                process.start()
        return wait_for("the cluster to be whole again (3 masters, 3 replicas)", self.healthy)
