"""The sizes and scratch directory one ``python -m bench`` run hands to every benchmark part."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Options:
    quick: bool
    jobs: int
    count_jobs: int
    wrk_seconds: int
    latency_rate: int
    latency_seconds: int
    retained_jobs: int  # N of the retention part: jobs per memory reading
    history_records: int  # M of the history part: retained job records present for the second measurement
    only: set[str]
    workdir: Path
    results: dict[str, Any] = field(default_factory=dict)
