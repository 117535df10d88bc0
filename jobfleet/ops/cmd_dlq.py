"""``jobfleet dlq list|show|replay|purge``: the dead-letter queue from an on-call terminal."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import UTC, datetime
from typing import Any

from jobfleet.core.settings import Settings
from jobfleet.store.dead_letters import MAX_BULK, DeadLetters, Filter
from jobfleet.store.factory import open_store


def _caller() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def _dlq(settings: Settings) -> DeadLetters:

    return DeadLetters(open_store(settings))


def _filter(args: argparse.Namespace) -> Filter:
    return Filter(type=args.type, queue=args.queue, exception=args.exception, reason=args.reason)


def _when(ts: Any) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S") if isinstance(ts, int | float) else "-"


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def cmd_list(settings: Settings, args: argparse.Namespace) -> int:
    """List dead letters, newest first."""
    dlq = _dlq(settings)
    items, next_cursor = dlq.page(_filter(args), cursor=args.cursor, limit=args.limit)
    if args.json:
        _print_json({"items": items, "next_cursor": next_cursor, "total": dlq.count()})
        return 0
    print(f"{'JOB ID':34} {'TYPE':8} {'QUEUE':9} {'REASON':10} {'EXCEPTION':22} {'TRIES':5} DEAD-LETTERED")
    for item in items:
        print(
            f"{item['job_id']:34} {item['type'] or '-':8} {item['queue'] or '-':9} {item['reason'] or '-':10} "
            f"{(item['exception'] or '-')[:22]:22} {item['attempts']:<5} {_when(item['dead_lettered_at'])}"
        )
    print(
        f"-- {len(items)} shown, {dlq.count()} in the DLQ" + (f", next: --cursor {next_cursor}" if next_cursor else "")
    )
    return 0


def cmd_show(settings: Settings, args: argparse.Namespace) -> int:
    """Print one dead letter in full."""
    _print_json(_dlq(settings).get(args.job_id))
    return 0


def _progress(done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    sys.stderr.write(f"\rreplaying [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    """Replay one dead letter by id, or many by filter (--all / filters)."""
    dlq = _dlq(settings)
    if args.job_id:
        replay = dlq.replay(args.job_id, caller=_caller())
        out: dict[str, Any] = {"job_id": args.job_id, "replay": replay}
        _print_json(out) if args.json else print(f"replayed {args.job_id} (replay #{replay})")
        return 0
    if not (args.all or args.type or args.queue or args.exception or args.reason):
        print("jobfleet: give a job id, or --all / a filter (--type, --queue, --exception, --reason)", file=sys.stderr)
        return 2
    result = dlq.bulk_replay(
        _filter(args),
        caller=_caller(),
        limit=args.limit,
        per_second=args.per_second,
        dry_run=args.dry_run,
        on_progress=None if args.json or args.dry_run else _progress,
    )
    if args.json:
        _print_json(result.__dict__)
    elif args.dry_run:
        print(f"dry run: {result.matched} dead letter(s) would be replayed")
        for job_id in result.job_ids:
            print(f"  {job_id}")
    else:
        print(f"replayed {result.replayed} of {result.matched}; skipped {len(result.skipped)}")
    return 0 if not result.skipped else 1


def cmd_purge(settings: Settings, args: argparse.Namespace) -> int:
    """Delete dead letters for good (their jobs become ``failed``)."""
    dlq = _dlq(settings)
    ids = args.job_ids
    if not ids:
        print("jobfleet: give the job id(s) to purge", file=sys.stderr)
        return 2
    for job_id in ids:
        dlq.purge(job_id, caller=_caller())
    _print_json({"purged": ids}) if args.json else print(f"purged {len(ids)} dead letter(s)")
    return 0


def register(sub: Any) -> None:
    """Add the ``dlq`` command tree to the ``jobfleet`` parser."""
    dlq = sub.add_parser("dlq", help="inspect, replay and purge dead letters").add_subparsers(
        dest="dlq_command", required=True
    )

    def filters(p: argparse.ArgumentParser) -> None:
        p.add_argument("--type", help="job type")
        p.add_argument("--queue", help="queue name")
        p.add_argument("--exception", help="final exception class")
        p.add_argument("--reason", choices=["permanent", "exhausted", "crash_loop", "poison"])
        p.add_argument("--json", action="store_true", help="machine-readable output")

    p = dlq.add_parser("list", help="list dead letters, newest first")
    filters(p)
    p.add_argument("--cursor", type=int, default=0)
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_list)

    p = dlq.add_parser("show", help="show one dead letter in full")
    p.add_argument("job_id")
    p.set_defaults(func=cmd_show)

    p = dlq.add_parser("replay", help="replay one dead letter, or many matching a filter")
    p.add_argument("job_id", nargs="?")
    filters(p)
    p.add_argument("--all", action="store_true", help="every dead letter (up to --limit)")
    p.add_argument("--limit", type=int, default=100, help=f"at most this many (max {MAX_BULK})")
    p.add_argument("--per-second", type=float, default=50.0, help="throttle")
    p.add_argument("--dry-run", action="store_true", help="only show what would be replayed")
    p.set_defaults(func=cmd_replay)

    p = dlq.add_parser("purge", help="delete dead letters for good")
    p.add_argument("job_ids", nargs="*")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_purge)
