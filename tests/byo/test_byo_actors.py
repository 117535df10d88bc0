"""Bring your own Dramatiq actors: a team's plain ``@dramatiq.actor`` code, sent with ``.send()`` from Python, keeps
what stock Dramatiq gives it on jobfleet's production broker — pipelines, message callbacks, Results (failures
included), groups with a completion callback, Dramatiq's retry vocabulary — and gets jobfleet's guarantees on top:
a status record from the moment a message exists, reachable through the HTTP API, cancellable, dead letters.

Each test but the group one is a numbered item of the issue "Bring your own Dramatiq actors" (noted in its first
comment), and each of those failed on the broker before it (run against 90bc90e with its import paths: 7 failed).
The group test is the README's example; a group with a completion callback already worked."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import dramatiq
import pytest
from dramatiq import group, pipeline
from dramatiq.middleware import Middleware, Retries, SkipMessage
from dramatiq.rate_limits.backends import RedisBackend as RateLimiterBackend
from dramatiq.results import ResultFailure, Results
from dramatiq.results.backends import RedisBackend
from flask.testing import FlaskClient

from jobfleet.core.errors import ConfigError, PermanentError
from jobfleet.core.settings import Settings
from jobfleet.middleware.lifecycle import JobLifecycle
from jobfleet.store.keys import Keys
from tests.byo.brokers import own_broker
from tests.conftest import wait_for_state

FINAL = {"succeeded", "dead", "cancelled", "failed"}


def _wait(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_pipeline_runs_every_stage_and_message_callbacks_and_dramatiq_options_work(settings: Settings) -> None:
    # Item 1: a 3-actor pipeline ran only its first stage; on_success/max_age/notify_shutdown were refused.
    seen: list[Any] = []
    with own_broker(settings) as (_broker, start):

        @dramatiq.actor(max_age=60_000, notify_shutdown=True)
        def add_one(n: int) -> int:
            return n + 1

        @dramatiq.actor
        def double(n: int) -> int:
            return n * 2

        @dramatiq.actor
        def keep(n: int) -> None:
            seen.append(("kept", n))

        @dramatiq.actor
        def on_done(message: dict[str, Any], result: Any) -> None:
            seen.append(("callback", result))

        start()
        pipeline([add_one.message(1), double.message(), keep.message()]).run()
        add_one.send_with_options(args=(10,), on_success=on_done)
        _wait(lambda: ("kept", 4) in seen and ("callback", 11) in seen)


def test_results_store_a_dead_lettered_jobs_failure_as_result_failure(settings: Settings, redis_url: str) -> None:
    # Item 2: get_result on a dead-lettered job timed out instead of raising ResultFailure.
    with own_broker(settings) as (broker, start):
        broker.add_middleware(Results(backend=RedisBackend(url=redis_url)), before=JobLifecycle)

        @dramatiq.actor(store_results=True)
        def refuse() -> None:
            raise PermanentError("no, never")

        start()
        message = refuse.send()
        with pytest.raises(ResultFailure, match="no, never"):
            message.get_result(block=True, timeout=15_000)


def test_a_group_with_a_completion_callback_runs_the_callback_once_all_ran(settings: Settings, redis_url: str) -> None:
    # The README's example (it worked before too): GroupCallbacks with a backend the team adds, placed before
    # JobLifecycle; the completion callback fires once, after every member finished.
    from dramatiq.middleware import GroupCallbacks

    done: list[str] = []
    with own_broker(settings) as (broker, start):
        broker.add_middleware(GroupCallbacks(RateLimiterBackend(url=redis_url)), before=JobLifecycle)

        @dramatiq.actor
        def part(n: int) -> None:
            done.append(f"part-{n}")

        @dramatiq.actor
        def all_done() -> None:
            done.append("all")

        start()
        members = group([part.message(n) for n in range(3)])
        members.add_completion_callback(all_done.message())
        members.run()
        _wait(lambda: "all" in done)
    assert done.count("all") == 1
    assert done.index("all") == 3  # after the three parts


def test_a_result_that_cannot_be_encoded_fails_the_job_for_good(settings: Settings, client: FlaskClient) -> None:
    # Item 3: a non-JSON result left the job `running` forever.
    with own_broker(settings) as (_broker, start):

        @dramatiq.actor
        def give_a_set() -> Any:
            return {1, 2}

        start()
        message = give_a_set.send()
        body = wait_for_state(client, message.message_id, FINAL)
    assert body["state"] == "dead", body
    assert body["error"]["type"] == "ResultNotSerializable"


class SkipEverything(Middleware):
    """A team's own middleware placed after JobLifecycle that skips every delivery."""

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        raise SkipMessage("skipped by the team's middleware")


