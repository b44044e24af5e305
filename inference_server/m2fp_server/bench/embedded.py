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


def median_ms(fn: Callable[[int], object], seconds: float, min_runs: int = 20) -> tuple[float, float, int]:
    """(wall ms, this process's CPU ms, runs): CPU time is what the row costs even when other processes
    share the cores and stretch the wall time (the process's, not the thread's: OpenVINO computes on its
    own threads)."""
    fn(0)  # warm-up (XNNPACK packs weights on first use)
    wall, cpu = [], []
    end = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < end or i < min_runs:
        t, c = time.perf_counter(), time.process_time()
        fn(i)
        cpu.append((time.process_time() - c) * 1e3)
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
    from ..engines.embedded import EmbeddedEngine
    from ..engines.embedded_detect import PoseDetector
    from ..engines.embedded_models import PoseSegmenter, Roi, crop
    from ..engines.selfie import MODEL_FILES, MODELS_DIR, SelfiePair, TFLiteSegmenter
    from ..cpu import cpu_summary, has_bf16, usable_cores

    seconds = max(0.5, float(args.seconds))
    bust, body, note = _frames()
    print(f"# m2fp bench --models: 1 thread unless a row says, 640x480 frames, median of >= {seconds:.1f} s per row; "
          f"load {os.getloadavg()[0]:.2f}; {cpu_summary()}")
    print(f"{'what':46s} {'ms/frame':>9s} {'cpu ms':>7s} {'runs':>6s}", flush=True)
    general = TFLiteSegmenter(MODELS_DIR / MODEL_FILES["general"])
    landscape = TFLiteSegmenter(MODELS_DIR / MODEL_FILES["landscape"])
    pair = SelfiePair()
    pose = PoseSegmenter()
    pose_lite = PoseSegmenter(backend="litert")
    pose_bf16 = PoseSegmenter(bf16=True) if has_bf16() else None
    pose_two = PoseSegmenter(threads=2) if usable_cores() >= 2 else None
    detect = PoseDetector()
    roi = Roi(320, 240, 480)

    def region(i: int) -> np.ndarray:
        return crop(bust[i % len(bust)], roi, 256)
    rows: list[tuple[str, Callable[[int], object]]] = [
        ("selfie general (256x256), whole frame", lambda i: general(bust[i % len(bust)])),
        ("selfie landscape (256x144), whole frame", lambda i: landscape(bust[i % len(bust)])),
        ("selfie pair (landscape + general on squares)", lambda i: pair(bust[i % len(bust)], (320, 240))),
        ("pose landmark full, one region: ai-edge-litert", lambda i: pose_lite.run(region(i))),
        ("pose landmark full, one region: backend f32", lambda i: pose.run(region(i))),
        ("pose detector (224x224), whole frame", lambda i: detect(bust[i % len(bust)])),
    ]
    if pose_bf16 is not None:
        bf16_model = pose_bf16
        rows.append(("pose landmark full, one region: bf16", lambda i: bf16_model.run(region(i))))
    if pose_two is not None:
        two_model = pose_two
        rows.append(("pose landmark full, one region: f32, 2 threads", lambda i: two_model.run(region(i))))
    eng = EmbeddedEngine(threads=1)
    # the schedule and runtime before issue 13, same process: the baseline of the body-mode row
    before = EmbeddedEngine(threads=1, backend="litert", bf16=False, outside_every=1)
    before_stream = before.new_stream()
    bust_stream, body_stream = eng.new_stream(), eng.new_stream()
    rows.append(("embedded engine, bust mode", lambda i: eng.infer(bust[i % len(bust)], bust_stream)))
    one_model = EmbeddedEngine(threads=1, bust="landscape")
    one_stream = one_model.new_stream()
    rows.append(("  the same, landscape model alone",
                 lambda i: one_model.infer(bust[i % len(bust)], one_stream)))
    if body is not None:
        frames = body
        rows.append(("embedded engine, body mode (full-body clip)",
                     lambda i: eng.infer(frames[i % len(frames)], body_stream)))
        rows.append(("  the same, litert/f32/landscape every frame",
                     lambda i: before.infer(frames[i % len(frames)], before_stream)))
    # what the server runs: as many threads per model as ran the pose model fastest here (``pick_threads``)
    measured = EmbeddedEngine()
    if measured.threads != 1:
        m_bust, m_body = measured.new_stream(), measured.new_stream()
        rows.append((f"embedded engine, bust mode, {measured.threads} threads",
                     lambda i: measured.infer(bust[i % len(bust)], m_bust)))
        if body is not None:
            rows.append((f"embedded engine, body mode, {measured.threads} threads",
                         lambda i: measured.infer(frames[i % len(frames)], m_body)))
    for name, fn in rows:
        ms, cpu, n = median_ms(fn, seconds)
        print(f"{name:46s} {ms:9.2f} {cpu:7.2f} {n:6d}", flush=True)
    if body is not None:
        modes = body_stream.track.mode if body_stream.track is not None else "none"
        print(f"# body-mode row ran in mode: {modes}")
        _profile_body(eng, frames)
    else:
        print(f"# {note}")
    return 0


def _profile_body(engine: object, frames: list[np.ndarray]) -> None:
    """Where body mode's time goes: the server's pipeline (motion on, 2 frames predicted) under cProfile."""
    import cProfile
    import io
    import pstats

    from m2fp_protocol import StreamConfig

    from ..engines.base import Engine
    from ..pipeline import Pipeline
    from ..streams import StreamState
    assert isinstance(engine, Engine)
    pipe = Pipeline(engine)
    stream = StreamState(b"profile")
    stream.apply(StreamConfig.from_json({"predict_frames": 2}), engine.classes)
    for f in frames[:4]:
        pipe.process(f, stream)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(3):
        for f in frames:
            pipe.process(f, stream)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(10)
    print("# body mode through Pipeline.process (motion on, predict 2), top functions by own time:")
    print("\n".join(ln for ln in out.getvalue().splitlines() if ln.strip())[:3000])
