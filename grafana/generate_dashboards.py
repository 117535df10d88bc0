"""Generate the jobfleet Grafana dashboards in grafana/dashboards/ (stdlib only).

The dashboards are defined in grafana/boards/: one module per dashboard (overview, queue, api, dlq) built from the
shared builders in boards/panels.py. This script only renders them to JSON and writes the files.

Run ``make dashboards`` (``python3 grafana/generate_dashboards.py``) after editing; tests/bundle fails when the
JSON files drift from what this script renders. Hand edits to the JSON are overwritten. ``--check`` writes nothing
and exits 1 when a file differs.

``boards`` is imported as a top-level package because Python puts this script's folder first on ``sys.path`` when
it runs; there is no path juggling here. Code that loads this file by path (the drift test) adds grafana/ itself.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from boards import api, dlq, overview, queue

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    boards = {
        "jobfleet-overview.json": overview.board(),
        "jobfleet-queue.json": queue.board(),
        "jobfleet-api.json": api.board(),
        "jobfleet-dlq.json": dlq.board(),
    }
    return {name: json.dumps(board, indent=2) + "\n" for name, board in boards.items()}


def main(argv: list[str]) -> int:
    """Write the dashboards, or with --check report drift and exit 1."""
    drifted = []
    for name, text in render().items():
        path = DASHBOARD_DIR / name
        if "--check" in argv:
            if not path.exists() or path.read_text() != text:
                drifted.append(name)
        else:
            path.write_text(text)
    for name in drifted:
        print(f"{name} differs from grafana/boards/; run make dashboards (python3 grafana/generate_dashboards.py)")
    return 1 if drifted else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
