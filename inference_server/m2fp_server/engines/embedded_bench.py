"""``m2fp bench --models``: milliseconds per frame of each shipped model and of the embedded engine.

One thread (the engines' default), in this process, median wall time and CPU
time over ``--seconds`` per row, on real 640x480 composites: a webcam bust (bust mode) and, when the
opencv-doc samples can be had, the full-body framing clip (body mode).  The load
average is printed with the figures, since other processes share the cores.
"""
from __future__ import annotations

import argparse
import os
import time
from typing import Callable

import numpy as np


def _median_ms(fn: Callable[[int], object], seconds: float, min_runs: int = 20) -> tuple[float, float, int]:
    """(wall ms, this thread's CPU ms, runs): CPU time is what the row costs one core even when other
    processes share the cores and stretch the wall time."""
    fn(0)  # warm-up (XNNPACK packs weights on first use)
    wall, cpu = [], []
    end = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < end or i < min_runs:
        t, c = time.perf_counter(), time.thread_time()
        fn(i)
        cpu.append((time.thread_time() - c) * 1e3)
        wall.append((time.perf_counter() - t) * 1e3)
        i += 1
    return float(np.median(wall)), float(np.median(cpu)), len(wall)


def _frames() -> tuple[list[np.ndarray], list[np.ndarray] | None, str]:
    """Bust frames (shipped cutout) and full-body frames (opencv-doc, if it can be had), 640x480."""
    from ..evaluation.groundtruth import Placement, still
    bust = [still("astronaut", (640, 480), Placement(0.5 + 0.01 * k, 1.0, 0.9), seed=1)[0] for k in range(8)]
    try:
        from ..evaluation.clips import get_clip
        clip = get_clip("framing-full-body", static=2, moving=30)
        return bust, [np.ascontiguousarray(f) for f in clip.frames], ""
    except (FileNotFoundError, OSError) as exc:
        return bust, None, f"(full-body clip unavailable: {exc})"


def run_models_bench(args: argparse.Namespace) -> int:
    from .embedded import EmbeddedEngine
    from .embedded_detect import PoseDetector
    from .embedded_models import PoseSegmenter, Roi, crop
    from .selfie import MODEL_FILES, MODELS_DIR, TFLiteSegmenter

    seconds = max(0.5, float(args.seconds))
    bust, body, note = _frames()
    print(f"# m2fp bench --models: 1 thread, 640x480 frames, median of >= {seconds:.1f} s per row; "
          f"load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"{'what':46s} {'ms/frame':>9s} {'cpu ms':>7s} {'runs':>6s}")
    general = TFLiteSegmenter(MODELS_DIR / MODEL_FILES["general"])
    landscape = TFLiteSegmenter(MODELS_DIR / MODEL_FILES["landscape"])
    pose = PoseSegmenter()
    detect = PoseDetector()
    roi = Roi(320, 240, 480)
    rows: list[tuple[str, Callable[[int], object]]] = [
        ("selfie general (256x256), whole frame", lambda i: general(bust[i % len(bust)])),
        ("selfie landscape (256x144), whole frame", lambda i: landscape(bust[i % len(bust)])),
        ("pose landmark full (256x256), one region", lambda i: pose.run(crop(bust[i % len(bust)], roi, 256))),
        ("pose detector (224x224), whole frame", lambda i: detect(bust[i % len(bust)])),
    ]
    eng = EmbeddedEngine()
    bust_stream, body_stream = eng.new_stream(), eng.new_stream()
    rows.append(("embedded engine, bust mode", lambda i: eng.infer(bust[i % len(bust)], bust_stream)))
    if body is not None:
        frames = body
        rows.append(("embedded engine, body mode (full-body clip)",
                     lambda i: eng.infer(frames[i % len(frames)], body_stream)))
    for name, fn in rows:
        ms, cpu, n = _median_ms(fn, seconds)
        print(f"{name:46s} {ms:9.2f} {cpu:7.2f} {n:6d}", flush=True)
    if body is not None:
        modes = body_stream.track.mode if body_stream.track is not None else "none"
        print(f"# body-mode row ran in mode: {modes}")
    else:
        print(f"# {note}")
    return 0
