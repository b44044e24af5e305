"""``m2fp bench --rvm``: milliseconds per 640x360 frame of RVM as one stream runs it, against the whole graph.

Rows, each for ``--seconds`` in two halves taken in turn (A B A B), so that a
machine whose speed drifts weighs on both alike:

* the whole fixed-shape graph (what the engine ran before ``rvm_lowres``: the
  refiner's four channels upsampled and foreground computed at full size);
* the graph the engine runs now, with the full-resolution step done in OpenCV;
* the engine itself (``RVMEngine.infer``: view, detector, still hold) on a clip.

Runtime, precision and size are the ``m2fp tune-rvm`` choice for this CPU (or
the default).  ``tune-rvm`` times all its candidates in turn frame by frame, so
their caches evict each other; here one stream's model runs alone, as it does
in the server.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from .embedded import median_ms

FRAME = (640, 360)


def _whole_graph(model: Path, work: Path, runtime: str, precision: str, w: int, h: int, ds: float,
                 threads: int) -> Callable[[np.ndarray, list[np.ndarray]], tuple[np.ndarray, list[np.ndarray]]]:
    """The fetched graph with shapes fixed and nothing cut: the baseline row."""
    import onnx

    from ..engines.rvm import STATE_INPUTS, ModelFiles, openvino_compiled, ort_session, pin_shapes
    shapes = ModelFiles(model, work).state_shapes(w, h, ds)
    path = work / "whole.onnx"
    onnx.save(pin_shapes(onnx.load(str(model)), {"src": (1, 3, h, w), **dict(zip(STATE_INPUTS, shapes))}, ds),
              str(path))
    outs = ("pha", "r1o", "r2o", "r3o", "r4o")
    if runtime == "openvino":
        compiled = openvino_compiled(path, threads, precision)
        req = compiled.create_infer_request()

        def run_ov(src: np.ndarray, rec: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
            r = req.infer({"src": src, **dict(zip(STATE_INPUTS, rec))})
            pha, *rec = (np.array(r[compiled.output(n)]) for n in outs)
            return pha[0, 0], rec
        return run_ov
    sess = ort_session(path, threads)

    def run_ort(src: np.ndarray, rec: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        pha, *rec = sess.run(list(outs), {"src": src, **dict(zip(STATE_INPUTS, rec))})
        return pha[0, 0], rec
    return run_ort


def run_rvm_bench(args: argparse.Namespace) -> int:
    from .. import rvm_weights
    from ..cpu import cpu_summary
    from ..engines.rvm import RVMEngine, model_shape, to_src
    from ..evaluation.clips import get_clip

    seconds = max(0.5, float(args.seconds))
    model = rvm_weights.locate()
    engine = RVMEngine()
    setting, threads = engine.setting, engine.threads
    w, h = model_shape(FRAME, setting.width)
    frames = [np.ascontiguousarray(f) for f in get_clip("footage-crossing", static=2, moving=30, size=FRAME).frames]
    srcs = [to_src(f, w, h) for f in frames]
    print(f"# m2fp bench --rvm: {setting.label}, {threads} threads, {FRAME[0]}x{FRAME[1]} frames "
          f"(footage-crossing), median of >= {seconds:.1f} s per row in two halves; "
          f"load {os.getloadavg()[0]:.2f}; {cpu_summary()}")
    print(f"{'what':52s} {'ms/frame':>9s} {'cpu ms':>7s} {'runs':>6s}", flush=True)
    with tempfile.TemporaryDirectory(prefix="m2fp-bench-rvm-") as tmp:
        whole = _whole_graph(model, Path(tmp), setting.runtime, setting.precision, w, h, setting.downsample,
                             threads)
        cut = engine.runner_for((w, h))  # the engine's own compiled model (states are passed in)
        states = {"whole": cut.zero_states(), "cut": cut.zero_states()}

        def graph(name: str, run: Callable[[np.ndarray, list[np.ndarray]], tuple[np.ndarray, list[np.ndarray]]]
                  ) -> Callable[[int], object]:
            def one(i: int) -> object:
                pha, states[name] = run(srcs[i % len(srcs)], states[name])  # the stream's states carried
                return pha
            return one
        ctx = engine.new_stream()
        rows: list[tuple[str, Callable[[int], object]]] = [
            ("graph as fetched (full-resolution step inside)", graph("whole", whole)),
            ("graph cut + full-resolution step in OpenCV", graph("cut", cut)),
            ("rvm engine (infer: view, detector, still hold)", lambda i: engine.infer(frames[i % len(frames)], ctx)),
        ]
        results: dict[str, list[tuple[float, float, int]]] = {name: [] for name, _ in rows}
        for _ in range(2):
            for name, fn in rows:
                results[name].append(median_ms(fn, seconds / 2))
        ms = {}
        for name, _ in rows:
            parts = results[name]
            ms[name] = float(np.mean([p[0] for p in parts]))
            print(f"{name:52s} {ms[name]:9.2f} {np.mean([p[1] for p in parts]):7.2f} "
                  f"{sum(p[2] for p in parts):6d}", flush=True)
        base, now = ms[rows[0][0]], ms[rows[1][0]]
        print(f"# cut graph / whole graph: {now / base:.2f}x (same process, same frames and states)")
    engine.close()
    return 0
