"""Choose how ``rvm`` runs on this machine, by measurement (``m2fp tune-rvm``).

Every candidate (runtime x precision x input width x downsample) is timed on
640x360 frames, all candidates in turn frame by frame, so a machine whose speed
drifts (shared cores) slows them alike, and scored on every evaluation clip
against the truth.  The reference is the fp32 model at the widest setting; a
candidate qualifies when its moving-part IoU is within ``tolerance`` of the
reference's on every clip; the fastest qualifying one (median) is kept in the
cache with the CPU flags it was measured on.  A choice measured on another CPU
is ignored.
"""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from ..cpu import busy_machine, cpu_flags, flags_summary, has_bf16
from ..engines.base import EngineUnavailable
from ..engines.rvm import ModelFiles, Runner, RVMSetting, build_runner, model_shape, to_src
from ..engines.rvm_choice import choice_file as choice_file  # re-exported for the CLI and tests
from ..engines.rvm_choice import load_choice as load_choice
from ..engines.rvm_choice import runtime_versions, save_choice
from ..samples import moving_frames

log = logging.getLogger(__name__)

REFERENCE = RVMSetting("onnxruntime", "fp32", 640, 0.4)
BENCH_FRAME = (640, 360)
#: (width, downsample): the backbone sees width * downsample
SIZES: tuple[tuple[int, float], ...] = ((640, 0.4), (512, 0.5), (512, 0.375), (384, 0.5), (384, 0.667), (320, 0.6))


def candidates(runtimes: Iterable[str] = ("onnxruntime", "openvino"),
               precisions: Iterable[str] = ("fp32", "bf16", "int8"),
               sizes: Iterable[tuple[int, float]] = SIZES) -> list[RVMSetting]:
    """Every combination this CPU and these packages can run (bf16 only with the CPU flag)."""
    out: list[RVMSetting] = []
    for rt in runtimes:
        try:
            __import__(rt)
        except ImportError:
            log.info("tune: %s is not installed; skipping it", rt)
            continue
        for p in precisions:
            if p == "bf16" and (rt != "openvino" or not has_bf16()):
                continue
            out.extend(RVMSetting(rt, p, w, ds) for w, ds in sizes)
    return out


# --------------------------------------------------------------------------- measuring
@dataclass
class Measured:
    setting: RVMSetting
    ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)  # process CPU time per frame (all threads)
    iou: dict[str, float] = field(default_factory=dict)  # clip -> moving-part IoU against the truth
    agree: dict[str, float] = field(default_factory=dict)  # clip -> IoU against the reference's masks
    error: str = ""

    @property
    def p50(self) -> float:
        return float(np.median(self.ms)) if self.ms else math.nan

    @property
    def cpu_p50(self) -> float:
        return float(np.median(self.cpu_ms)) if self.cpu_ms else math.nan

    @property
    def p95(self) -> float:
        return float(np.percentile(self.ms, 95)) if self.ms else math.nan

    def to_json(self) -> dict[str, Any]:
        return {**self.setting.to_json(), "p50_ms": round(self.p50, 2), "p95_ms": round(self.p95, 2),
                "cpu_p50_ms": round(self.cpu_p50, 2),
                "iou": {k: round(v, 4) for k, v in self.iou.items()},
                "agree": {k: round(v, 4) for k, v in self.agree.items()}, "error": self.error}


def _build(files: ModelFiles, s: RVMSetting, frame: tuple[int, int], threads: int) -> Runner:
    w, h = model_shape(frame, s.width)
    return build_runner(files, s, w, h, threads, lambda: list(moving_frames((w, h), 24)))


