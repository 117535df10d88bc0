"""Stock Dramatiq's Redis layout (``dramatiq.brokers.redis.RedisBroker``, 2.x), read for one purpose: moving the
messages a stock deployment has queued onto jobfleet (``jobfleet import-dramatiq``). Nothing else in jobfleet reads
or writes these keys.

Per queue ``q`` under namespace ``ns`` (default ``dramatiq``): ``ns:q`` (list of message ids) and ``ns:q.msgs``
(hash id → encoded message) hold ready messages; ``ns:q.DQ`` / ``ns:q.DQ.msgs`` delayed ones (their ``eta``
option, ms); ``ns:q.XQ`` (sorted set) / ``ns:q.XQ.msgs`` dead letters; ``ns:__acks__.<worker>.<q>`` the messages a
live (or crashed) stock worker holds."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import redis

from jobfleet.store.scripts import redis_errors


@dataclass(frozen=True)
class StockKeys:
    """The stock Dramatiq keys of one namespace."""

    ns: str = "dramatiq"

    def ready(self, queue: str) -> tuple[str, str]:
        """(id list, messages hash) of a queue's ready messages."""
        return f"{self.ns}:{queue}", f"{self.ns}:{queue}.msgs"

    def delayed(self, queue: str) -> tuple[str, str]:
        """(id list, messages hash) of a queue's delayed messages."""
        return f"{self.ns}:{queue}.DQ", f"{self.ns}:{queue}.DQ.msgs"

    def dead(self, queue: str) -> tuple[str, str]:
        """(id sorted set, messages hash) of a queue's dead letters."""
        return f"{self.ns}:{queue}.XQ", f"{self.ns}:{queue}.XQ.msgs"

    def acks_pattern(self) -> str:
        """SCAN pattern of every stock worker's unacked-message sets."""
        return f"{self.ns}:__acks__.*"

    def messages_pattern(self) -> str:
        """SCAN pattern of every queue's messages hash (ready, delayed and dead)."""
        return f"{self.ns}:*.msgs"


def stock_queues(client: redis.Redis, keys: StockKeys) -> list[str]:
    """The queue names that have a messages hash (a one-off SCAN of the stock namespace, for the migration)."""
    names: set[str] = set()
    with redis_errors("scan the stock Dramatiq namespace"):
        for raw in client.scan_iter(match=keys.messages_pattern(), count=1000):
            key = raw.decode() if isinstance(raw, bytes) else str(raw)
            name = key[len(keys.ns) + 1 : -len(".msgs")]
            for suffix in (".DQ", ".XQ"):
                name = name.removesuffix(suffix)
            names.add(name)
    return sorted(names)


def held_by_stock_workers(client: redis.Redis, keys: StockKeys) -> int:
    """How many messages stock workers hold unacked (they must be stopped, and their messages requeued, first)."""
    total = 0
    with redis_errors("read the stock Dramatiq acks"):
        for raw in client.scan_iter(match=keys.acks_pattern(), count=1000):
            total += int(client.scard(raw))
    return total


def stock_messages(client: redis.Redis, messages_hash: str) -> Iterator[tuple[str, bytes]]:
    """(message id, encoded message) of one messages hash, in HSCAN batches."""
    with redis_errors("read stock Dramatiq messages"):
        for raw_id, data in client.hscan_iter(messages_hash, count=500):
            yield (raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)), data


def drop_stock_message(client: redis.Redis, id_list: str, messages_hash: str, message_id: str) -> None:
    """Remove one moved message from its stock queue (after jobfleet has it: a crash in between moves it again,
    and the move is idempotent by message id)."""
    with redis_errors("remove a moved stock Dramatiq message"):
        pipe = client.pipeline(transaction=True)
        pipe.lrem(id_list, 0, message_id)
        pipe.hdel(messages_hash, message_id)
        pipe.execute()


def count_dead(client: redis.Redis, keys: StockKeys, queue: str) -> int:
    """Dead letters stock Dramatiq holds for ``queue`` (left where they are: see the README's migration note)."""
    with redis_errors("count stock Dramatiq dead letters"):
        return int(client.zcard(keys.dead(queue)[0]))
