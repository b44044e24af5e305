"""The one place the per-frame stages are ordered.

    RGB frame → flow to the previous frame (motion compensation on)
              → engine.infer (asynchronous engines: their newest result, warped onto this frame)
              → class selection → small-island removal (``min_island``) → temporal smoothing
              → moved ahead by the client's display lag (motion on, ``predict_frames``)
              → resize to the requested mask size (along the frame's edges when ``refine``)
              → (threshold) → (labels)
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from .engines.base import Engine
from .postprocess.classes import label_map, select_alpha
from .postprocess.islands import remove_islands
from .postprocess.mask_motion import PersonMove
from .postprocess.refine import EdgeRefiner
from .postprocess.resize import resize_alpha, resize_labels, threshold_alpha
from .streams import StreamState


@dataclass
class PipelineResult:
    alpha: np.ndarray  # (H, W) uint8 at the requested size
    labels: np.ndarray | None  # (H, W) uint8 class ids, when asked for
    infer_ms: float
    post_ms: float
    source_age: int = 0  # frames between this frame and the one the (slow part of the) result came from
    #: the people's motion per frame, fractions of the mask's width and height (``MaskMotion``; 0, 0: none)
    motion: tuple[float, float] = (0.0, 0.0)
    #: each person's box and motion (``MaskMotion.people``; fractions), when asked for and they move apart
    #: (or, with turns asked for too, when anyone moves)
    people: list[PersonMove] = field(default_factory=list)


#: the reply's way back and the client's upload of the mask, after the prediction is made
REPLY_S = 0.004
#: at most this many frames are added to a prediction for the server's own time
MAX_LATE_FRAMES = 4


def late_frames(spent_s: float, interval_s: float) -> int:
    """Whole frame intervals the client will have moved on, beyond the lag it asked to be predicted,
    by the time this result reaches it.

    The client's lag (``predict_frames``) assumes a mask back within one frame interval of sending.
    A frame that waited behind another stream's, or an engine slower than the frame rate, comes back
    later and is shown with a newer frame still; predicting only the nominal lag then leaves the
    mask behind the person by those frames (the live evaluation's masks 3+ frames old).
    """
    if interval_s <= 0:
        return 0
    return min(MAX_LATE_FRAMES, int((spent_s + REPLY_S) / interval_s))


class Pipeline:
    """Per-frame stages for one engine; all per-client state lives in ``StreamState``.

    With ``motion`` on, the mask is moved ``predict_frames`` frames ahead along the
    measured motion: the OBS filter shows a mask with a newer frame than the one it
    was computed from (one frame of readback, then the round trip), so it asks for 2.
    Clients that wait for each frame's mask (sync, files) keep the default 0.
    """

    def __init__(self, engine: Engine, blocking: bool = False,
                 observer: Callable[[PipelineResult], None] | None = None) -> None:
        """``blocking``: every frame waits for its own result (``infer_now``): the offline reference.
        ``observer`` sees every result (the evaluation records how old the engine's results were)."""
        self.engine = engine
        self.blocking = blocking
        self.observer = observer
        self.refiner = EdgeRefiner()

    def process(
        self,
        rgb: np.ndarray,
        stream: StreamState,
        mask_size: tuple[int, int] | None = None,
        want_labels: bool = False,
        received: float | None = None,
        want_people: bool = False,
        want_turns: bool = False,
    ) -> PipelineResult:
        """``received``: when the frame reached the server (``time.perf_counter``): a prediction then
        also covers the frame intervals this server took (see :func:`late_frames`)."""
        t0 = time.perf_counter()
        cfg = stream.config
        predict = cfg.predict_frames if cfg.motion else 0.0
        wants_motion = self.engine.wants_motion and not self.blocking
        if wants_motion or predict > 0:
            if not wants_motion:
                stream.motion.history = 2  # prediction needs only the last two flows
            stream.motion.push(rgb, flow=cfg.motion)
        state = stream.engine_state
        if state is None:
            state = stream.engine_state = self.engine.new_stream()
        if self.blocking:
            out = self.engine.infer_now(rgb, state)
        elif wants_motion:
            out = self.engine.infer(rgb, state, stream.motion)
        else:
            out = self.engine.infer(rgb, state)
        t1 = time.perf_counter()
        probs = out.probs
        h, w = probs.shape[1:]
        alpha = select_alpha(probs, stream.keep_ids)
        if cfg.min_island > 0:  # at the model's size: cheap, and before smoothing spreads a blob over frames
            alpha = remove_islands(alpha, cfg.min_island)
        size = mask_size or (rgb.shape[1], rgb.shape[0])
        if cfg.refine:  # along the frame's edges, at the output size; smoothed there (the guide is noisy too)
            alpha = self.refiner(alpha, rgb, size)
        if cfg.smoothing > 0:
            ah, aw = alpha.shape
            small = rgb if rgb.shape[:2] == (ah, aw) else cv2.resize(rgb, (aw, ah), interpolation=cv2.INTER_AREA)
            alpha = stream.smoother(alpha, small)
        motion = stream.mask_motion(alpha, stream.frame_step, out.people)
        people = stream.mask_motion.people(want_turns, stream.frame_interval()) if want_people else []
        if predict > 0:
            if received is not None:
                predict += late_frames(time.perf_counter() - received, stream.frame_interval())
            alpha = stream.motion.extrapolate(alpha, predict)
        alpha8 = resize_alpha(alpha, size)
        if not cfg.soft:  # cut after resizing so the edge stays smooth at the output size
            alpha8 = threshold_alpha(alpha8, cfg.threshold)
        labels = resize_labels(label_map(probs), size) if want_labels else None
        t2 = time.perf_counter()
        stream.frames += 1
        res = PipelineResult(alpha8, labels, (t1 - t0) * 1e3, (t2 - t1) * 1e3, out.age_frames, motion, people)
        if self.observer is not None:
            self.observer(res)
        return res
