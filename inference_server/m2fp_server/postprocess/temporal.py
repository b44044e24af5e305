"""Temporal smoothing that removes flicker without trailing behind motion.

A plain EMA of the alpha lags a moving person (the old position fades out over
several frames).  Here the EMA weight is cut to zero wherever the picture itself
changed since the last frame (the person moved there), so static areas are
smoothed and moving edges follow the newest result immediately.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class TemporalSmoother:
    weight: float = 0.5  # share of the past in static areas
    change_threshold: float = 12.0  # grey-level difference (0..255) that counts as motion
    _prev_alpha: np.ndarray | None = None
    _prev_gray: np.ndarray | None = None

    def reset(self) -> None:
        self._prev_alpha = None
        self._prev_gray = None

    def __call__(self, alpha: np.ndarray, rgb_small: np.ndarray) -> np.ndarray:
        """Smooth ``alpha`` (h, w float32) given the frame at the same size (h, w, 3 uint8)."""
        gray = cv2.cvtColor(rgb_small, cv2.COLOR_RGB2GRAY).astype(np.float32)
        gray = cv2.GaussianBlur(gray, (3, 3), 0)
        prev_a, prev_g = self._prev_alpha, self._prev_gray
        self._prev_gray = gray
        if self.weight <= 0 or prev_a is None or prev_g is None or prev_a.shape != alpha.shape:
            self._prev_alpha = alpha
            return alpha
        moved = np.abs(gray - prev_g) > self.change_threshold
        moved = cv2.dilate(moved.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        w = np.where(moved, 0.0, self.weight).astype(np.float32)
        out = w * prev_a + (1.0 - w) * alpha
        self._prev_alpha = out
        return out
