"""``jobfleet quotas [--caller C]``: what each caller's waiting and running jobs count against the tenant quotas
(JOBFLEET_TENANT_MAX_*), so an operator sees who is near a limit before their enqueues get 429."""

from __future__ import annotations

import argparse
import json
from typing import Any

from jobfleet.core.redis_client import make_client
from jobfleet.core.settings import Settings
from jobfleet.store.factory import keys_for
from jobfleet.store.quota_usage import Usage, quota_usage

_LIMITS = ("outstanding", "delayed", "bytes")


def _row(usage: Usage, limits: dict[str, int], per_partition: dict[str, int]) -> dict[str, Any]:
    row: dict[str, Any] = {"caller": usage.caller}
    for name in _LIMITS:
        used = getattr(usage, name)
        # Each partition enforces ceil(limit / partitions), so the fullest partition is where a 429 starts.
        share = usage.fullest[name] / per_partition[name] if per_partition[name] else 0.0
        row[name] = {"used": used, "limit": limits[name], "fullest_partition_share": round(share, 3)}
    return row


def collect(settings: Settings, caller: str | None) -> list[dict[str, Any]]:
    """The rows ``jobfleet quotas`` prints (raise StoreUnavailable when Redis cannot be read)."""
    limits = dict(
        zip(
            _LIMITS,
            (settings.tenant_max_outstanding, settings.tenant_max_delayed, settings.tenant_max_bytes),
            strict=True,
        )
    )
    per_partition = dict(zip(_LIMITS, settings.quotas_per_partition, strict=True))
    client = make_client(settings)
    try:
        usage = quota_usage(client, keys_for(settings), caller)
    finally:
        client.close()
    return [_row(u, limits, per_partition) for u in usage]


def render(rows: list[dict[str, Any]]) -> str:
    """The human-readable table (a limit of 0 is shown as '-': no limit)."""
    lines = [f"{'CALLER':24} {'OUTSTANDING':>18} {'DELAYED':>16} {'BYTES':>24} {'NEAREST':>8}"]
    for row in rows:
        cells = []
        for name, width in (("outstanding", 18), ("delayed", 16), ("bytes", 24)):
            cell = row[name]
            cells.append(f"{str(cell['used']) + '/' + (str(cell['limit']) if cell['limit'] else '-'):>{width}}")
        nearest = max(row[name]["fullest_partition_share"] for name in _LIMITS)
        lines.append(f"{row['caller']:24} {' '.join(cells)} {nearest:>7.0%}")
    if not rows:
        lines.append("(no caller has waiting or running jobs)")
    return "\n".join(lines)


def cmd_quotas(settings: Settings, args: argparse.Namespace) -> int:
    """Print every caller's quota usage (``--json`` for scripts)."""
    rows = collect(settings, args.caller)
    print(json.dumps(rows, indent=2) if args.json else render(rows))
    return 0


def register(sub: Any) -> None:
    """Add ``quotas`` to the ``jobfleet`` parser."""
    p = sub.add_parser("quotas", help="each caller's waiting and running jobs against the tenant quotas")
    p.add_argument("--caller", help="only this caller (the API key's tenant, or 'anonymous')")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_quotas)
