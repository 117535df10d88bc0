"""The consumer of one queue in one worker process: claims due jobs from every partition of the queue in turn, hands
them to Dramatiq's worker threads, and records each attempt's outcome when the thread acks (or nacks) it.

Recording is the ack: one finish call writes the outcome (fenced by the delivery's token), puts a retry back on the
queue, and takes the thread's next job. When Redis cannot take the outcome the thread moves on and the background
loop records it later; nothing here raises out of ack, nack or close, so no Dramatiq thread dies or spins on it."""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from typing import Any

import dramatiq
import structlog
from dramatiq.broker import Consumer, MessageProxy
from dramatiq.common import compute_backoff
from dramatiq.message import Message

from jobfleet.broker.deliveries import Deliveries
from jobfleet.core.errors import StoreUnavailable
from jobfleet.store.attempts import Ending
from jobfleet.store.delivery import Claimed, DeliveryOutcome, option, state_of
from jobfleet.store.records import error_info

log = structlog.get_logger(__name__)

# Stock Dramatiq backs idle polling off up to the worker timeout (1 s): a job arriving at an idle worker waited up to
# a second. A queue partition is polled at most every 25 ms (a cheap, read-only call while it holds no due job).
_MAX_IDLE_MS = 25


class JobfleetConsumer(Consumer):
    """Dramatiq's view of one queue: an iterator of messages plus ack, nack, requeue and close."""

    def __init__(self, deliveries: Deliveries, queue_name: str, timeout: int, broker: dramatiq.Broker) -> None:
        self.broker = broker  # for actor options only
        self.queue_name = queue_name
        self.deliveries = deliveries
        self.attempts = deliveries.attempts
        self.partitions = deliveries.keys.partitions
        self._start = random.randrange(self.partitions)
        self.misses = 0
        self.max_idle_ms = min(timeout, _MAX_IDLE_MS)

    # --- handing out ---
    def __next__(self) -> MessageProxy | None:
        while True:
            claimed = self.deliveries.next_pending(self.queue_name)
            if claimed is not None:
                proxy = self._hand_out(claimed)
                if proxy is not None:
                    self.misses = 0
                    return proxy
                continue
            self._reconcile()
            want = self.deliveries.free_slots()
            if want <= 0:  # every thread is busy: wait for one to finish
                self.deliveries.slot_freed.clear()
                self.deliveries.slot_freed.wait(self.max_idle_ms / 1000)
                return None
            if not self._fetch(want):
                self.misses, backoff_ms = compute_backoff(self.misses, max_backoff=self.max_idle_ms)
                time.sleep(backoff_ms / 1000)
                return None

    def _fetch(self, want: int) -> int:
        got = 0
        for step in range(self.partitions):
            partition = (self._start + step) % self.partitions
            with self.deliveries.claiming():
                try:
                    claimed, held = self.attempts.fetch(partition, self.queue_name, want - got)
                except StoreUnavailable:
                    self.deliveries.suspect.add((partition, self.queue_name))  # its reply may have claimed jobs
                    raise  # a BrokerConnectionError: Dramatiq restarts this consumer
                self.deliveries.adopt(claimed)
            self.deliveries.report_held(self.queue_name, held)
            got += len(claimed)
            if got >= want:
                break
        self._start = (self._start + 1) % self.partitions  # the next fetch starts at the next partition: fairness
        return got

    def _reconcile(self) -> None:
        for partition, queue in sorted(self.deliveries.suspect):
            if queue != self.queue_name:
                continue
            with self.deliveries.reconciling():
                held = self.deliveries.held_in(partition, queue)
                released = self.attempts.reconcile(partition, queue, held)
            self.deliveries.suspect.discard((partition, queue))
            if released:
                log.warning("gave back jobs a call with a lost reply had claimed", queue=queue, count=released)

    def _hand_out(self, claimed: Claimed) -> MessageProxy | None:
        try:
            message = Message.decode(claimed.message)
        except Exception as exc:  # any decoding failure makes the message poison, whatever raised it
            self._poison(claimed, f"undecodable message: {type(exc).__name__}: {exc}")
            return None
        # The stored message is immutable (replays send it byte for byte); per-delivery facts are added in memory.
        options = dict(message.options)
        options.pop("eta", None)  # an eta would make Dramatiq's consumer thread hold the message in memory
        options["retries"] = claimed.attempt - 1
        message = message.copy(queue_name=self.queue_name, options=options)
        message.options.pop("eta", None)
        proxy = MessageProxy(message)
        state_of(proxy).claimed = claimed
        return proxy

    def _poison(self, claimed: Claimed, reason: str) -> None:
        try:
            self.attempts.dead_letter_poison(claimed, reason)
            log.error("poison message dead-lettered", queue=self.queue_name, job_id=claimed.job_id, reason=reason)
        except StoreUnavailable as exc:
            log.warning("could not dead-letter a poison message yet", job_id=claimed.job_id, error=str(exc))
            self.deliveries.suspect.add((claimed.partition, claimed.queue))
        finally:
            self.deliveries.done(claimed)

    # --- recording ---
    def ack(self, message: MessageProxy) -> None:
        state = state_of(message)
        outcome = state.outcome or DeliveryOutcome("succeeded")  # without JobLifecycle an ack means done
        self._record(message, outcome)

    def nack(self, message: MessageProxy) -> None:
        state = state_of(message)
        outcome = state.outcome
        if outcome is None or outcome.outcome != "dead":
            error = error_info(message._exception or RuntimeError("the message was rejected"))
            outcome = DeliveryOutcome("dead", error=error, reason="permanent")
        self._record(message, outcome)

    def _record(self, message: MessageProxy, outcome: DeliveryOutcome) -> None:
        claimed = state_of(message).claimed
        if claimed is None:
            return
        ending = Ending(
            outcome.outcome if outcome.outcome != "duplicate" else "succeeded",
            job_type=option(self.broker, message, "job_type", message.actor_name),
            caller=str(message.options.get("caller") or ""),
            result=outcome.result,
            error=outcome.error,
            retry_delay_ms=outcome.retry_delay_ms or 0,
            reason=outcome.reason,
        )
        take = 0 if self.deliveries.draining else 1
        try:
            with self.deliveries.claiming():
                _, following, held = self.attempts.finish(claimed, ending, take_next=take)
                self.deliveries.adopt(following)
        except StoreUnavailable as exc:
            if take:
                self.deliveries.suspect.add((claimed.partition, claimed.queue))
            self.deliveries.keep_unrecorded(claimed, ending, exc)
        else:
            self.deliveries.report_held(claimed.queue, held)
        finally:
            self.deliveries.done(claimed)

    # --- giving back ---
    def requeue(self, messages: Iterable[Any]) -> None:
        claims = [c for m in messages if (c := state_of(m).claimed) is not None]
        try:
            self.deliveries.give_back(claims)
        finally:
            for claimed in claims:
                self.deliveries.done(claimed)

    def close(self) -> None:
        """Give back the jobs this queue's consumer claimed but never handed out (kept when Redis is away)."""
        pending = self.deliveries.take_pending(self.queue_name)
        try:
            self.deliveries.give_back(pending)
        except StoreUnavailable:
            self.deliveries.adopt(pending)  # the next consumer of this queue hands them out