def time_settings(files: ModelFiles, rows: list[Measured], frames: np.ndarray, threads: int = 2,
                  warmup: int = 5) -> None:
    """Per-frame wall time (resize + model) of every row, the rows taking turns frame by frame."""
    live: list[tuple[Measured, Runner, list[np.ndarray], tuple[int, int]]] = []
    for m in rows:
        try:
            r = _build(files, m.setting, BENCH_FRAME, threads)
        except (EngineUnavailable, RuntimeError, ValueError) as exc:
            m.error = str(exc)
            log.warning("tune: %s cannot run: %s", m.setting.label, exc)
            continue
        live.append((m, r, r.zero_states(), model_shape(BENCH_FRAME, m.setting.width)))
    for i, f in enumerate(frames):
        for k, (m, r, rec, shape) in enumerate(live):
            if m.error:
                continue
            c0, t0 = time.process_time(), time.perf_counter()
            try:
                _, rec = r(to_src(f, *shape), rec)
            except Exception as exc:  # noqa: BLE001 - a runtime that fails on this graph: noted, not fatal
                m.error, m.ms, m.cpu_ms = f"fails to run: {exc}"[:200], [], []
                log.warning("tune: %s %s", m.setting.label, m.error)
                continue
            dt, dc = (time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3
            live[k] = (m, r, rec, shape)
            if i >= warmup:
                m.ms.append(dt)
                m.cpu_ms.append(dc)


def load_clips(clip_names: list[str], static: int = 5, moving: int = 40) -> list[Any]:
    from ..evaluation.clips import get_clip
    clips = []
    for name in clip_names:
        try:
            clips.append(get_clip(name, static=static, moving=moving))
        except (FileNotFoundError, OSError) as exc:
            log.warning("tune: clip %s unavailable (%s); skipped", name, exc)
    return clips


def score_setting(files: ModelFiles, m: Measured, clips: list[Any], reference: Measured | None,
                  threads: int = 2, ref_masks: dict[str, np.ndarray] | None = None) -> None:
    """Moving-part IoU of one setting on every clip, and its agreement with the reference's masks."""
    from ..engines.rvm import RVMEngine
    from ..evaluation.evaluate import offline_alphas
    from ..evaluation.metrics import decide, mean_iou
    s = m.setting
    # through the engine and the pipeline, as the server runs it (closer view of small people, input
    # size, still-picture hold), on the frames a client would send: not the bare model on whole frames
    engine = RVMEngine(model_dir=str(files.path.parent), runtime=s.runtime, precision=s.precision, width=s.width,
                       downsample=s.downsample, threads=threads, tuned=False)
    try:
        scored = [(clip, offline_alphas(engine, clip)) for clip in clips]
    finally:
        engine.close()
    for clip, masks in scored:
        m.iou[clip.name] = mean_iou(masks, clip.truth, clip.moving_frames)
        if ref_masks is not None:
            ref = ref_masks.setdefault(clip.name, masks)
            m.agree[clip.name] = mean_iou(masks, decide(ref).astype(np.uint8), clip.moving_frames)
        log.info("tune: %-20s %-36s IoU %.3f (reference agreement %.3f)", clip.name, m.setting.label,
                 m.iou[clip.name], m.agree.get(clip.name, math.nan))


def qualifies(m: Measured, reference: Measured, tolerance: float) -> bool:
    return not m.error and bool(m.iou) and all(
        m.iou.get(c, -1.0) >= v - tolerance for c, v in reference.iou.items())


def choose(rows: list[Measured], reference: Measured, tolerance: float = 0.01, by: str = "wall") -> Measured:
    """The fastest qualifying row, by wall-clock median, or by CPU time (``by="cpu"``) when other
    processes held the cores while timing (then waiting for a core, not the model, made up the wall time)."""
    ok = [m for m in rows if qualifies(m, reference, tolerance) and m.ms]
    if not ok:
        return reference
    return min(ok, key=lambda m: m.cpu_p50 if by == "cpu" else m.p50)


def tune(settings: list[RVMSetting] | None = None, clip_names: list[str] | None = None, frames: int = 60,
         threads: int = 2, tolerance: float = 0.01, model_dir: str | None = None,
         save: bool = True, full: bool = False, clip_moving: int = 40) -> tuple[Measured, list[Measured], Measured]:
    """Measure, choose, save; returns (choice, all rows, reference)."""
    from .. import rvm_weights
    from ..evaluation.clips import CLIPS, get_clip
    files = ModelFiles(rvm_weights.locate(model_dir))
    settings = settings if settings is not None else candidates()
    rows = [Measured(s) for s in settings]
    reference = next((m for m in rows if m.setting == REFERENCE), None)
    if reference is None:
        reference = Measured(REFERENCE)
        rows.insert(0, reference)
    bench = get_clip("sway", static=2, moving=frames, size=BENCH_FRAME).frames
    busy = busy_machine()
    time_settings(files, rows, bench, threads)
    busy = busy or busy_machine()
    by = "cpu" if busy else "wall"
    if busy:
        log.warning("tune: other processes kept the cores busy while timing (load %.1f on %d cores): "
                    "ranking by CPU time per frame, not wall time", os.getloadavg()[0], os.cpu_count() or 1)

    def cost(m: Measured) -> float:
        return m.cpu_p50 if by == "cpu" else m.p50
    clips = load_clips(clip_names or list(CLIPS), moving=clip_moving)
    ref_masks: dict[str, np.ndarray] = {}
    score_setting(files, reference, clips, reference, threads, ref_masks)
    # cheapest first: without ``full`` the first one that qualifies ends the search
    for m in sorted((r for r in rows if r is not reference and not r.error and cost(r) < cost(reference)),
                    key=cost):
        score_setting(files, m, clips, reference, threads, ref_masks)
        if qualifies(m, reference, tolerance) and not full:
            break
    best = choose(rows, reference, tolerance, by)
    if save:
        path = save_choice(best.setting, {"tolerance": tolerance, "threads": threads, "ranked_by": by,
                                          "rows": [m.to_json() for m in rows]})
        log.info("tune: chose %s (%.1f ms p50); saved in %s", best.setting.label, best.p50, path)
    return best, rows, reference


def table(rows: list[Measured], reference: Measured, best: Measured, tolerance: float) -> str:
    clips = list(reference.iou)
    head = ["runtime", "precision", "width", "ds", "p50 ms", "p95 ms", "CPU ms p50", *clips, "min agree", "ok"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in rows:
        s = m.setting
        cells = [s.runtime, s.precision + (" (chosen)" if m is best else ""), str(s.width), f"{s.downsample:g}",
                 f"{m.p50:.1f}", f"{m.p95:.1f}", f"{m.cpu_p50:.1f}",
                 *[f"{m.iou[c]:.3f}" if c in m.iou else "-" for c in clips],
                 f"{min(m.agree.values()):.3f}" if m.agree else "-",
                 "error: " + m.error[:40] if m.error else "not scored" if not m.iou
                 else ("yes" if qualifies(m, reference, tolerance) else "no")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def environment_line(threads: int) -> str:
    return (f"CPU flags: {flags_summary()}; {os.cpu_count()} cores; {threads} threads; "
            + ", ".join(f"{k} {v}" for k, v in runtime_versions().items())
            + ("" if "avx512f" in cpu_flags() else " (no AVX-512)"))
