"""What machine a benchmark ran on, printed next to its figures."""
from __future__ import annotations

import os


def _cpuinfo_field(prefix: str) -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    return _cpuinfo_field("model name") or "unknown CPU"


def cpu_has_bf16() -> bool:
    """Whether the CPU multiplies bf16 in hardware (x86 AVX512-BF16 / AMX-BF16, Arm BF16).

    Without it torch emulates bf16 matrix products about a hundred times slower than
    f32, so a bf16 peak would take many minutes and mean nothing.
    """
    flags = set(((_cpuinfo_field("flags") or "") + " " + (_cpuinfo_field("Features") or "")).split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def load() -> float:
    return os.getloadavg()[0]
