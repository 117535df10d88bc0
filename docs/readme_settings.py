"""Rewrite README.md's configuration table from the settings declarations (``make readme-settings``).

tests/test_docs.py fails while a setting or its default is missing from the table; this keeps the table in the
order and wording of ``jobfleet config``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
HEADER = "| variable | default | meaning |"


def main() -> int:
    table = subprocess.run(
        [sys.executable, "-m", "jobfleet.ops.cli", "config", "--markdown"], check=True, capture_output=True, text=True
    ).stdout.strip("\n")
    lines = README.read_text().split("\n")
    start = lines.index(HEADER)
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    README.write_text("\n".join([*lines[:start], table, *lines[end:]]))
    print(f"README.md: configuration table rewritten ({len(table.splitlines()) - 2} settings)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
