"""Dramatiq's Redis broker with the gaps that lose or jam work closed: poison messages are dead-lettered by id
instead of jamming their prefetch batch, a delivery whose outcome could not be recorded is requeued instead of
acked, and crashed workers' messages are recovered on a timer rather than by chance."""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

import redis
import structlog
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import compute_backoff, current_millis, dq_name, q_name
from dramatiq.errors import ConnectionClosed
from dramatiq.message import Message

from jobfleet.core.errors import StoreUnavailable
from jobfleet.store.delivery import Claim, state_of
from jobfleet.store.jobs import script_source
from jobfleet.store.keys import Keys

if TYPE_CHECKING:
    from jobfleet.broker.claims import Claims

log = structlog.get_logger(__name__)


# How long a message must stay in this worker's unacked set, held by nothing here, before it is an orphan.
_ORPHAN_AGE_S = 1.0


class JobfleetRedisBroker(RedisBroker):
    """A RedisBroker whose maintenance (dead-worker recovery) runs when told to, not by chance."""

    def __init__(self, **kwargs: Any) -> None:
        # Random maintenance (0.1% of commands) is replaced by RecoveryMiddleware's timer.
        kwargs.setdefault("maintenance_chance", 0)
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self.jobfleet_store: Any = None
        # Prefetched-but-not-yet-handed-out messages per queue. Kept on the broker, not the consumer, because
        # Dramatiq replaces a consumer after a connection error and the stock one forgets what it held.
        self.pending: dict[str, list[tuple[str, bytes, Claim | None]]] = {}
        # Redis ids handed to worker threads and not yet acked, per queue: everything else in this worker's
        # unacked set after a connection error is an orphan (e.g. a fetch whose reply was lost).
        self.held: dict[str, set[str]] = {}
        self.fetch_script = self.client.register_script(script_source("fetch"))
        # Set by JobLifecycle at worker boot: fetches from ready queues then claim each message's attempt.
        self.claims: Claims | None = None
        # Set whenever a worker thread finishes a message: a consumer waiting for a free thread fetches again.
        self.slot_freed = threading.Event()
        # Ready queues whose acks set may hold a message nobody here knows of (a finish reply lost after it took
        # the next message): their consumer requeues such orphans on its next turn.
        self.orphans_suspected: set[str] = set()

    def adopt(self, queue_name: str, fetched: list[bytes]) -> None:
        """Take messages fetched (and claimed) outside the consumer — by the finish script of the thread that just
        finished one — for the consumer of ``queue_name`` to hand out next."""
        self.pending.setdefault(queue_name, []).extend(parse_fetched(fetched))
        self.slot_freed.set()

    def held_from_ready_queues(self) -> int:
        """Messages of ready queues this process fetched and has not acked (prefetched or running)."""
        return sum(
            len(self.held.get(name, ())) + len(self.pending.get(name, ()))
            for name in list(self.pending)
            if not name.endswith(".DQ")
        )

    @property
    def consumer_class(self) -> type[_RedisConsumer]:
        return _JobfleetConsumer

    def heartbeat(self) -> None:
        """Mark this worker process alive, even when every thread is busy and nothing is fetched."""
        self.client.zadd(Keys(self.namespace).heartbeats(), {self.broker_id: current_millis()})

    def run_maintenance(self) -> None:
        """Requeue unacked messages of workers whose heartbeat is stale, for every declared queue."""
        script = self.scripts["dispatch"]
        for queue_name in sorted(self.queues):
            for name in (queue_name, dq_name(queue_name)):
                script(
                    keys=[self.namespace],
                    args=[
                        "requeue",
                        current_millis(),
                        name,
                        self.broker_id,
                        self.heartbeat_timeout,
                        self.dead_message_ttl,
                        1,
                        self._max_unpack_size(),  # type: ignore[no-untyped-call]
                    ],
                )


