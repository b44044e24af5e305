"""What a webcam does to a clip's frames: dim light, sensor noise, JPEG compression (``m2fp eval --camera``).

The rendered clips are clean: every pixel of a still opening is the same from frame to frame, and a
person's colours are the photo's.  A webcam's frames are darker, noisy and compressed, and the models
see that (docs/evaluation.md, "Camera conditions").  The truth does not change.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import BadInput
from .clip import Clip


@dataclass(frozen=True)
class Camera:
    dim: float = 1.0  # every pixel's value times this (0.2-1.0)
    noise: float = 0.0  # standard deviation of the Gaussian noise added, grey levels (0-50), new every frame
    jpeg: int = 100  # JPEG quality each frame is compressed at (10-100; 100 = not compressed)

    LIMITS = {"dim": (0.2, 1.0), "noise": (0.0, 50.0), "jpeg": (10, 100)}

    @classmethod
    def parse(cls, text: str) -> "Camera":
        """``dim=0.8,noise=5,jpeg=70`` (any of them, in any order)."""
        values: dict[str, float | int] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            if not sep or key not in cls.LIMITS:
                raise BadInput(f"--camera: {part!r}; use dim=F, noise=F, jpeg=N, separated by commas")
            lo, hi = cls.LIMITS[key]
            try:
                number = int(value) if key == "jpeg" else float(value)
            except ValueError:
                kind = "a whole number" if key == "jpeg" else "a number"
                raise BadInput(f"--camera: {key} must be {kind}, got {value!r}") from None
            if not lo <= number <= hi:
                raise BadInput(f"--camera: {key} must be within {lo}-{hi}, got {number}")
            values[key] = number
        return cls(**values)  # type: ignore[arg-type]

    def label(self) -> str:
        parts = [f"dim{self.dim:g}" if self.dim != 1.0 else "", f"noise{self.noise:g}" if self.noise else "",
                 f"jpeg{self.jpeg}" if self.jpeg < 100 else ""]
        return "+".join(p for p in parts if p)

    def apply(self, clip: Clip) -> Clip:
        """The clip as this camera would give it (the same noise for the same frame index every run)."""
        if not self.label():
            return clip
        frames = np.empty_like(clip.frames)
        for i, frame in enumerate(clip.frames):
            f = frame.astype(np.float32) * self.dim
            if self.noise:
                f += np.random.default_rng(i).normal(0.0, self.noise, f.shape).astype(np.float32)
            out = np.clip(f + 0.5, 0, 255).astype(np.uint8)
            if self.jpeg < 100:
                ok, data = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg])
                assert ok, "OpenCV could not encode a JPEG"
                out = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
            frames[i] = out
        return dataclasses.replace(clip, name=f"{clip.name}@{self.label()}", frames=frames)
