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
from m2fp_protocol import DEFAULT_SYNC_FRAMES, PersonBox, StreamConfig, fit_inside

from ..engines.base import Engine
from ..errors import BadInput
from ..pipeline import Pipeline, PipelineResult
from ..postprocess.mask_motion import people_boxes
from ..streams import StreamState
from .aging import carried, iou_by_age, moved_ahead
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
        """``defaults`` (the server's and the filter's default settings), ``hold``, ``motion``, ``syncN``,
        ``syncN+motion``, ``motion+predictP`` ...; without ``predictP`` the replayed client asks for the
        display lag its delay does not cover (``m2fp_protocol.predict_frames``)."""
        if text.lower() == "defaults":
            return cls("defaults", StreamConfig().motion, DEFAULT_SYNC_FRAMES, None)
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
                    raise BadInput(f"bad variant part {tok!r}: predictP needs a number") from None
            else:
                raise BadInput(f"bad variant {text!r}: use defaults, hold, motion, syncN, syncN+motion, "
                               "motion+predictP")
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


@dataclass
class OfflineRun:
    alpha: np.ndarray  # (T, H, W) uint8 at the clip's size
    moved_ahead: dict[int, float]  # age -> IoU of masks moved that many frames ahead (see aging.py)
    #: age -> IoU of masks shown that many frames late, (held, moved on by their motion)
    carried: dict[int, tuple[float, float]]
    infer_ms: list[float]  # the engine's time per frame in the pipeline


def offline_run(engine: Engine, clip: Clip, config: StreamConfig | None = None, aging: bool = True) -> OfflineRun:
    """Every frame through the pipeline in order (the engine's synchronous model if it has one).

    ``aging``: also measure the masks moved ahead by the motion compensation (``aging.moved_ahead``).
    """
    pipe = Pipeline(engine, blocking=True)
    stream = StreamState(b"offline")
    cfg = StreamConfig.from_json({"motion": False}, base=config or StreamConfig())
    stream.apply(cfg, engine.classes)
    W, H = clip.size
    sw, sh = send_size(clip, engine)
    out = np.empty((len(clip), H, W), np.uint8)
    smalls, small_alphas, infer_ms, motions = [], [], [], []
    people: list[list[PersonBox]] = []  # as a PEOPLE message gives them
    for i, f in enumerate(clip.frames):
        small = cv2.resize(f, (sw, sh), interpolation=cv2.INTER_AREA)
        r = pipe.process(small, stream, (sw, sh), want_people=aging, want_turns=aging)
        infer_ms.append(r.infer_ms)
        motions.append(r.motion)
        people.append(people_boxes(r.people, sw, sh))
        if aging:
            smalls.append(small)
            small_alphas.append(r.alpha.astype(np.float32) / 255.0)
        out[i] = cv2.resize(r.alpha, (W, H), interpolation=cv2.INTER_LINEAR)
    stream.close()
    aged = moved_ahead(small_alphas, smalls, clip.truth, clip.moving_frames) if aging else {}
    late = carried(out, motions, clip.truth, clip.moving_frames, people=people, size=(sw, sh)) if aging else {}
    return OfflineRun(out, aged, late, infer_ms)


def offline_alphas(engine: Engine, clip: Clip, config: StreamConfig | None = None) -> np.ndarray:
    return offline_run(engine, clip, config, aging=False).alpha


def live_config(variant: Variant, config: dict[str, Any] | None = None) -> dict[str, Any]:
    cfg = {**(config or {}), "motion": variant.motion}
    if variant.predict is not None:
        cfg["predict_frames"] = variant.predict
    return cfg