class _JobfleetConsumer(_RedisConsumer):
    def __init__(self, broker: JobfleetRedisBroker, queue_name: str, prefetch: int, timeout: int) -> None:
        super().__init__(broker, queue_name, prefetch, timeout)  # type: ignore[no-untyped-call]
        keys = Keys(broker.namespace)
        self._keys = [
            keys.queue(queue_name),
            keys.queue_messages(queue_name),
            keys.acks(broker.broker_id, queue_name),
            keys.heartbeats(),
            keys.running(),
        ]
        self._ready = not queue_name.endswith(".DQ")
        # Stock idle polling backs off up to the worker timeout (1 s): a job arriving at an idle worker waited up
        # to a second. Ready queues poll at most every 25 ms (about 40 cheap calls a second per idle queue);
        # delayed queues hold future work and keep the longer backoff.
        self._max_idle_ms = min(timeout, 250 if queue_name.endswith(".DQ") else 25)
        self._pending = broker.pending.setdefault(queue_name, [])
        self._held = broker.held.setdefault(queue_name, set())
        # (first seen, redis ids) of messages in this worker's unacked set that nothing here held at that time.
        self._orphan_candidates: tuple[float, set[str]] | None = None
        # A new consumer (first start, or a restart after a connection error) looks for orphans on its first turns.
        broker.orphans_suspected.add(queue_name)

    def _requeue_orphans(self) -> None:
        # Put back every message in this worker's unacked set that nothing in this process holds: the reply of a
        # fetch (or of a finish that took the next message) lost with the connection, or delayed messages
        # Dramatiq's consumer thread dropped from memory on a connection error (it resets its delay queue, so for
        # .DQ queues everything not pending is an orphan). The worker is alive, so dead-worker recovery would
        # never return them. Only messages still unheld a second after they were first seen are requeued: a
        # finish that took one hands it over within milliseconds, and requeueing that would run it twice.
        try:
            held = {redis_id for redis_id, _, _ in self._pending}
            if not self.queue_name.endswith(".DQ"):
                held |= self._held
            members = cast(set[bytes], self.broker.client.smembers(self._keys[2]))
            unheld = {m.decode() for m in members} - held
            now = time.monotonic()
            if self._orphan_candidates is None and unheld:
                self._orphan_candidates = (now, unheld)
                return
            if self._orphan_candidates is not None:
                if now - self._orphan_candidates[0] < _ORPHAN_AGE_S:
                    return
                orphans = sorted(unheld & self._orphan_candidates[1])
                self._orphan_candidates = None
                if orphans:
                    log.warning(
                        "requeueing unacked messages this worker no longer holds",
                        queue=self.queue_name,
                        count=len(orphans),
                    )
                    self.broker.do_requeue(self.queue_name, *orphans)
            self.broker.orphans_suspected.discard(self.queue_name)
        except redis.ConnectionError as exc:
            raise ConnectionClosed(exc) from None  # type: ignore[no-untyped-call]

    def requeue(self, messages: Any) -> None:
        # Stock requeue lets redis.ConnectionError escape ConsumerThread.close(), which kills the consumer thread
        # for good (its delayed messages then never run). As ConnectionClosed it is caught and the thread restarts.
        # Called on shutdown with messages that never ran: their claims are released first.
        messages = list(messages)
        claims = self.broker.claims
        if claims is not None:
            claims.release([(m, claim) for m in messages if (claim := state_of(m).claim) is not None])
        try:
            super().requeue(messages)  # type: ignore[no-untyped-call]
            for message in messages:
                self._held.discard(message.options.get("redis_message_id"))
        except redis.ConnectionError as exc:
            raise ConnectionClosed(exc) from None  # type: ignore[no-untyped-call]
        self.broker.slot_freed.set()

    def close(self) -> None:
        """Called when the consumer stops (shutdown or restart): give prefetched messages back to the queue."""
        if not self._pending:
            return
        claims = self.broker.claims
        if claims is not None:
            decoded = [(_decode_or_none(data), claim) for _, data, claim in self._pending if claim is not None]
            if claims.release([(message, claim) for message, claim in decoded if message is not None]):
                # Released: whoever hands these out next (if the requeue below fails) begins them afresh.
                self._pending[:] = [(redis_id, data, None) for redis_id, data, _ in self._pending]
        try:
            self.broker.do_requeue(self.queue_name, *[redis_id for redis_id, _, _ in self._pending])
            self._pending.clear()
        except redis.RedisError:
            pass  # kept on the broker: the next consumer of this queue hands them out

    def ack(self, message: Any) -> None:
        try:
            self._ack(message)
        finally:
            self.broker.slot_freed.set()

    def _ack(self, message: Any) -> None:
        redis_id = message.options.get("redis_message_id")
        state = state_of(message)
        if state.acked:
            # JobLifecycle's finish script already acked it, atomically with the outcome.
            self.queued_message_ids.discard(message.message_id)
            self._held.discard(redis_id)
            return
        if not state.requeue:
            super().ack(message)  # type: ignore[no-untyped-call]
            self._held.discard(redis_id)
            return
        # The outcome of this delivery could not be recorded (or its retry could not be enqueued): put the
        # message back on its queue rather than acking it away. ConnectionClosed makes Dramatiq retry this.
        try:
            self.broker.do_requeue(self.queue_name, message.options["redis_message_id"])
        except redis.ConnectionError as exc:
            raise ConnectionClosed(exc) from None  # type: ignore[no-untyped-call]
        self.queued_message_ids.discard(message.message_id)
        self._held.discard(redis_id)

    def nack(self, message: Any) -> None:
        super().nack(message)  # type: ignore[no-untyped-call]
        self._held.discard(message.options.get("redis_message_id"))
        self.broker.slot_freed.set()

    @property
    def outstanding_message_count(self) -> int:
        return len(self.queued_message_ids) + len(self._pending)

    def __next__(self) -> MessageProxy | None:
        try:
            while True:
                if self._pending:
                    redis_id, data, claim = self._pending.pop(0)
                    message = self._decode(redis_id, data)
                    if message is None:
                        continue
                    self.misses = 0
                    self.queued_message_ids.add(message.message_id)
                    self._held.add(redis_id)
                    proxy = MessageProxy(message)
                    if claim is not None:
                        state_of(proxy).claim = claim
                    return proxy
                if self.queue_name in self.broker.orphans_suspected:
                    self._requeue_orphans()
                fetched = self._fetch()
                if fetched is None:  # every worker thread is busy: wait for one to finish
                    self.broker.slot_freed.wait(self._max_idle_ms / 1000)
                    return None
                if not fetched:
                    # Nothing to do: long-poll progressively up to the idle timeout, like the stock consumer.
                    self.misses, backoff_ms = compute_backoff(self.misses, max_backoff=self._max_idle_ms)
                    time.sleep(backoff_ms / 1000)
                    return None
        except redis.ConnectionError as exc:
            raise ConnectionClosed(exc) from None  # type: ignore[no-untyped-call]

    def _fetch(self) -> list[bytes] | None:
        """Fetch (and, from a ready queue, claim) as many messages as this process may hold; None when it may
        hold no more (claiming: one message per worker thread; else Dramatiq's prefetch)."""
        want = self.prefetch - self.outstanding_message_count
        claims = self.broker.claims if self._ready else None
        if claims is not None:
            self.broker.slot_freed.clear()
            want = min(want, claims.slots - self.broker.held_from_ready_queues())
        if want <= 0:
            return None
        args = [want, self.broker.broker_id, current_millis(), *(claims.fetch_args if claims else ())]
        fetched: list[bytes] = self.broker.fetch_script(keys=self._keys, args=args)
        self._pending.extend(parse_fetched(fetched))
        return fetched

    def _decode(self, redis_id: str, data: bytes) -> Message[Any] | None:
        reason = ""
        message: Any = None
        if not data:
            reason = "message body missing from Redis"
        else:
            try:
                message = Message.decode(data)
                if not isinstance(message.options, dict) or "redis_message_id" not in message.options:
                    reason = "message has no redis_message_id option"
                elif message.actor_name not in self.broker.actors:
                    reason = f"no actor named {message.actor_name!r} in this worker"
            except Exception as exc:  # any decoding failure makes the message poison, whatever raised it
                reason = f"undecodable message: {type(exc).__name__}: {exc}"
                message = _salvage(data)
        if not reason:
            return cast(Message[Any], message)
        store = self.broker.jobfleet_store
        try:
            if store is not None:
                store.dead_letter_poison(
                    queue_name=q_name(self.queue_name),
                    redis_message_id=redis_id,
                    raw=data,
                    reason=reason,
                    message=message,
                )
            self.broker.do_ack(self.queue_name, redis_id)
        except (StoreUnavailable, redis.ConnectionError) as exc:
            # Redis went away between the fetch and here: keep the message first in line, so the restarted
            # consumer dead-letters it as soon as Redis is back (it is still in our unacked set meanwhile).
            self._pending.insert(0, (redis_id, data, None))
            raise ConnectionClosed(exc) from None  # type: ignore[no-untyped-call]
        log.error("poison message dead-lettered", queue=self.queue_name, redis_message_id=redis_id, reason=reason)
        return None


