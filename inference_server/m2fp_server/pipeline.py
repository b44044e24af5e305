"""The one place the per-frame stages are ordered.

    RGB frame → engine.infer → class selection → temporal smoothing
              → resize to the requested mask size → (threshold) → (labels)
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from .engines.base import Engine
from .postprocess.classes import label_map, select_alpha
from .postprocess.resize import resize_alpha, resize_labels, threshold_alpha
from .streams import StreamState


@dataclass
class PipelineResult:
    alpha: np.ndarray  # (H, W) uint8 at the requested size
    labels: np.ndarray | None  # (H, W) uint8 class ids, when asked for
    infer_ms: float
    post_ms: float


class Pipeline:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def process(
        self,
        rgb: np.ndarray,
        stream: StreamState,
        mask_size: tuple[int, int] | None = None,
        want_labels: bool = False,
    ) -> PipelineResult:
        t0 = time.perf_counter()
        out = self.engine.infer(rgb, stream.key)
        t1 = time.perf_counter()
        probs = out.probs
        h, w = probs.shape[1:]
        alpha = select_alpha(probs, stream.keep_ids)
        cfg = stream.config
        if cfg.smoothing > 0:
            small = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
            alpha = stream.smoother(alpha, small)
        size = mask_size or (rgb.shape[1], rgb.shape[0])
        alpha8 = resize_alpha(alpha, size)
        if not cfg.soft:  # cut after resizing so the edge stays smooth at the output size
            alpha8 = threshold_alpha(alpha8, cfg.threshold)
        labels = resize_labels(label_map(probs), size) if want_labels else None
        t2 = time.perf_counter()
        stream.frames += 1
        return PipelineResult(alpha8, labels, (t1 - t0) * 1e3, (t2 - t1) * 1e3)