def test_a_skip_from_a_middleware_after_the_lifecycle_ends_the_job(
    settings: Settings, client: FlaskClient, redis_client: Any
) -> None:
    # Item 4: a SkipMessage raised after the lifecycle left the job `running` (and the message in `.XQ`).
    with own_broker(settings) as (broker, start):
        broker.add_middleware(SkipEverything())

        @dramatiq.actor
        def never_runs() -> None:
            raise AssertionError("skipped jobs do not run")

        start()
        message = never_runs.send()
        body = wait_for_state(client, message.message_id, FINAL)
    assert body["state"] == "cancelled", body
    assert redis_client.zcard(Keys("jobfleet").running(0, "default")) == 0  # no running entry left behind
    assert not redis_client.keys("*XQ*")  # and nothing in a Dramatiq dead-letter queue


def test_a_sent_message_is_a_job_the_api_can_read_and_cancel_before_any_worker_runs(
    settings: Settings, client: FlaskClient
) -> None:
    # Items 5 and 6: the API refused Dramatiq's dashed ids (404) and `.send()` wrote no record until a worker started.
    ran: list[int] = []
    with own_broker(settings) as (_broker, start):

        @dramatiq.actor
        def remember(n: int) -> None:
            ran.append(n)

        kept, cancelled = remember.send(1), remember.send(2)
        assert "-" in kept.message_id  # Dramatiq's uuid4 with dashes
        assert client.get(f"/v1/jobs/{kept.message_id}").get_json()["state"] == "queued"
        assert client.delete(f"/v1/jobs/{cancelled.message_id}").status_code == 200
        start()
        assert wait_for_state(client, kept.message_id, FINAL)["state"] == "succeeded"
        assert client.get(f"/v1/jobs/{cancelled.message_id}").get_json()["state"] == "cancelled"
    assert ran == [1]


def test_dramatiqs_retry_vocabulary_is_honoured_and_its_retries_middleware_is_refused(
    settings: Settings, client: FlaskClient
) -> None:
    # Item 7: min_backoff/max_backoff/retry_when/throws/on_retry_exhausted raised ValueError at import,
    # Retry(delay=100) waited the policy's backoff, and adding Retries made a second retry for every failure.
    slow_policy = dataclasses.replace(settings, min_backoff_seconds=30.0, max_backoff_seconds=60.0)
    calls: dict[str, int] = {"quick": 0, "thrown": 0, "when": 0}
    exhausted: list[str] = []
    with own_broker(slow_policy) as (broker, start):
        with pytest.raises(ConfigError, match="Retries"):
            broker.add_middleware(Retries())

        @dramatiq.actor(max_retries=3)
        def quick_retry() -> None:
            calls["quick"] += 1
            if calls["quick"] == 1:
                raise dramatiq.Retry(delay=100)  # 100 ms, not the fleet's 30 s minimum backoff

        @dramatiq.actor(throws=(ValueError,))
        def thrown() -> None:
            calls["thrown"] += 1
            raise ValueError("an expected failure: no retry")

        @dramatiq.actor
        def note_exhausted(message: dict[str, Any], info: dict[str, Any]) -> None:
            exhausted.append(message["actor_name"])

        @dramatiq.actor(
            retry_when=lambda retries, exc: retries < 2,
            min_backoff=10,
            max_backoff=20,
            on_retry_exhausted=note_exhausted.actor_name,
        )
        def when() -> None:
            calls["when"] += 1
            raise RuntimeError("fails every time")

        start()
        ids = [quick_retry.send().message_id, thrown.send().message_id, when.send().message_id]
        states = [wait_for_state(client, job_id, FINAL, timeout=20)["state"] for job_id in ids]
        _wait(lambda: exhausted == ["when"])
    assert states == ["succeeded", "dead", "dead"]
    assert calls == {"quick": 2, "thrown": 1, "when": 3}  # first attempt + the 2 retries retry_when allowed


def test_a_type_error_from_user_code_is_retried_as_transient(settings: Settings, client: FlaskClient) -> None:
    # Item 8: a TypeError counted as permanent (dead after one attempt), unlike the README's list.
    attempts: list[int] = []
    with own_broker(settings) as (_broker, start):

        @dramatiq.actor
        def sometimes_confused() -> None:
            attempts.append(1)
            if len(attempts) == 1:
                raise TypeError("a bug hit once")

        start()
        body = wait_for_state(client, sometimes_confused.send().message_id, FINAL)
    assert body["state"] == "succeeded", body
    assert len(attempts) == 2