def parse_fetched(fetched: list[bytes]) -> list[tuple[str, bytes, Claim | None]]:
    """(redis id, data, claim or None) per message from fetch.lua's reply (6 entries per message)."""
    out = []
    for i in range(0, len(fetched), 6):
        verdict = fetched[i + 2].decode()
        claim = Claim.from_reply([verdict, *(p.decode() for p in fetched[i + 3 : i + 6])]) if verdict else None
        out.append((fetched[i].decode(), fetched[i + 1], claim))
    return out


def _salvage(data: bytes) -> SimpleNamespace | None:
    """What can be read from a message Dramatiq cannot decode (its job id, actor, options), so that its job's
    status record is marked dead along with the dead letter instead of staying ``queued``."""
    try:
        fields = json.loads(data)
    except ValueError:
        return None
    if not isinstance(fields, dict) or not isinstance(fields.get("message_id"), str):
        return None
    options = fields.get("options")
    return SimpleNamespace(
        message_id=fields["message_id"],
        actor_name=fields.get("actor_name"),
        kwargs=fields.get("kwargs"),
        options=options if isinstance(options, dict) else {},
    )


def _decode_or_none(data: bytes) -> Message[Any] | None:
    try:
        return Message.decode(data)
    except Exception:  # a poison message was never claimed
        return None
