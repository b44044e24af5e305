"""A short soak in CI (the 30-minute one is a benchmark: see the README)."""
from __future__ import annotations

import re
import subprocess
import sys


def test_short_soak_two_clients_at_30fps():
    proc = subprocess.run([sys.executable, "-m", "m2fp_server.cli.main", "--log-level", "WARNING", "soak",
                           "--minutes", "0.25", "--sample-s", "3", "--size", "320x180"],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    m = re.search(r"SOAK_RESULT rss_growth_pct=(\S+) fds_start=(\d+) fds_end=(\d+) errors=(\d+) masks=(\d+)",
                  proc.stdout)
    assert m, proc.stdout
    growth, fds0, fds1, errors, masks = float(m[1]), int(m[2]), int(m[3]), int(m[4]), int(m[5])
    assert errors == 0
    assert fds1 <= fds0 + 2, "descriptors leak"
    assert masks > 2 * 30 * 15 * 0.5, "two 30 fps clients for 15 s got most of their masks"
    assert growth < 10.0, proc.stdout  # short run: allocator noise allowed, leaks are not
