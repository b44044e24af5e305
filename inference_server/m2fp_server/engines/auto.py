"""``--engine auto``: the best engine that keeps up with the stream on this machine.

Candidates are tried best first (``AUTO_CANDIDATES``).  Each one that can be
built here is timed through the real per-frame pipeline (engine + post-processing,
its own worker threads running as they would live, the mask moved ahead by the
display lag the OBS filter asks for, as it is live) on a short 640x360 clip; the
first whose median fits the frame interval (with ``HEADROOM`` left for decoding,
transport and the other streams; more, ``HEADROOM_OVER_SHIPPED``, for an engine
preferred over the shipped ones) is kept.  Figures are cached on disk per CPU,
package version and engine setting, so a restart does not measure again; an
engine that could not be built is never cached (its weights may arrive later).
If none keeps up, the fastest one measured is used and a warning says so.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .base import Engine, EngineUnavailable
from ..cpu import busy_machine

log = logging.getLogger(__name__)

#: (engine, options), best first: M2FP's parts over RVM, RVM alone, parts over the embedded models, ...
AUTO_CANDIDATES: list[tuple[str, dict[str, Any]]] = [
    ("hybrid", {"fast": "rvm"}),
    ("rvm", {}),
    ("hybrid", {"fast": "embedded"}),
    ("m2fp", {}),
    ("embedded", {}),
    ("selfie", {"variant": "pair"}),  # both selfie models: about as costly as embedded's bust mode
    ("selfie", {}),  # the landscape model alone: the cheapest there is
]
#: share of the frame interval the pipeline may take (the rest: decoding, transport, other streams)
HEADROOM = 0.75
#: the same for an engine preferred over the shipped ones: its masks are only better if they come back
#: in time.  One that misses the interval is shown a frame later than predicted, behind a moving person;
#: in the live footage runs ``rvm`` at about one interval then lost to ``embedded`` (docs/engines.md)
HEADROOM_OVER_SHIPPED = 0.6
#: the shipped engines: between them the plain budget stands, since falling back from ``embedded`` to
#: ``selfie`` for speed loses small people altogether
SHIPPED = frozenset({"embedded", "selfie"})


def headroom(label_or_name: str) -> float:
    """The share of the frame interval a candidate (``label`` or engine name) may take."""
    return HEADROOM if label_or_name.split("(")[0] in SHIPPED else HEADROOM_OVER_SHIPPED
DEFAULT_FPS = 30.0
BENCH_SIZE = (640, 360)
BENCH_FRAMES = 16
WARMUP_FRAMES = 4
CACHE_DAYS = 14
#: what the figures measure; a change here measures again
BENCH_KIND = "pipeline+default-sync"


def cache_file() -> Path:
    """``$M2FP_AUTO_BENCH``, else ``auto-bench.json`` in the project's cache (``$M2FP_CACHE_DIR``)."""
    if os.environ.get("M2FP_AUTO_BENCH"):
        return Path(os.environ["M2FP_AUTO_BENCH"])
    root = Path(os.environ.get("M2FP_CACHE_DIR") or Path.home() / ".cache" / "m2fp-obs")
    return root / "auto-bench.json"


def label(name: str, options: dict[str, Any]) -> str:
    return name + ("(" + ",".join(f"{k}={v}" for k, v in sorted(options.items())) + ")" if options else "")


@dataclass
class Timing:
    label: str
    p50_ms: float
    p95_ms: float
    frames: int
    cached: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def keeps_up(self, fps: float, headroom: float = HEADROOM) -> bool:
        return self.p50_ms <= headroom * 1000.0 / fps

    def describe(self) -> str:
        cached = " (cached)" if self.cached else ""
        return f"{self.label}: {self.p50_ms:.1f} ms p50, {self.p95_ms:.1f} ms p95{cached}"


