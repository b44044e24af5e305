"""Keep each pixel's last answer while its picture has not changed and the model did not change its mind.

Sensor noise alone makes a segmentation model waver around 0.5 along the outline (flicker on a still
picture), and a recurrent model (RVM) keeps refining its outline for a while on a still picture.  A
pixel is updated when its grey level moved more than ``grey`` from the value it had when last
updated (so slow creep still counts), or when the new probability differs by more than ``prob`` (a
real change of mind, e.g. a person found).  The pipeline's own smoothing comes on top.  Shared by the
engines that use it (embedded, rvm); each stream holds its own.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np


@dataclass
class StillHold:
    grey: float = 6.0  # grey-level change (0..255, blurred) that lets a pixel's answer change; 0 = off
    prob: float = 0.35  # probability change that gets through on an unchanged picture
    held: np.ndarray | None = field(default=None, repr=False)  # last answer per pixel
    held_grey: np.ndarray | None = field(default=None, repr=False)  # grey level when it was last updated

    def __call__(self, rgb: np.ndarray, prob: np.ndarray) -> np.ndarray:
        """``rgb``: the frame at ``prob``'s size (HxWx3 uint8); ``prob``: this frame's probability (HxW)."""
        if self.grey <= 0:
            return prob
        grey = cv2.GaussianBlur(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (3, 3), 0)
        prob = np.ascontiguousarray(prob, dtype=np.float32)
        if self.held is None or self.held.shape != prob.shape or self.held_grey is None:
            self.held, self.held_grey = prob.copy(), grey
            return prob
        # OpenCV's masked copies: the same arithmetic as numpy's where=, in a fraction of the time
        # (its stubs lack compare's array-with-scalar form)
        update = cv2.bitwise_or(
            cv2.compare(cv2.absdiff(grey, self.held_grey), self.grey, cv2.CMP_GT),  # type: ignore[call-overload]
            cv2.compare(cv2.absdiff(prob, self.held), self.prob, cv2.CMP_GT))  # type: ignore[call-overload]
        cv2.copyTo(prob, update, self.held)
        cv2.copyTo(grey, update, self.held_grey)
        return self.held.copy()
