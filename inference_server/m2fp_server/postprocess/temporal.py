"""Temporal smoothing that removes flicker without trailing behind motion.

A plain EMA of the alpha lags a moving person (the old position fades out over
several frames).  Here the past only counts where the picture itself did not
change since the last frame:

* where the frame changed (the person or the camera moved), the newest result
  is taken as is, so nothing trails;
* where it did not, the alpha is an EMA, and changes smaller than ``deadband``
  are not passed on at all.  Sensor noise makes a model's boundary pixels wobble
  around the threshold; the EMA halves the wobble and the deadband holds what is
  left, so a still person's outline does not shimmer.  A real change (a hand
  raised slowly) is larger than the deadband and goes through in one frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class TemporalSmoother:
    weight: float = 0.5  # share of the past in static areas (the stream's ``smoothing``)
    change_threshold: float = 10.0  # grey-level difference (0..255, after a 3x3 blur) that counts as motion
    deadband: float = 0.08  # alpha changes below this are held in static areas
    _prev_alpha: np.ndarray | None = None
    _prev_gray: np.ndarray | None = None

    def reset(self) -> None:
        self._prev_alpha = None
        self._prev_gray = None

    def __call__(self, alpha: np.ndarray, rgb_small: np.ndarray) -> np.ndarray:
        """Smooth ``alpha`` (h, w float32) given the frame at the same size (h, w, 3 uint8)."""
        gray = cv2.GaussianBlur(cv2.cvtColor(rgb_small, cv2.COLOR_RGB2GRAY).astype(np.float32), (3, 3), 0)
        prev_a, prev_g = self._prev_alpha, self._prev_gray
        self._prev_gray = gray
        if self.weight <= 0 or prev_a is None or prev_g is None or prev_a.shape != alpha.shape:
            self._prev_alpha = alpha
            return alpha
        moved = (np.abs(gray - prev_g) > self.change_threshold).astype(np.uint8)
        moved = cv2.dilate(moved, np.ones((5, 5), np.uint8)).astype(bool)
        ema = self.weight * prev_a + (1.0 - self.weight) * alpha
        held = np.abs(ema - prev_a) < self.deadband
        out = np.where(moved, alpha, np.where(held, prev_a, ema)).astype(np.float32)
        self._prev_alpha = out
        return out
