"""Build a sales report from a generated order data set, in phases, reporting progress 0→100."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobfleet.core.payloads import ReportPayload

REGIONS = ("emea", "amer", "apac")
PRODUCTS = ("basic", "pro", "enterprise", "addon")
_PRICES = {"basic": 9.0, "pro": 29.0, "enterprise": 199.0, "addon": 4.5}

Progress = Callable[[int, str], None]


def _orders(rows: int, seed: int) -> list[tuple[int, str, str, int, float]]:
    rng = random.Random(seed)
    return [
        (i, rng.choice(REGIONS), product, rng.randint(1, 20), _PRICES[product])
        for i in range(rows)
        for product in (rng.choice(PRODUCTS),)
    ]


def build(payload: ReportPayload, *, job_id: str, out_dir: str, progress: Progress) -> dict[str, Any]:
    """Generate, aggregate and write the report; return the artifact's path, size and checksum."""
    progress(0, "loading data set")
    orders = _orders(payload.rows, payload.seed)
    progress(40, f"loaded {len(orders)} orders")

    totals: dict[tuple[str, str], dict[str, float]] = {}
    step = max(1, len(orders) // 4)
    for n, (_, region, product, qty, price) in enumerate(orders, start=1):
        line = totals.setdefault((region, product), {"orders": 0, "units": 0, "revenue": 0.0})
        line["orders"] += 1
        line["units"] += qty
        line["revenue"] += qty * price
        if n % step == 0 and n < len(orders):
            progress(40 + 40 * n // len(orders), "aggregating")
    progress(80, "writing artifact")

    rows = [
        {
            "region": r,
            "product": p,
            "orders": int(v["orders"]),
            "units": int(v["units"]),
            "revenue": round(v["revenue"], 2),
        }
        for (r, p), v in sorted(totals.items())
    ]
    if payload.format == "json":
        content = json.dumps({"job_id": job_id, "source_rows": payload.rows, "lines": rows}, indent=2).encode()
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=["region", "product", "orders", "units", "revenue"])
        writer.writeheader()
        writer.writerows(rows)
        content = buffer.getvalue().encode()

    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"report-{job_id}.{payload.format}"
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(content)
    os.replace(tmp, path)  # readers never see a half-written artifact
    progress(100, "done")
    return {
        "path": str(path.resolve()),
        "size_bytes": len(content),
        "format": payload.format,
        "source_rows": payload.rows,
        "lines": len(rows),
        "sha256": hashlib.sha256(content).hexdigest(),
    }
