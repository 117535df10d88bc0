"""Moving a stock Dramatiq deployment onto jobfleet loses no queued message: `jobfleet import-dramatiq` moves the
ready and delayed messages a stock RedisBroker queued (same ids, bodies and due times) into jobfleet's store, refuses
while stock workers hold messages, and is safe to run twice. Real Redis, a real stock producer."""

from __future__ import annotations

from typing import Any

import dramatiq
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker
from flask.testing import FlaskClient

from jobfleet.core.settings import Settings
from jobfleet.ops.cmd_import import import_stock
from tests.byo.brokers import own_broker
from tests.conftest import wait_for_state

FINAL = {"succeeded", "dead", "cancelled", "failed"}


def _stock_producer(redis_url: str) -> tuple[RedisBroker, Any]:
    stock = RedisBroker(url=redis_url)  # namespace "dramatiq", as every existing deployment has it
    actor = dramatiq.actor(lambda n: None, broker=stock, actor_name="team_task", queue_name="team")
    return stock, actor


def test_every_ready_and_delayed_stock_message_moves_over_and_runs_once(
    settings: Settings, redis_url: str, redis_client: redis.Redis, client: FlaskClient
) -> None:
    # Given a stock deployment with 5 ready messages and 2 delayed ones (one due in 1 s, one in an hour)
    stock, actor = _stock_producer(redis_url)
    ready = [actor.send(n).message_id for n in range(5)]
    soon = actor.send_with_options(args=(100,), delay=1_000).message_id
    later = actor.send_with_options(args=(200,), delay=3_600_000).message_id
    stock.close()
    # When it is imported
    report = import_stock(settings, namespace="dramatiq", queues=[], force=False, dry_run=False)
    assert report["queues"]["team"] == {"ready": 5, "delayed": 2, "dead_left_in_place": 0}
    # Then the stock queues are empty, and a second run moves nothing
    assert not redis_client.exists("dramatiq:team.msgs", "dramatiq:team.DQ.msgs", "dramatiq:team", "dramatiq:team.DQ")
    again = import_stock(settings, namespace="dramatiq", queues=["team"], force=False, dry_run=False)
    assert again["queues"]["team"] == {"ready": 0, "delayed": 0, "dead_left_in_place": 0}
    # And jobfleet has every message under its own id: the hour-away one waits, the others run once each
    assert client.get(f"/v1/jobs/{later}").get_json()["state"] == "scheduled"
    ran: list[int] = []
    with own_broker(settings) as (_broker, start):

        @dramatiq.actor(actor_name="team_task", queue_name="team")
        def team_task(n: int) -> None:
            ran.append(n)

        start()
        for job_id in [*ready, soon]:
            assert wait_for_state(client, job_id, FINAL)["state"] == "succeeded"
    assert sorted(ran) == [0, 1, 2, 3, 4, 100]


def test_the_import_refuses_while_stock_workers_hold_messages(
    settings: Settings, redis_url: str, redis_client: redis.Redis
) -> None:
    stock, actor = _stock_producer(redis_url)
    actor.send(1)
    stock.close()
    redis_client.sadd("dramatiq:__acks__.some-worker.team", "a-message-id")  # a stock worker holds one
    with pytest.raises(RuntimeError, match="stop them first"):
        import_stock(settings, namespace="dramatiq", queues=[], force=False, dry_run=False)
    dry = import_stock(settings, namespace="dramatiq", queues=[], force=True, dry_run=True)
    assert dry["queues"]["team"]["ready"] == 1
    assert redis_client.hlen("dramatiq:team.msgs") == 1  # a dry run moves nothing
