"""Every Redis key jobfleet reads or writes, in one place, and which partition a job lives in.

A namespace's state is split into partitions. Each partition's keys share one hash tag, ``{<ns>:<p>}``, so every
script call touches a single hash slot and runs unchanged on one Redis and on Redis Cluster (where the partitions
of a queue spread over the masters). With more than one partition, partition p's tag is the first of ``{<ns>:<p>}``,
``{<ns>:<p>~1}``, ``{<ns>:<p>~2}``… whose slot lies in the p-th of P equal slices of the 16,384 slots: CRC16 of the
plain names bunches up (P=12 over 3 masters would put 6 partitions on one of them), evenly spread slots put P/M
partitions on each of M masters that split the slots evenly, as ``redis-cli --cluster create`` does.
A job lives in partition ``crc32(job id) mod partitions``; a job id therefore names its slot, and a lookup by id is
one call. Keys outside the partitions (the rate-limit buckets, the queue registry, the API keys' last use) are used
by single-key calls only."""

from __future__ import annotations

import functools
import hashlib
import zlib
from dataclasses import dataclass, field

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot


@dataclass(frozen=True)
class Keys:
    """The key schema of one namespace split into ``partitions`` partitions."""

    ns: str
    partitions: int = 1
    tags: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", partition_tags(self.ns, self.partitions))

    # --- partitions ---
    def partition_of(self, job_id: str) -> int:
        """The partition a job lives in (stable across processes and languages: CRC-32 of the id)."""
        return zlib.crc32(job_id.encode()) % self.partitions

    def partition_of_key(self, digest: str) -> int:
        """The partition an Idempotency-Key's record lives in (its job is placed in the same one)."""
        return zlib.crc32(digest.encode()) % self.partitions

    def tag(self, partition: int) -> str:
        """The hash tag shared by every key of ``partition``."""
        return self.tags[partition]

    # --- per job (the partition follows from the id) ---
    def job(self, job_id: str) -> str:
        """Hash: the job's record — state, the encoded message (its payload), attempts, result, error, history."""
        return self.job_prefix(self.partition_of(job_id)) + job_id

    def job_prefix(self, partition: int) -> str:
        """Prefix of the job hashes of ``partition`` (scripts name the jobs they take off a queue with it)."""
        return f"{self.tag(partition)}:job:"

    # --- per partition ---
    def queue(self, partition: int, queue_name: str) -> str:
        """Sorted set: the waiting jobs of a queue by when they may start (ms); due ones have a score <= now."""
        return self.queue_prefix(partition) + queue_name

    def queue_prefix(self, partition: int) -> str:
        """Prefix of the queue sorted sets of ``partition``."""
        return f"{self.tag(partition)}:q:"

    def running(self, partition: int, queue_name: str) -> str:
        """Sorted set: ``<job id>:<token>`` of a queue's running attempts by start time (ms)."""
        return f"{self.tag(partition)}:run:{queue_name}"

    def heartbeats(self, partition: int) -> str:
        """Sorted set: worker ids by last heartbeat (Redis time, ms)."""
        return f"{self.tag(partition)}:hb"

    def held_back(self, partition: int) -> str:
        """Hash: ``<queue>|<actor>`` -> how many times a job was held back because its worker lacked the actor."""
        return f"{self.tag(partition)}:held"

    def quota(self, partition: int, caller: str) -> str:
        """Hash: what a caller's waiting and running jobs in ``partition`` count (outstanding, delayed, bytes)."""
        return self.quota_prefix(partition) + caller

    def quota_prefix(self, partition: int) -> str:
        """Prefix of the quota counters of ``partition`` (scripts append the caller)."""
        return f"{self.tag(partition)}:quota:"

    def idempotency(self, partition: int, digest: str) -> str:
        """Hash: the job an Idempotency-Key made and the fingerprint of its request."""
        return f"{self.tag(partition)}:idem:{digest}"

    def dlq(self, partition: int) -> str:
        """Sorted set: dead-lettered job ids by dead-letter time (ms)."""
        return f"{self.tag(partition)}:dlq"

    def dlq_by(self, partition: int, dimension: str) -> str:
        """Prefix of the dead-letter indexes by ``dimension`` (queue, type or caller); append the value."""
        return f"{self.tag(partition)}:dlq:{dimension}:"

    def audit(self, partition: int) -> str:
        """Stream: operator actions (replay, purge, cancel) on the jobs of ``partition``."""
        return f"{self.tag(partition)}:audit"

    # --- outside the partitions ---
    def rate_bucket(self, caller: str) -> str:
        """Hash: the caller's API rate-limit token bucket (tokens, last refill in ms); expires when full again."""
        return f"{self.ns}:ratelimit:{caller}"

    def rate_bucket_of_address(self, address: str) -> str:
        """Hash: the rate-limit token bucket of requests without a valid key from one client address."""
        return f"{self.ns}:ratelimit:addr:{address}"  # ':' never occurs in a caller name: no collision

    def keys_last_used(self) -> str:
        """Hash: API key id -> when the key was last used (Redis time, ms); shown by `jobfleet keys list`."""
        return f"{self.ns}:keys:last_used"

    def queues(self) -> str:
        """Set: the queue names workers and producers declared (what the exporter and status read)."""
        return f"{self.ns}:queues"


def idempotency_digest(caller: str, job_type: str, key: str) -> str:
    """The name of an Idempotency-Key's record: scoped by caller and job type, so two tenants cannot collide."""
    return hashlib.sha256(f"{caller}\x00{job_type}\x00{key}".encode()).hexdigest()[:32]


@functools.cache
def partition_tags(ns: str, partitions: int) -> tuple[str, ...]:
    """Every partition's hash tag (computed once per process: 1,024 partitions take most of a second)."""
    return tuple(spread_tag(ns, p, partitions) for p in range(partitions))


def spread_tag(ns: str, partition: int, partitions: int) -> str:
    """Partition ``partition``'s hash tag: ``{ns:p}``, or with the first ``~n`` suffix that puts its slot in the p-th
    of ``partitions`` equal slices of the slot space (deterministic: every process and language finds the same)."""
    plain = f"{{{ns}:{partition}}}"
    if partitions == 1:
        return plain
    low = partition * REDIS_CLUSTER_HASH_SLOTS // partitions
    high = (partition + 1) * REDIS_CLUSTER_HASH_SLOTS // partitions
    for n in range(100_000):
        tag = plain if n == 0 else f"{{{ns}:{partition}~{n}}}"
        if low <= key_slot(tag.encode()) < high:
            return tag
    return plain  # unreachable for partitions <= 1024 (a slice of 16 slots is hit within ~10,000 tries)
