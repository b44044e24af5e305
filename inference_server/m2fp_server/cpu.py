"""What this CPU can do.

The flags decide which kernels are worth running (bf16 only where the CPU multiplies bf16 in
hardware: emulated, it is far slower than f32) and are printed next to every measured figure, since
the same command gives very different figures on an AVX2-only machine and on one with AVX-512/AMX.
"""
from __future__ import annotations

import functools
import logging
import os
import threading

log = logging.getLogger(__name__)

#: the extensions that decide the speed of the kernels used here, in the order they are printed
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})  # x86 AVX512-BF16 / AMX-BF16, Arm BF16

#: oneDNN (OpenVINO's CPU plugin) uses no instruction above this ISA when it is set: ``ONEDNN_MAX_CPU_ISA=AVX2``
#: runs the OpenVINO models as an AVX2-only CPU would (docs/evaluation.md, "An AVX2-only CPU").  The flags
#: above the cap are then left out here too, so the bf16 paths are not chosen and the figures say so.
ISA_ENV = "ONEDNN_MAX_CPU_ISA"
_ABOVE = {  # flags an ISA cap leaves out (oneDNN's names; higher caps leave out nothing)
    "SSE41": ("avx", "fma", "avx512", "amx", "avx_vnni", "bf16"),
    "AVX": ("avx2", "fma", "avx512", "amx", "avx_vnni", "bf16"),
    "AVX2": ("avx512", "amx", "avx_vnni", "bf16"),
    "AVX2_VNNI": ("avx512", "amx", "bf16"),
    "AVX512_CORE": ("avx512_vnni", "avx512_bf16", "amx", "avx_vnni", "avx512_fp16", "bf16"),
    "AVX512_CORE_VNNI": ("avx512_bf16", "amx", "avx512_fp16", "bf16"),
    "AVX512_CORE_BF16": ("amx", "avx512_fp16"),
}


def usable_cores() -> int:
    """The cores this process may run on (its affinity; a container's limit shows there, not in cpu_count)."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> dict[str, str]:
    """The first value of each key of Linux's ``/proc/cpuinfo`` (empty elsewhere)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep:
                    fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (x86 ``flags``, Arm ``Features``) up to the ``ONEDNN_MAX_CPU_ISA`` cap; empty
    where unknown, so no bf16 path is taken."""
    info = _cpuinfo()
    flags = frozenset((info.get("flags", "") + " " + info.get("Features", "")).split())
    above = _ABOVE.get(isa_cap() or "", ())
    return frozenset(f for f in flags if not f.startswith(above)) if above else flags


def isa_cap() -> str | None:
    """The instruction-set cap set for oneDNN (``ONEDNN_MAX_CPU_ISA``), upper case; None when unset."""
    cap = os.environ.get(ISA_ENV, "").strip().upper()
    return cap or None


def cpu_model() -> str:
    return _cpuinfo().get("model name") or "unknown CPU"


def has_bf16(flags: frozenset[str] | None = None) -> bool:
    return bool(BF16_FLAGS & (cpu_flags() if flags is None else flags))


def flags_summary(flags: frozenset[str] | None = None) -> str:
    """The flags that decide the kernels' speed, for printing next to every figure."""
    flags = cpu_flags() if flags is None else flags
    return " ".join(f for f in SPEED_FLAGS if f in flags) or "(no SIMD flags found)"


def cpu_summary() -> str:
    """Core count and vector extensions: what the figures printed beside it depend on."""
    cap = isa_cap()
    capped = f" ({ISA_ENV}={cap}: OpenVINO limited to it; ONNX Runtime and XNNPACK use the CPU's own)" if cap else ""
    return f"{os.cpu_count()} cores, flags: {flags_summary()}{capped}"


def busy_machine() -> bool:
    """More runnable processes than cores (1-minute load average): wall-clock times say little then."""
    try:
        return os.getloadavg()[0] > (os.cpu_count() or 1)
    except OSError:
        return False


def cpu_times() -> tuple[int, int] | None:
    """(time stolen by the hypervisor, all time) of every core so far, in clock ticks (Linux
    ``/proc/stat``; None elsewhere).  On a shared virtual machine the host can take a large, changing
    share of the cores: live figures measured then are not comparable with others."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 9:
        return None
    ticks = [int(v) for v in fields[1:]]
    return ticks[7], sum(ticks[:8])  # user nice system idle iowait irq softirq steal (guest counted in user)


def steal_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """Share of the cores' time the host took between two ``cpu_times`` readings."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def lower_thread_priority(by: int, who: str) -> None:
    """Lower the calling thread's priority (nice) by ``by``: on Linux a thread id addresses just this
    thread, so the per-frame path keeps its priority.  Elsewhere the thread keeps it (same results, less
    fair), which is logged for ``who``."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + by)
    except (AttributeError, OSError) as exc:
        log.debug("could not lower the priority of %s: %s", who, exc)
