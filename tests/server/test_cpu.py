"""What the CPU can do and how much of it a run had: printed next to every measured figure."""
from __future__ import annotations

import sys
import time

import pytest

import m2fp_server.cpu as cpu
from m2fp_server.cpu import cpu_times, flags_summary, has_bf16, steal_share


def test_bf16_paths_follow_the_flags_and_the_summary_names_them() -> None:
    assert has_bf16(frozenset({"avx2", "amx_bf16"})) and not has_bf16(frozenset({"avx2", "fma"}))
    assert flags_summary(frozenset({"fma", "avx2", "sse4_2"})) == "avx2 fma"
    assert flags_summary(frozenset()) == "(no SIMD flags found)"


def test_an_isa_cap_for_onednn_leaves_the_flags_above_it_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """``ONEDNN_MAX_CPU_ISA=AVX2`` runs OpenVINO as an AVX2-only CPU would: the bf16 paths must not be chosen
    then, and the figures printed must say which flags were used."""
    flags = "fpu sse4_2 avx avx2 fma avx512f avx512bw avx512_vnni avx_vnni avx512_bf16 amx_bf16 amx_tile amx_int8"
    monkeypatch.setattr(cpu, "_cpuinfo", lambda: {"flags": flags})
    monkeypatch.delenv(cpu.ISA_ENV, raising=False)
    assert has_bf16() and "avx512_bf16" in cpu.cpu_flags()
    monkeypatch.setenv(cpu.ISA_ENV, "avx2")
    assert cpu.cpu_flags() == frozenset({"fpu", "sse4_2", "avx", "avx2", "fma"})
    assert not has_bf16()
    assert "flags: avx2 fma (ONEDNN_MAX_CPU_ISA=AVX2" in cpu.cpu_summary()
    monkeypatch.setenv(cpu.ISA_ENV, "AVX512_CORE_VNNI")
    assert not has_bf16() and {"avx512f", "avx512_vnni"} <= cpu.cpu_flags()
    monkeypatch.setenv(cpu.ISA_ENV, "AVX512_CORE_AMX")  # the top: nothing left out
    assert has_bf16() and "amx_int8" in cpu.cpu_flags()


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
