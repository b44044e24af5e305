"""What the CPU can do and how much of it a run had: printed next to every measured figure."""
from __future__ import annotations

import sys
import time

import pytest

from m2fp_server.cpu import cpu_times, flags_summary, has_bf16, steal_share


def test_bf16_paths_follow_the_flags_and_the_summary_names_them() -> None:
    assert has_bf16(frozenset({"avx2", "amx_bf16"})) and not has_bf16(frozenset({"avx2", "fma"}))
    assert flags_summary(frozenset({"fma", "avx2", "sse4_2"})) == "avx2 fma"
    assert flags_summary(frozenset()) == "(no SIMD flags found)"


def test_steal_share_is_the_hosts_part_of_the_time_between_two_readings() -> None:
    assert steal_share((100, 1000), (150, 2000)) == pytest.approx(0.05)
    assert steal_share(None, (1, 2)) is None and steal_share((5, 100), (5, 100)) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/stat is Linux's")
def test_cpu_times_reads_this_machine() -> None:
    a = cpu_times()
    end = time.perf_counter() + 0.2
    while time.perf_counter() < end:  # some busy time so the counters move
        pass
    b = cpu_times()
    assert a is not None and b is not None and b[1] > a[1] and 0 <= b[0] - a[0] <= b[1] - a[1]
    share = steal_share(a, b)
    assert share is not None and 0.0 <= share <= 1.0
