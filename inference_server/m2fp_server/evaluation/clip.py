"""The clip type, on its own so clip builders (``clips``, ``framings``) and the code that plays
clips (``evaluate``, the slow oracle) can all import it without importing each other."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Clip:
    name: str
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    truth: np.ndarray  # (T, H, W) uint8 0/1
    fps: float
    static_frames: range  # nothing moves: flicker is measured here
    moving_frames: range  # person and background move: lag is measured here
    description: str

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return int(self.frames.shape[2]), int(self.frames.shape[1])

    def __len__(self) -> int:
        return int(self.frames.shape[0])
