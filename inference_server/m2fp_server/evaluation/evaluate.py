"""Offline and live scores of an engine on a ground-truth clip.

* **offline**: every frame goes through the pipeline in this process, one after
  the other, nothing dropped (for an asynchronous engine: its synchronous model).
* **live**: the clip is played at its real frame rate through a real server
  (ZeroMQ, own threads) by :func:`m2fp_server.replay.replay`, which models the
  OBS filter; the mask a viewer sees with each frame is scored against that
  frame's truth.

Both send the same downscaled frames and scale the masks back the same way, so
the only difference between them is time.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import cv2
import numpy as np

from m2fp_protocol import StreamConfig

from ..engines.base import Engine
from ..frames import fit_inside
from ..pipeline import Pipeline
from ..streams import StreamState
from .clips import Clip
from .metrics import Scores, score

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Variant:
    """How the live run is played: motion compensation on/off, frames of video delay (sync)."""

    name: str
    motion: bool = True
    sync: int = 0
    predict: float | None = None  # frames the server moves masks ahead; None = the replayed client's lag

    @classmethod
    def parse(cls, text: str) -> "Variant":
        """``hold``, ``motion``, ``syncN``, ``syncN+motion``, ``motion+predictP`` ..."""
        motion, sync, predict = False, 0, None
        for tok in text.lower().split("+"):
            if tok == "hold":
                motion = False
            elif tok == "motion":
                motion = True
            elif tok.startswith("sync") and tok[4:].isdigit():
                sync = int(tok[4:])
            elif tok.startswith("predict"):
                try:
                    predict = float(tok[7:])
                except ValueError:
                    raise ValueError(f"bad variant part {tok!r}: predictP needs a number") from None
            else:
                raise ValueError(f"bad variant {text!r}: use hold, motion, syncN, syncN+motion, motion+predictP")
        if predict is None and sync > 0:
            predict = 0.0  # a synced picture waits for its own mask: nothing to predict
        return cls(text.lower(), motion, sync, predict)


@dataclass
class Row:
    clip: str
    engine: str
    variant: str  # "offline" or a Variant name
    scores: Scores
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"clip": self.clip, "engine": self.engine, "variant": self.variant, **self.scores.to_json(),
                **self.extra}


def send_size(clip: Clip, engine: Engine) -> tuple[int, int]:
    return fit_inside(clip.size, engine.preferred_input)


def offline_alphas(engine: Engine, clip: Clip, config: StreamConfig | None = None) -> np.ndarray:
    """Every frame through the pipeline in order, each waiting for its own result (``infer_now``)."""
    pipe = Pipeline(engine, blocking=True)
    stream = StreamState(b"offline")
    cfg = StreamConfig.from_json({"motion": False}, base=config or StreamConfig())
    stream.apply(cfg, engine.classes)
    W, H = clip.size
    sw, sh = send_size(clip, engine)
    out = np.empty((len(clip), H, W), np.uint8)
    for i, f in enumerate(clip.frames):
        small = cv2.resize(f, (sw, sh), interpolation=cv2.INTER_AREA)
        r = pipe.process(small, stream, (sw, sh))
        out[i] = cv2.resize(r.alpha, (W, H), interpolation=cv2.INTER_LINEAR)
    stream.close()
    return out


def live_config(variant: Variant, config: dict[str, Any] | None = None) -> dict[str, Any]:
    cfg = {**(config or {}), "motion": variant.motion}
    if variant.predict is not None:
        cfg["predict_frames"] = variant.predict
    return cfg


def live_run(engine: Engine, clip: Clip, variant: Variant,
             config: dict[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Play ``clip`` through a fresh in-process server on ``engine``: (alphas, mask ages, stats)."""
    from ..replay import replay
    from ..server import InferenceServer, ServerSettings
    source_ages: list[int] = []  # how old each engine result was (slow engines answer late)
    pipeline = Pipeline(engine, observer=lambda r: source_ages.append(r.source_age))
    srv = InferenceServer(engine, ServerSettings(address="tcp://127.0.0.1:*"), pipeline=pipeline)
    address = srv.start()
    runs0, t0 = engine.slow_runs, time.perf_counter()  # asynchronous engines: how often the slow model finished
    try:
        res = replay(clip.frames, address, clip.fps, sync_frames=variant.sync,
                     config=live_config(variant, config), send_size=send_size(clip, engine))
    finally:
        srv.stop()
        srv.join()
    stats = {"sent": res.sent, "masks": res.masks, "dropped": res.dropped, "errors": res.errors,
             "late_ticks": res.late_ticks,
             "result_age_median": float(np.median(source_ages)) if source_ages else None,
             "slow_results_per_s": _rate(engine.slow_runs, runs0, time.perf_counter() - t0),
             "latency_p50_ms": float(np.nanmedian(res.latency_ms)) if np.isfinite(res.latency_ms).any() else None}
    return res.alpha, res.mask_age, stats


def _rate(now: int | None, before: int | None, seconds: float) -> float | None:
    return None if now is None or before is None else (now - before) / seconds


def evaluate(engine_factory: Callable[[Clip], Engine], engine_name: str, clip: Clip, variants: list[Variant],
             config: dict[str, Any] | None = None, offline: bool = True) -> list[Row]:
    """Offline row (optional) and one live row per variant, each on a freshly built engine."""
    rows = []
    cfg = StreamConfig.from_json(config or {})
    if offline:
        eng = engine_factory(clip)
        try:
            a = offline_alphas(eng, clip, cfg)
        finally:
            eng.close()
        rows.append(Row(clip.name, engine_name, "offline", score(a, clip.truth, clip.static_frames,
                                                                 clip.moving_frames)))
    for v in variants:
        eng = engine_factory(clip)
        try:
            a, age, stats = live_run(eng, clip, v, config)
        finally:
            eng.close()
        rows.append(Row(clip.name, engine_name, v.name,
                        score(a, clip.truth, clip.static_frames, clip.moving_frames, age), stats))
        log.info("%s / %s / %s: moving IoU %.3f", clip.name, engine_name, v.name, rows[-1].scores.iou_moving)
    return rows


def _fmt(v: Any, spec: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, spec)


def table(rows: list[Row]) -> str:
    """Markdown table (paste-able into the README)."""
    head = ("| clip | engine | run | IoU static | IoU moving | flicker % | boundary px | mask age med/max | "
            "result age | dropped |\n|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        s = r.scores
        age = "0" if r.variant == "offline" else f"{_fmt(s.age_median, '.0f')}/{_fmt(s.age_max, '.0f')}"
        lines.append(f"| {r.clip} | {r.engine} | {r.variant} | {_fmt(s.iou_static, '.3f')} | "
                     f"{_fmt(s.iou_moving, '.3f')} | {_fmt(s.flicker_static, '.4f')} | "
                     f"{_fmt(s.boundary_moving, '.1f')} | {age} | {_fmt(r.extra.get('result_age_median'), '.1f')} | "
                     f"{r.extra.get('dropped', '-')} |")
    return "\n".join(lines)
