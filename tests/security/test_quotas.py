"""No tenant can starve or fill the system (tenant safety): per-caller quotas checked atomically in the submit call,
a queue's depth limit that only counts due jobs, and counts that go back to zero as jobs end, whichever way."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import redis
from flask.testing import FlaskClient

from jobfleet.app import create_app
from jobfleet.core.settings import Settings
from jobfleet.store.keys import Keys
from tests.conftest import Receiver, RunningWorker, wait_for_state
from tests.security.conftest import bearer

KEYS = Keys("jobfleet")


def _api(settings: Settings, **limits: Any) -> FlaskClient:
    return create_app(dataclasses.replace(settings, **limits)).test_client()


def _counts(redis_client: redis.Redis, caller: str) -> dict[str, int]:
    raw = redis_client.hgetall(KEYS.quota(0, caller))
    return {k.decode(): int(v) for k, v in raw.items()}


def test_one_tenant_s_far_future_schedules_never_fill_the_queue_for_the_others(secure_settings: Settings) -> None:
    # Given a queue limited to 5 ready jobs and a tenant quota of 20 delayed jobs
    api = _api(secure_settings, max_queue_depth=5, tenant_max_delayed=20)
    # When alice schedules 10 jobs a week out
    for _ in range(10):
        response = api.post("/v1/jobs/report?delay_seconds=604800", json={}, headers=bearer("alice"))
        assert response.status_code == 202, response.get_json()
    # Then bob's job that is due now is still accepted: the depth limit counts jobs that are due, not schedules
    assert api.post("/v1/jobs/report", json={}, headers=bearer("bob")).status_code == 202


def test_a_tenant_at_its_delayed_quota_gets_429_and_a_cancel_frees_it(
    secure_settings: Settings, redis_client: redis.Redis
) -> None:
    api = _api(secure_settings, tenant_max_delayed=3)
    jobs = [
        api.post("/v1/jobs/report?delay_seconds=3600", json={}, headers=bearer("alice")).get_json()["job_id"]
        for _ in range(3)
    ]
    refused = api.post("/v1/jobs/report?delay_seconds=3600", json={}, headers=bearer("alice"))
    assert refused.status_code == 429
    body = refused.get_json()
    assert (body["type"], body["limit"]) == ("urn:jobfleet:problem:quota-exceeded", "delayed")
    assert "Retry-After" in refused.headers
    # Another tenant is not held back by alice's quota, and alice's jobs that are due now are not either
    assert api.post("/v1/jobs/report?delay_seconds=3600", json={}, headers=bearer("bob")).status_code == 202
    assert api.post("/v1/jobs/report", json={}, headers=bearer("alice")).status_code == 202
    # When alice cancels one of her schedules, its place is free at once
    assert api.delete(f"/v1/jobs/{jobs[0]}", headers=bearer("alice")).status_code == 200
    assert api.post("/v1/jobs/report?delay_seconds=3600", json={}, headers=bearer("alice")).status_code == 202
    assert _counts(redis_client, "alice")["delayed"] == 3


def test_outstanding_and_byte_quotas_are_atomic_and_refuse_nothing_half_written(
    secure_settings: Settings, redis_client: redis.Redis
) -> None:
    api = _api(secure_settings, tenant_max_outstanding=4, tenant_max_bytes=1_000_000)
    accepted = [api.post("/v1/jobs/report", json={}, headers=bearer("alice")) for _ in range(6)]
    assert [r.status_code for r in accepted] == [202] * 4 + [429] * 2
    assert accepted[-1].get_json()["limit"] == "outstanding"
    assert int(redis_client.zcard(KEYS.queue(0, "reports"))) == 4
    # A body that would take bob past his bytes fails on that quota (a webhook payload of ~400 kB, twice)
    big = {"url": "https://example.com/h", "payload": {"a": "x" * 200_000, "b": "y" * 200_000}}
    api = _api(secure_settings, tenant_max_bytes=500_000)
    assert api.post("/v1/jobs/webhook", json=big, headers=bearer("bob")).status_code == 202
    second = api.post("/v1/jobs/webhook", json=big, headers=bearer("bob"))
    assert (second.status_code, second.get_json()["limit"]) == (429, "bytes")


def test_counts_go_back_to_zero_however_jobs_end(
    secure_settings: Settings,
    redis_client: redis.Redis,
    start_worker: Callable[..., RunningWorker],
    receiver: Receiver,
) -> None:
    # Given quotas on, and alice's jobs ending every way: succeeded, dead, cancelled while waiting and while delayed
    limits = {"tenant_max_outstanding": 100, "tenant_max_delayed": 100, "tenant_max_bytes": 10_000_000}
    api = _api(secure_settings, **limits)
    receiver.responder = lambda request: 404 if request["body"].get("fail") else 200
    ok = api.post("/v1/jobs/webhook", json={"url": receiver.url, "payload": {}}, headers=bearer("alice"))
    dead = api.post("/v1/jobs/webhook", json={"url": receiver.url, "payload": {"fail": 1}}, headers=bearer("alice"))
    later = api.post("/v1/jobs/report?delay_seconds=0.5", json={}, headers=bearer("alice"))
    scheduled = api.post("/v1/jobs/report?delay_seconds=3600", json={}, headers=bearer("alice"))
    counts = _counts(redis_client, "alice")
    assert (counts["outstanding"], counts["delayed"]) == (4, 2)
    assert counts["bytes"] > 0
    assert api.delete(f"/v1/jobs/{scheduled.get_json()['job_id']}", headers=bearer("alice")).status_code == 200
    start_worker(dataclasses.replace(secure_settings, **limits))
    for response, state in ((ok, "succeeded"), (dead, "dead"), (later, "succeeded")):
        job_id = response.get_json()["job_id"]
        assert wait_for_state(api, job_id, {state}, headers=bearer("alice"))["state"] == state
    # Then nothing is counted against alice any more
    assert _counts(redis_client, "alice") == {"outstanding": 0, "delayed": 0, "bytes": 0}


def test_jobfleet_quotas_shows_each_caller_s_usage_against_the_limits(secure_settings: Settings) -> None:
    from jobfleet.ops import cmd_quotas

    settings = dataclasses.replace(secure_settings, tenant_max_delayed=10, tenant_max_outstanding=100)
    api = _api(settings)
    for _ in range(4):
        assert api.post("/v1/jobs/report?delay_seconds=3600", json={}, headers=bearer("alice")).status_code == 202
    assert api.post("/v1/jobs/report", json={}, headers=bearer("bob")).status_code == 202
    rows = {row["caller"]: row for row in cmd_quotas.collect(settings, None)}
    assert set(rows) == {"alice", "bob"}
    assert rows["alice"]["delayed"] == {"used": 4, "limit": 10, "fullest_partition_share": 0.4}
    assert rows["alice"]["outstanding"]["used"] == 4
    assert rows["bob"]["outstanding"]["used"] == 1
    assert rows["bob"]["delayed"]["used"] == 0
    assert rows["alice"]["bytes"]["used"] > 0
    assert [row["caller"] for row in cmd_quotas.collect(settings, "bob")] == ["bob"]
    table = cmd_quotas.render(list(rows.values()))
    alice_line = next(line for line in table.splitlines() if line.startswith("alice"))
    assert "4/10" in alice_line
    assert "40%" in alice_line
