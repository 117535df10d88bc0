"""JobLifecycle: records every attempt in the job store, guards side effects with the idempotency lease,
and applies the retry policy (retry, dead-letter or done) — each decision one atomic store call."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import dramatiq
import structlog
from dramatiq.common import dq_name, q_name
from dramatiq.middleware import Middleware, SkipMessage

from jobfleet.broker.claims import Claims
from jobfleet.broker.redis_broker import JobfleetRedisBroker
from jobfleet.core.errors import JobCancelled, LeaseHeld, LedgerUnavailable, StoreUnavailable
from jobfleet.middleware.job_context import JobContext, current_job, set_current_job
from jobfleet.middleware.retry_policy import PERMANENT, RetryPolicy, classify
from jobfleet.store.delivery import Attempt, Claim, Delivery, DeliveryOutcome, delivery, option, state_of
from jobfleet.store.jobs import JobStore, retry_call
from jobfleet.store.records import dead_letter, error_info

log = structlog.get_logger(__name__)

# How long to wait before redelivering a message whose lease is held elsewhere or whose ledger was unreachable.
_BUSY_DELAY_MS = 2_000


class JobLifecycle(Middleware):
    """Records attempts, enforces once-per-idempotency-key, retries transient errors, dead-letters the rest."""

    actor_options = {"job_type", "max_retries", "min_backoff_seconds", "max_backoff_seconds"}  # noqa: RUF012

    def __init__(
        self,
        *,
        store: JobStore,
        policy: RetryPolicy,
        heartbeat_timeout_ms: int,
        max_interruptions: int,
    ) -> None:
        self.store = store
        self.policy = policy
        self.heartbeat_timeout_ms = heartbeat_timeout_ms
        self.max_interruptions = max_interruptions

    def before_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        """Called before a worker starts fetching: have our broker claim attempts inside its fetch script."""
        if isinstance(broker, JobfleetRedisBroker):
            broker.claims = Claims(
                broker,
                self.store,
                heartbeat_timeout_ms=self.heartbeat_timeout_ms,
                max_interruptions=self.max_interruptions,
                slots=worker.worker_threads,
            )

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        """Called when a worker starts draining: finishing threads stop taking their next message."""
        claims = getattr(broker, "claims", None)
        if claims is not None:
            claims.draining = True

    # --- before ---
    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        """Called before the actor runs: claim the attempt, or skip / postpone the delivery."""
        who = delivery(broker, message)
        job_id, job_type, idem, token, member = who.job_id, who.job_type, who.scoped_key, who.token, who.member
        state = state_of(message)
        claimed, state.claim = state.claim, None
        # Usually fetch.lua already claimed the attempt; else (no record to claim, another broker) begin it here.
        begin = claimed if claimed is not None and claimed.verdict != "missing" else self._begin(broker, message, who)

        if begin.verdict == "run":
            ctx = JobContext(job_id, job_type, idem, begin.attempt, self.store)
            state.attempt = Attempt(
                job_id,
                job_type,
                idem,
                token,
                begin.attempt,
                member,
                time.time(),
                begin.enqueued_at,
                begin.ready_at,
            )
            set_current_job(ctx)
            return
        if begin.verdict == "busy":
            raise LeaseHeld(f"job {job_id}: idempotency key is leased by live worker {begin.detail}")
        if begin.verdict == "poison":
            self._dead_letter_poison(broker, message, job_id, job_type, idem, token, member, int(begin.detail))
            raise SkipMessage(f"job {job_id} dead-lettered after {begin.detail} interrupted deliveries")
        if begin.verdict in {"duplicate", "finished"}:
            state.outcome = DeliveryOutcome("duplicate")
        elif begin.verdict == "cancelled":
            state.outcome = DeliveryOutcome("cancelled")
        log.info("delivery skipped", job_id=job_id, verdict=begin.verdict, state=begin.detail)
        raise SkipMessage(f"job {job_id}: {begin.verdict}")

    def _begin(self, broker: dramatiq.Broker, message: Any, who: Delivery) -> Claim:
        fallback = lambda: {  # noqa: E731 - built only when the status record is missing
            "id": who.job_id,
            "type": who.job_type,
            "queue": message.queue_name,
            "actor": message.actor_name,
            "state": "queued",
            "enqueued_at": f"{message.message_timestamp / 1000:.3f}",
            "idempotency_key": who.scoped_key,
            "payload": json.dumps(message.kwargs),
        }
        try:
            return retry_call(
                lambda: self.store.begin(
                    job_id=who.job_id,
                    job_type=who.job_type,
                    idempotency_key=who.scoped_key,
                    token=who.token,
                    worker_id=getattr(broker, "broker_id", "stub"),
                    lease_ms=who.lease_ms,
                    heartbeat_timeout_ms=self.heartbeat_timeout_ms,
                    max_interruptions=self.max_interruptions,
                    running_member=who.member,
                    fallback_record=fallback,
                ),
                attempts=3,
                delay=0.1,
            )
        except StoreUnavailable as exc:
            # Fail closed: without the ledger we cannot know whether the side effect already happened.
            log.error("ledger unavailable, postponing job", job_id=who.job_id, error=str(exc))
            raise LedgerUnavailable(str(exc)) from exc

    # --- after ---
    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        """Called after the actor ran (or a before hook refused): record the outcome, retry or dead-letter."""
        state = state_of(message)
        attempt, state.attempt = state.attempt, None
        job = current_job()
        set_current_job(None)
        if attempt is None:
            if isinstance(exception, LeaseHeld | LedgerUnavailable):
                token = message.options.get("delivery_token") or message.options.get("redis_message_id")
                self._redeliver_later(broker, message, _BUSY_DELAY_MS, retries=None, token=token)
            return
        if exception is None:
            if result is None and job is not None:
                result = job.result
            self._finish(broker, message, attempt, "succeeded", result=result)
            state.outcome = DeliveryOutcome("succeeded", attempt)
            return

        error = error_info(exception)
        if isinstance(exception, JobCancelled):
            self._finish(broker, message, attempt, "cancelled", error=error)
            state.outcome = DeliveryOutcome("cancelled", attempt, exception)
            return
        max_retries = option(broker, message, "max_retries", None)
        if self.policy.should_retry(exception, attempt.attempt, max_retries):
            delay = self.policy.backoff_seconds(
                attempt.attempt,
                min_backoff=option(broker, message, "min_backoff_seconds", None),
                max_backoff=option(broker, message, "max_backoff_seconds", None),
            )
            next_at = time.time() + delay
            delay_ms = int(delay * 1000)
            retries = message.options.get("retries", 0) + 1
            if self._finish(
                broker, message, attempt, "retrying", error=error, next_retry_at=next_at, retry_delay_ms=delay_ms
            ):
                state.outcome = DeliveryOutcome("retrying", attempt, exception)
                if not state.acked:  # a broker we cannot enqueue into atomically
                    self._redeliver_later(broker, message, delay_ms, retries=retries)
            return
        reason = "permanent" if classify(exception) == PERMANENT else "exhausted"
        letter = dead_letter(message, attempt, error, reason)
        if self._finish(broker, message, attempt, "dead", error=error, dead_letter=letter):
            state.outcome = DeliveryOutcome("dead", attempt, exception)

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        """Called when a delivery was skipped: nothing ran, nothing to record."""
        set_current_job(None)

    # --- helpers ---
    def _finish(
        self,
        broker: dramatiq.Broker,
        message: Any,
        attempt: Attempt,
        outcome: str,
        *,
        retry_delay_ms: int | None = None,
        **details: Any,
    ) -> bool:
        ack = self._ack_target(broker, message)
        retry = self._retry_message(message, retry_delay_ms) if ack and retry_delay_ms is not None else None
        take_next = self._next_message_source(broker, message, ack)
        calls = 0

        def finish() -> list[bytes]:
            nonlocal calls
            calls += 1
            return self.store.finish(
                job_id=attempt.job_id,
                job_type=attempt.job_type,
                idempotency_key=attempt.scoped_key,
                token=attempt.token,
                outcome=outcome,
                running_member=attempt.running_member,
                queue_name=q_name(message.queue_name),
                ack=ack,
                retry=retry,
                # Only the first try takes the next message: a try that failed may still have taken one.
                take_next=take_next if calls == 1 else None,
                **details,
            )

        recorded = True
        following: list[bytes] = []
        try:
            following = retry_call(finish, attempts=6, delay=0.25)
        except StoreUnavailable as exc:
            # The outcome could not be recorded: keep the message (requeue instead of ack) so nothing is lost.
            log.error("could not record outcome, message kept for redelivery", job_id=attempt.job_id, error=str(exc))
            state_of(message).requeue = True
            recorded = False
        if take_next is not None:
            if calls > 1:  # a lost reply may have left a taken message in our acks set: have the consumer look
                broker.orphans_suspected.add(message.queue_name)  # type: ignore[attr-defined]
            if following:
                broker.adopt(message.queue_name, following)  # type: ignore[attr-defined]
        if not recorded:
            return False
        if ack is not None:
            state_of(message).acked = True  # the consumer must not ack again
        return True

    def _next_message_source(
        self, broker: dramatiq.Broker, message: Any, ack: tuple[str, str, str] | None
    ) -> tuple[str, str, list[Any]] | None:
        # The thread that finishes a ready-queue message takes (and claims) the queue's next one in the same call:
        # no fetch round trip, and no wait for the consumer thread before it has work again.
        if ack is None or not isinstance(broker, JobfleetRedisBroker) or message.queue_name.endswith(".DQ"):
            return None
        claims = broker.claims
        if claims is None or claims.draining:
            return None
        return self.store.keys.queue(message.queue_name), broker.broker_id, claims.fetch_args

    def _ack_target(self, broker: dramatiq.Broker, message: Any) -> tuple[str, str, str] | None:
        # Only our Redis broker's consumer knows to skip its own ack; other brokers (tests' StubBroker) ack as usual.
        redis_id = message.options.get("redis_message_id")
        if not isinstance(broker, JobfleetRedisBroker) or not redis_id:
            return None
        keys = self.store.keys
        return keys.acks(broker.broker_id, message.queue_name), keys.queue_messages(message.queue_name), redis_id

    def _retry_message(self, message: Any, delay_ms: int) -> tuple[str, str, str, bytes]:
        now = time.time()
        redis_id = uuid.uuid4().hex
        retry = message.copy(
            queue_name=dq_name(message.queue_name),
            options={
                "retries": message.options.get("retries", 0) + 1,
                "ready_at": round(now + delay_ms / 1000, 3),
                "eta": int(now * 1000) + delay_ms,
                "redis_message_id": redis_id,
                # A retry starts a new delivery chain: its token is its own redis id.
                "delivery_token": None,
            },
        )
        keys = self.store.keys
        return keys.queue(retry.queue_name), keys.queue_messages(retry.queue_name), redis_id, retry.encode()

    def _redeliver_later(
        self, broker: dramatiq.Broker, message: Any, delay_ms: int, retries: int | None, token: str | None = None
    ) -> None:
        # A retry starts a new delivery chain (token None: the new message's own id); a postponed one keeps its.
        options: dict[str, Any] = {"ready_at": round(time.time() + delay_ms / 1000, 3), "delivery_token": token}
        if retries is not None:
            options["retries"] = retries
        try:
            retry_call(lambda: broker.enqueue(message.copy(options=options), delay=delay_ms), attempts=6, delay=0.25)
        except Exception as exc:
            # Stock Dramatiq would ack and lose the message here (dramatiq#545); we requeue it instead.
            log.error("re-enqueue failed, message kept for redelivery", job_id=message.message_id, error=str(exc))
            state_of(message).requeue = True

    def _dead_letter_poison(  # noqa: PLR0917
        self,
        broker: dramatiq.Broker,
        message: Any,
        job_id: str,
        job_type: str,
        idem: str,
        token: str,
        member: str,
        count: int,
    ) -> None:
        error = {
            "type": "WorkerLost",
            "message": f"{count} deliveries of this job ended with their worker process dying (OOM? crash?)",
            "traceback": "",
        }
        attempt = Attempt(job_id, job_type, idem, token, 0, member, time.time(), None, None)
        letter = dead_letter(message, attempt, error, "crash_loop")
        if self._finish(broker, message, attempt, "dead", error=error, dead_letter=letter):
            state_of(message).outcome = DeliveryOutcome("dead", attempt)