def live_run(engine: Engine, clip: Clip, variant: Variant, config: dict[str, Any] | None = None,
             carry: bool = True) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Play ``clip`` through a fresh in-process server on ``engine``: (alphas, mask ages, stats).
    ``carry=False``: late masks are shown where they are (``replay``)."""
    from ..replay import replay
    from ..server import InferenceServer, ServerSettings
    source_ages: list[int] = []  # how old each engine result was (slow engines answer late)
    infer_ms: list[float] = []
    post_ms: list[float] = []

    def observe(r: PipelineResult) -> None:
        source_ages.append(r.source_age)
        infer_ms.append(r.infer_ms)
        post_ms.append(r.post_ms)
    pipeline = Pipeline(engine, observer=observe)
    srv = InferenceServer(engine, ServerSettings(address="tcp://127.0.0.1:*"), pipeline=pipeline)
    address = srv.start()
    runs0, t0 = engine.slow_runs, time.perf_counter()  # asynchronous engines: how often the slow model finished
    try:
        res = replay(clip.frames, address, clip.fps, sync_frames=variant.sync,
                     config=live_config(variant, config), send_size=send_size(clip, engine), carry=carry)
    finally:
        srv.stop()
        srv.join()
    stats = {"sent": res.sent, "masks": res.masks, "dropped": res.dropped, "errors": res.errors,
             "late_ticks": res.late_ticks,
             "ms_per_frame": float(np.median(infer_ms)) if infer_ms else None,
             "post_ms_per_frame": float(np.median(post_ms)) if post_ms else None,
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
            off = offline_run(eng, clip, cfg)
        finally:
            eng.close()
        rows.append(Row(clip.name, engine_name, "offline",
                        score(off.alpha, clip.truth, clip.static_frames, clip.moving_frames),
                        {"ms_per_frame": float(np.median(off.infer_ms)), "moved_ahead": off.moved_ahead,
                         "carried": off.carried}))
    for v in variants:
        eng = engine_factory(clip)
        try:
            a, age, stats = live_run(eng, clip, v, config)
        finally:
            eng.close()
        stats["iou_by_age"] = {k: v for k, (v, n) in iou_by_age(a, clip.truth, age, clip.moving_frames).items() if n}
        # moving frames not shown their own mask (a late one, or none yet)
        stats["late_moving"] = int(sum(age[k] != 0 for k in clip.moving_frames))
        rows.append(Row(clip.name, engine_name, v.name,
                        score(a, clip.truth, clip.static_frames, clip.moving_frames, age), stats))
        log.info("%s / %s / %s: moving IoU %.3f", clip.name, engine_name, v.name, rows[-1].scores.iou_moving)
    return rows


def _fmt(v: Any, spec: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, spec)


def table(rows: list[Row]) -> str:
    """Markdown table (paste-able into docs/evaluation.md)."""
    head = ("| clip | engine | run | IoU static | IoU moving | flicker % | boundary px | mask age med/max "
            "(moving frames shown late) | result age | dropped |\n|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        s = r.scores
        age = "0" if r.variant == "offline" else \
            f"{_fmt(s.age_median, '.0f')}/{_fmt(s.age_max, '.0f')} ({r.extra.get('late_moving', '-')})"
        lines.append(f"| {r.clip} | {r.engine} | {r.variant} | {_fmt(s.iou_static, '.3f')} | "
                     f"{_fmt(s.iou_moving, '.3f')} | {_fmt(s.flicker_static, '.4f')} | "
                     f"{_fmt(s.boundary_moving, '.1f')} | {age} | {_fmt(r.extra.get('result_age_median'), '.1f')} | "
                     f"{r.extra.get('dropped', '-')} |")
    return "\n".join(lines)


def _ages(d: dict[Any, float] | None) -> str:
    if not d:
        return "-"
    return " / ".join(_fmt(d.get(a, d.get(str(a))), ".3f") for a in (0, 1, 2, 3))


def _late(d: dict[Any, Any] | None) -> str:
    if not d:
        return "-"
    pairs = [d.get(a, d.get(str(a))) for a in (1, 2, 3)]
    return " / ".join("-" if p is None else f"{_fmt(p[0], '.3f')} → {_fmt(p[1], '.3f')}" for p in pairs)


def summary(rows: list[Row]) -> str:
    """One line per clip and engine: the figures the issue asks for side by side (docs/evaluation.md)."""
    head = (f"| clip | engine | offline IoU | live, defaults (sync {DEFAULT_SYNC_FRAMES}) | live, no sync | "
            "live, sync 1 | "
            "offline, moved ahead 0/1/2/3 frames | offline, shown 1/2/3 frames late: held → carried | "
            "live (defaults) by mask age 0/1/2/3 | flicker % (defaults) | engine ms/frame | post ms/frame |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    keys = list(dict.fromkeys((r.clip, r.engine) for r in rows))
    for clip, engine in keys:
        by = {r.variant: r for r in rows if (r.clip, r.engine) == (clip, engine)}
        off, dflt = by.get("offline"), by.get("defaults")
        nosync = by.get("motion")  # sync 0, the whole display lag predicted
        sync = by.get("sync1+motion")  # one frame of delay, one predicted
        first = dflt or off
        ms = first.extra.get("ms_per_frame") if first is not None else None
        post = dflt.extra.get("post_ms_per_frame") if dflt else None
        lines.append(
            f"| {clip} | {engine} | {_fmt(off.scores.iou_moving if off else None, '.3f')} | "
            f"{_fmt(dflt.scores.iou_moving if dflt else None, '.3f')} | "
            f"{_fmt(nosync.scores.iou_moving if nosync else None, '.3f')} | "
            f"{_fmt(sync.scores.iou_moving if sync else None, '.3f')} | "
            f"{_ages(off.extra.get('moved_ahead') if off else None)} | "
            f"{_late(off.extra.get('carried') if off else None)} | "
            f"{_ages(dflt.extra.get('iou_by_age') if dflt else None)} | "
            f"{_fmt(dflt.scores.flicker_static if dflt else None, '.4f')} | {_fmt(ms, '.1f')} | {_fmt(post, '.1f')} |")
    return "\n".join(lines)
