"""The filter's figures: per-frame timing counters, and the JSON report tests and `m2fp obs-bench` read.

Only ``Timings.add`` runs per frame (a deque append per phase).  Percentiles, the
report file and the test hooks (a ``.reset`` flag file, the properties dialog
self-check) run from a script timer a few times a second, and only when
``$M2FP_OBS_STATS`` names a report file.
"""
from __future__ import annotations

import collections
import json
import os
import time
from typing import Any, Deque, Dict, Iterable, List

#: per-frame timings (ms): render = poll_upload + capture + draw (graphics thread, in video_render), and
#: capture_draw = capture + draw (the filter's own GPU work); input = the part of capture that renders the
#: source into the full-size texture; readback happens in the next video_tick, when the GPU has finished
#: the small render, and send at the end of that frame's video_render or in the tick (``pacing``)
PHASES = ("poll_upload", "input", "capture", "draw", "capture_draw", "render", "readback", "send")
STATS_ENV = "M2FP_OBS_STATS"  # tests and `m2fp obs-bench`: write stats JSON to this path


class Timings:
    """The last 1800 samples (a minute at 30 fps) of each phase, in ms."""

    def __init__(self) -> None:
        self.samples: Dict[str, Deque[float]] = {p: collections.deque(maxlen=1800) for p in PHASES}
        self.frames = 0

    def render(self, t0: float, t1: float, t2: float, t3: float) -> None:
        """One video_render: poll/upload t0→t1, capture t1→t2, draw t2→t3 (perf_counter seconds)."""
        self.frames += 1
        s = self.samples
        s["poll_upload"].append((t1 - t0) * 1000.0)
        s["capture"].append((t2 - t1) * 1000.0)
        s["draw"].append((t3 - t2) * 1000.0)
        s["capture_draw"].append((t3 - t1) * 1000.0)
        s["render"].append((t3 - t0) * 1000.0)

    def add(self, phase: str, seconds: float) -> None:
        self.samples[phase].append(seconds * 1000.0)

    def clear(self) -> None:
        for d in self.samples.values():
            d.clear()

    def summary(self) -> Dict[str, Dict[str, float]]:
        return {p: percentiles(list(d)) for p, d in self.samples.items()}


def percentiles(values: Iterable[float]) -> Dict[str, float]:
    v = sorted(values)
    if not v:
        return {"n": 0}
    return {"n": len(v), "p50": v[len(v) // 2], "p95": v[min(len(v) - 1, int(len(v) * 0.95))],
            "max": v[-1], "mean": sum(v) / len(v)}


class StatsWriter:
    """Writes every instance's stats as JSON to ``$M2FP_OBS_STATS`` (tests, bench); called from a timer."""

    def __init__(self, path: str) -> None:
        self.path = path

    def write(self, instances: List[Dict[str, Any]]) -> None:
        data = {"time": time.monotonic(), "pid": os.getpid(), "instances": instances}
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.replace(tmp, self.path)

    def reset_requested(self) -> bool:
        """A bench asks to restart the timing window by creating ``<path>.reset`` (removed when done)."""
        flag = self.path + ".reset"
        if os.path.exists(flag):
            try:
                os.remove(flag)
            except OSError:
                return False
            return True
        return False
