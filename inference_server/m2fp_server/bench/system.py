"""What machine a benchmark ran on, printed next to its figures."""
from __future__ import annotations

import os

from ..cpu import cpu_model as cpu_model  # re-exported: benches print it


def load() -> float:
    return os.getloadavg()[0]
