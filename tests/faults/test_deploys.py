"""Deploys (store v2, part 1, items 5 and 8): a rolling deploy that adds an actor (and its rollback) loses no job,
and graceful drains during a long job never count as crashes.

Invariants: a job for an actor some workers lack is never dead-lettered: it waits (held back, counted) until a
worker that has the actor runs it; a job whose worker drained past its deadline is given back, not interrupted,
however many deploys happen during it, and it ends succeeded once a worker lets it finish."""

from __future__ import annotations

import time

import pytest

from jobfleet.store.factory import open_store
from tests.faults.stage import KEYS, Stage

pytestmark = pytest.mark.slow
BOUND_S = 30


def _send(stage: Stage, actor: str, queue: str, **kwargs: object) -> str:
    """Send a message for ``actor`` the way a producer with the newer release would (the job record included)."""
    settings = stage.settings()
    store = open_store(settings)
    stage.clients.append(store.client)
    job_id = store.new_job_id()
    message = {
        "queue_name": queue,
        "actor_name": actor,
        "args": [],
        "kwargs": kwargs,
        "options": {},
        "message_id": job_id,
        "message_timestamp": int(time.time() * 1000),
    }
    import json

    fields = {"msg": json.dumps(message), "type": actor, "queue": queue, "actor": actor, "caller": "", "key": ""}
    store.submit(job_id=job_id, queue_name=queue, fields=fields)
    return job_id


def test_a_rolling_deploy_that_adds_an_actor_and_its_rollback_lose_nothing(stage: Stage) -> None:
    # Given only workers of the older release, and jobs for an actor the newer release adds
    api = stage.api()
    old = stage.worker(extra_env={"JOBFLEET_UNKNOWN_ACTOR_HOLD_SECONDS": "0.5"})
    newer_jobs = [_send(stage, "build_report_v2", "reports", rows=n) for n in range(3)]
    plain = [api.post("/v1/jobs/report", json={"rows": 5}).get_json()["job_id"] for _ in range(3)]
    assert set(stage.wait_final(plain, BOUND_S)[0].values()) == {"succeeded"}
    time.sleep(1.5)
    # Then the older workers run their own jobs and hold the newer ones back: queued, counted, not dead
    assert set(stage.states(newer_jobs).values()) == {"queued"}
    assert int(stage.client().hget(KEYS.held_back(0), "reports|build_report_v2") or 0) >= 3
    assert api.get("/v1/dlq").get_json()["total"] == 0
    # When a newer worker joins (the deploy rolls on), it runs them
    new = stage.worker(boot="tests.faults.boots:newer")
    assert set(stage.wait_final(newer_jobs, BOUND_S)[0].values()) == {"succeeded"}, new.tail()
    # And after a rollback (the newer worker gone), a newer job waits again instead of dying
    new.stop()
    late = _send(stage, "build_report_v2", "reports", rows=9)
    time.sleep(2)
    assert stage.states([late]) == {late: "queued"}
    assert old.alive()


def test_repeated_drains_during_a_long_job_never_dead_letter_it(stage: Stage) -> None:
    # Given a job that takes 6 s, and workers that drain for 1 s when they are stopped (a deploy, a scale-down)
    job_id = _send(stage, "slow_job", "slow")
    env = {"JOBFLEET_TEST_SLOW_SECONDS": "6", "JOBFLEET_MAX_CRASH_REDELIVERIES": "2"}
    # When four deploys in a row stop the worker mid-job (more than the 2 crashes that would dead-letter it)
    client = stage.client()
    for deploy in range(1, 5):
        worker = stage.worker(boot="tests.faults.boots:slow", extra_env=env, shutdown_timeout_ms=1000)
        deadline = time.monotonic() + BOUND_S
        # ... each time once this worker has claimed the job afresh (every claim raises the job's fencing token;
        # the delivery counter does not move, since a drained delivery is given back as if it never ran)
        while int(client.hget(KEYS.job(job_id), "token") or 0) < deploy and time.monotonic() < deadline:
            time.sleep(0.1)
        assert stage.states([job_id])[job_id] == "running", worker.tail()
        worker.terminate()
        worker.proc.wait(timeout=30)
    # Then the job is not dead: each stop gave it back (no interruption counted)
    record = stage.client().hgetall(KEYS.job(job_id))
    assert record[b"state"] in {b"queued", b"running"}, record
    assert int(record.get(b"interruptions") or 0) == 0
    # And a worker that lets it finish ends it succeeded
    stage.worker(boot="tests.faults.boots:slow", extra_env=env)
    assert stage.wait_final([job_id], BOUND_S)[0] == {job_id: "succeeded"}