def _fingerprint(engine: Engine) -> str:
    """What the figure depends on: CPU, versions, and the engine's own description of its setting."""
    from .. import __version__
    from .rvm import flags_summary
    info = json.dumps(engine.info(), sort_keys=True, default=str)
    text = "|".join([flags_summary(), str(os.cpu_count()), __version__, info, BENCH_KIND])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _load_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_cache(path: Path, data: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(path)
    except OSError as exc:  # a read-only home must not stop the server
        log.warning("auto: cannot write %s (%s)", path, exc)


def bench_frames(size: tuple[int, int] = BENCH_SIZE, count: int = BENCH_FRAMES + WARMUP_FRAMES) -> np.ndarray:
    """A short moving clip (a shipped portrait swaying), as a camera would send it."""
    from ..samples import moving_frames
    return moving_frames(size, count)


def time_engine(engine: Engine, frames: np.ndarray, warmup: int = WARMUP_FRAMES) -> tuple[float, float, int]:
    """(p50 ms, p95 ms, frames timed) of ``Pipeline.process`` on one live stream, frame after frame."""
    from m2fp_protocol import DEFAULT_SYNC_FRAMES, StreamConfig, fit_inside, predict_frames
    from ..pipeline import Pipeline
    from ..streams import StreamState
    pipe = Pipeline(engine)
    stream = StreamState(b"auto-bench")
    # live, the OBS filter asks for the display lag its frame sync leaves to be predicted (none with
    # the default sync): timed with the filter's defaults, as the stream will run
    stream.apply(StreamConfig(predict_frames=predict_frames(DEFAULT_SYNC_FRAMES)), engine.classes)
    h, w = frames.shape[1:3]
    sw, sh = fit_inside((w, h), engine.preferred_input)
    import cv2
    small = [cv2.resize(f, (sw, sh), interpolation=cv2.INTER_AREA) for f in frames]
    ms = []
    try:
        for i, f in enumerate(small):
            t0 = time.perf_counter()
            pipe.process(f, stream, (w, h))
            if i >= warmup:
                ms.append((time.perf_counter() - t0) * 1e3)
    finally:
        stream.close()
    return float(np.median(ms)), float(np.percentile(ms, 95)), len(ms)


@dataclass
class AutoReport:
    """Why ``auto`` chose what it chose (logged; tests read it)."""

    chosen: Timing
    fps: float
    budget_ms: float
    notes: list[str]
    keeps_up: bool


def choose(options: dict[str, Any],
           candidates: list[tuple[str, dict[str, Any]]] | None = None) -> tuple[Engine, AutoReport]:
    """Build the best engine that keeps up; ``options`` go to every candidate.

    Options of its own: ``auto_fps`` (the stream's rate, default 30), ``auto_frames``
    (frames timed per engine), ``auto_refresh`` (measure again, ignoring the cache).
    """
    from .names import engine_class
    opts = dict(options)
    fps = float(opts.pop("auto_fps", DEFAULT_FPS))
    refresh = bool(opts.pop("auto_refresh", False))
    count = int(opts.pop("auto_frames", BENCH_FRAMES))
    if fps <= 0:
        raise EngineUnavailable(f"auto_fps must be positive, not {fps}")
    path = cache_file()
    cache = {} if refresh else _load_cache(path)
    now = time.time()
    cache = {k: v for k, v in cache.items() if now - float(v.get("when", 0)) < CACHE_DAYS * 86400}
    notes: list[str] = []
    unavailable: list[str] = []
    measured: list[tuple[Timing, Engine]] = []
    frames: np.ndarray | None = None
    chosen: tuple[Timing, Engine] | None = None
    for name, extra in candidates if candidates is not None else AUTO_CANDIDATES:
        lab = label(name, extra)
        budget = headroom(name) * 1000.0 / fps
        try:
            engine = engine_class(name)(**{**opts, **extra})
        except EngineUnavailable as exc:
            unavailable.append(lab)
            log.info("auto: skipping %s (%s)", lab, exc)
            continue
        key = f"{lab}|{_fingerprint(engine)}"
        hit = cache.get(key)
        if hit is not None:
            t = Timing(lab, float(hit["p50_ms"]), float(hit["p95_ms"]), int(hit["frames"]), cached=True)
        else:
            warmup = min(WARMUP_FRAMES, count)  # a short run (tests) warms up less
            frames = bench_frames(count=count + warmup) if frames is None else frames
            p50, p95, n = time_engine(engine, frames, warmup)
            t = Timing(lab, p50, p95, n)
            if busy_machine():  # a figure taken while other work held the cores: used now, measured again next time
                log.info("auto: the machine is busy (load %.1f); %s is not cached", os.getloadavg()[0], lab)
            else:
                cache[key] = {"p50_ms": p50, "p95_ms": p95, "frames": n, "when": now, "label": lab}
        if t.keeps_up(fps, headroom(name)):
            chosen = (t, engine)
            break
        notes.append(f"{t.describe()}: too slow")
        log.info("auto: %s is too slow for %g fps (budget %.1f ms)", t.describe(), fps, budget)
        measured.append((t, engine))
    _save_cache(path, cache)
    if unavailable:
        notes.append("unavailable here: " + ", ".join(unavailable))
    if chosen is None:
        if not measured:
            raise EngineUnavailable("no engine could be started: " + "; ".join(notes))
        chosen = min(measured, key=lambda te: te[0].p50_ms)
        log.warning("auto: no engine keeps up with %g fps here (budget %.1f ms p50); using the fastest, %s",
                    fps, headroom(chosen[0].label) * 1000.0 / fps, chosen[0].describe())
    for t, e in measured:
        if e is not chosen[1]:
            e.close()
    t, engine = chosen
    budget = headroom(t.label) * 1000.0 / fps
    log.info("auto: using %s (%s per 640x360 frame; budget %.1f ms p50 at %g fps)%s", t.label,
             t.describe().split(": ", 1)[1], budget, fps, ("; " + "; ".join(notes)) if notes else " (first choice)")
    return engine, AutoReport(t, fps, budget, notes, t.keeps_up(fps, headroom(t.label)))
