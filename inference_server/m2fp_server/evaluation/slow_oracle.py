"""``slow-oracle``: an evaluation engine that knows the truth of a clip and answers late.

It measures the temporal machinery (async worker, motion compensation, sync,
transport) apart from any model's quality: with a perfect but slow model, every
IoU point lost is lost to lateness.

How it knows the truth, honestly: it is told which registered clip will be
played (``clip=<name>`` and the clip's build options), builds that clip itself,
and for every incoming frame looks up the clip frame that looks most alike
(mean absolute difference of 64x48 thumbnails).  It never sees a frame index, so
it is as blind to timing as a real model.  Static frames are identical and share
one truth, so any of them is a correct match.

It lives with the evaluation, not in the production registry: ``m2fp eval``
builds it for the clip it plays (:func:`engine_factory`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import cv2
import numpy as np

from m2fp_protocol import PERSON_CLASSES, ClassInfo

from ..engines.async_worker import AsyncEngine
from ..engines.base import Engine, EngineOutput, EngineUnavailable, StreamContext, person_output
from .clip import Clip

if TYPE_CHECKING:
    from ..postprocess.motion import FlowTracker

THUMB = (64, 48)


def _thumb(rgb: np.ndarray) -> np.ndarray:
    return cv2.resize(rgb, THUMB, interpolation=cv2.INTER_AREA).astype(np.int16)


class OracleEngine(Engine):
    """Instant: the truth of the clip frame that matches the input best (the offline reference)."""

    name = "oracle"
    description = "ground truth of a known evaluation clip, by frame matching (test engine)"

    def __init__(self, clip: Any, side: int = 256) -> None:
        if not isinstance(clip, Clip):
            raise EngineUnavailable("the oracle needs a clip")
        self.clip = clip
        self.side = side
        self._thumbs = np.stack([_thumb(f) for f in clip.frames])
        self.last_match = -1

    @property
    def classes(self) -> tuple[ClassInfo, ...]:
        return PERSON_CLASSES

    @property
    def preferred_input(self) -> tuple[int, int]:
        # frames are sent this large: the motion compensation then works at the size a real engine gets
        return (self.side, self.side)

    def match(self, rgb: np.ndarray) -> int:
        d = np.abs(self._thumbs - _thumb(rgb)[None]).mean(axis=(1, 2, 3))
        return int(np.argmin(d))

    def infer(self, rgb: np.ndarray, stream: StreamContext | None = None,
              motion: FlowTracker | None = None) -> EngineOutput:
        i = self.last_match = self.match(rgb)
        h, w = rgb.shape[:2]
        truth = cv2.resize(self.clip.truth[i].astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
        return person_output(truth, PERSON_CLASSES)


class SlowOracleEngine(AsyncEngine):
    name = "slow-oracle"
    description = "ground truth of an evaluation clip, late and at a low rate (test engine)"

    def __init__(self, clip: Any = None, delay_ms: float = 300.0, rate_hz: float = 3.0,
                 wait_first_s: float = 10.0, threads: int = 1, input: int = 256, **clip_options: Any) -> None:
        from .clips import CLIPS, get_clip
        if clip is None:
            raise EngineUnavailable(f"slow-oracle needs -E clip=NAME (one of: {', '.join(CLIPS)}) "
                                    "and the clip's options (size, static, moving, fps) as m2fp eval plays it")
        if not isinstance(clip, Clip):
            if "width" in clip_options or "height" in clip_options:
                clip_options["size"] = (int(clip_options.pop("width", 640)), int(clip_options.pop("height", 480)))
            try:
                clip = get_clip(str(clip), **clip_options)
            except (ValueError, TypeError) as exc:
                raise EngineUnavailable(f"slow-oracle: {exc}") from exc
        side = int(input) if str(input).strip().isdigit() else 0
        if not 16 <= side <= 4096:
            raise EngineUnavailable(f"slow-oracle: input={input!r}: choose a whole number 16..4096 "
                                    "(pixels, longer side)")
        self.oracle: OracleEngine = OracleEngine(clip, side)
        super().__init__(self.oracle, rate_hz=rate_hz, min_latency_s=delay_ms / 1e3,
                         wait_first_s=wait_first_s)
        self.name = "slow-oracle"  # type: ignore[misc]  # AsyncEngine took the oracle's name
        self.description = f"{self.description}: {delay_ms:.0f} ms at {rate_hz:g} Hz"  # type: ignore[misc]
        self.delay_ms, self.rate_hz = delay_ms, rate_hz

    def infer_now(self, rgb: np.ndarray, stream: StreamContext | None = None,
                  timeout_s: float | None = None) -> EngineOutput:
        """The truth at once: the delay and rate only emulate a slow model for the live path."""
        return self.oracle.infer(rgb)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "name": self.name, "clip": self.oracle.clip.name, "delay_ms": self.delay_ms}


_ORACLE_OPTIONS = ("delay_ms", "rate_hz", "wait_first_s", "input")


def engine_factory(name: str, options: dict[str, Any]) -> Callable[[Clip], Engine]:
    """clip -> a fresh engine for ``m2fp eval``: registered engines by name, plus ``slow-oracle``
    (built for the clip it will be shown), also as the hybrid's slow engine (``-E slow=slow-oracle``)."""
    from ..engines import create

    def build(clip: Clip) -> Engine:
        if name == "slow-oracle":
            return SlowOracleEngine(clip, **{k: v for k, v in options.items() if k in _ORACLE_OPTIONS})
        if options.get("slow") == "slow-oracle":  # e.g. the hybrid timed with a perfect slow model
            rest = {k: v for k, v in options.items() if k not in ("slow", "slow_options")}
            oracle_opts = {**{k: v for k, v in options.items() if k in _ORACLE_OPTIONS},
                           **dict(options.get("slow_options") or {})}
            return create(name, **rest, slow_engine=SlowOracleEngine(clip, **oracle_opts))
        return create(name, **options)
    return build
