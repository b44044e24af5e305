"""What machine a benchmark ran on, printed next to its figures."""
from __future__ import annotations

import os

from ..cpu import cpu_model as cpu_model  # re-exported: benches print it


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def load() -> float:
    return os.getloadavg()[0]
