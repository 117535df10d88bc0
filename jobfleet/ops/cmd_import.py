"""``jobfleet import-dramatiq``: move the messages a stock Dramatiq deployment (``RedisBroker``) has queued — ready
and delayed — onto jobfleet's store, each keeping its message id, body, options and due time, so nothing queued is
lost when a team moves its actors onto jobfleet. Run it once the stock workers are stopped (their unacked messages
are then back on their queues); it refuses while stock workers hold messages unless ``--force``. Re-running is
safe: a message is removed from the stock queue only after jobfleet has it, and enqueueing one id twice makes one
job. Dead letters in stock ``.XQ`` queues are counted and left in place."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import dramatiq
from dramatiq.common import q_name

from jobfleet.broker.broker import JobfleetBroker
from jobfleet.core.redis_client import make_client
from jobfleet.core.settings import Settings
from jobfleet.store.factory import open_store
from jobfleet.store.stock_dramatiq import (
    StockKeys,
    count_dead,
    drop_stock_message,
    held_by_stock_workers,
    stock_messages,
    stock_queues,
)

EXIT_OK, EXIT_REFUSED = 0, 1


def import_stock(
    settings: Settings, *, namespace: str, queues: list[str], force: bool, dry_run: bool
) -> dict[str, Any]:
    """Move every ready and delayed message of ``queues`` (all when empty) from stock Dramatiq's ``namespace``;
    return what was found and moved per queue. Raise RuntimeError when stock workers still hold messages."""
    # No middleware: the messages move as they are (no trace context or other option added on the way).
    # submit is idempotent by message id, so the client may re-send it after a lost reply.
    broker = JobfleetBroker(store=open_store(settings, make_client(settings)), middleware=[])
    try:
        client, keys = broker.client, StockKeys(namespace)
        held = held_by_stock_workers(client, keys)
        if held and not force:
            raise RuntimeError(
                f"{held} message(s) are held by stock Dramatiq workers (keys {keys.acks_pattern()}): stop them "
                "first (SIGTERM puts their messages back on their queues), or pass --force if they are dead"
            )
        report: dict[str, Any] = {"namespace": namespace, "held_by_stock_workers": held, "queues": {}}
        for queue in queues or stock_queues(client, keys):
            moved = {"ready": 0, "delayed": 0, "dead_left_in_place": count_dead(client, keys, queue)}
            for kind, (id_list, messages) in (("ready", keys.ready(queue)), ("delayed", keys.delayed(queue))):
                for message_id, data in stock_messages(client, messages):
                    if not dry_run:
                        _move(broker, data)
                        drop_stock_message(client, id_list, messages, message_id)
                    moved[kind] += 1
            report["queues"][queue] = moved
        return report
    finally:
        broker.close()
        broker.client.close()


def _move(broker: Any, data: bytes) -> None:
    message = dramatiq.Message.decode(data)
    eta = message.options.get("eta")
    options = {k: v for k, v in message.options.items() if k != "eta"}
    delay = max(0, int(eta) - int(time.time() * 1000)) if eta else 0
    broker.enqueue(message.copy(queue_name=q_name(message.queue_name), options=options), delay=delay or None)


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    """Run the import and print what moved (JSON)."""
    try:
        report = import_stock(
            settings, namespace=args.namespace, queues=args.queue or [], force=args.force, dry_run=args.dry_run
        )
    except RuntimeError as exc:
        print(f"jobfleet: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    print(json.dumps(report, indent=2))
    return EXIT_OK


def register(sub: Any) -> None:
    """Add ``import-dramatiq`` to the ``jobfleet`` parser."""
    p = sub.add_parser("import-dramatiq", help="move a stock Dramatiq deployment's queued messages onto jobfleet")
    p.add_argument("--namespace", default="dramatiq", help="the stock RedisBroker's namespace (default: dramatiq)")
    p.add_argument("--queue", action="append", help="a queue to move (repeatable; default: every queue found)")
    p.add_argument("--force", action="store_true", help="move even while stock workers hold messages")
    p.add_argument("--dry-run", action="store_true", help="count what would move, move nothing")
    p.set_defaults(func=cmd_import)
