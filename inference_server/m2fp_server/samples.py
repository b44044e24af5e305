"""The shipped public-domain portraits (see data/README.md)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .errors import MissingFile

DATA_DIR = Path(__file__).resolve().parent / "data"
PORTRAITS = {"astronaut": DATA_DIR / "astronaut.png", "grace_hopper": DATA_DIR / "grace_hopper.jpg"}


def portrait(name: str = "astronaut") -> np.ndarray:
    """RGB uint8."""
    bgr = cv2.imread(str(PORTRAITS[name]), cv2.IMREAD_COLOR)
    if bgr is None:
        raise MissingFile(f"sample {PORTRAITS[name]} is missing; reinstall m2fp-obs")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def frame_of_size(width: int, height: int, name: str = "astronaut") -> np.ndarray:
    """A portrait letterboxed into a width x height frame (a webcam-like test frame)."""
    img = portrait(name)
    s = min(width / img.shape[1], height / img.shape[0])
    w, h = max(1, int(img.shape[1] * s)), max(1, int(img.shape[0] * s))
    out = np.full((height, width, 3), 90, np.uint8)
    x, y = (width - w) // 2, height - h
    out[y:y + h, x:x + w] = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    return out


def moving_frames(size: tuple[int, int], count: int, name: str = "astronaut") -> np.ndarray:
    """``count`` frames of a portrait swaying and leaning across a ``size`` frame: a short camera-like video
    for timing an engine or calibrating a quantized model, where no ground truth is needed."""
    w, h = size
    base = frame_of_size(w, h, name)
    out = np.empty((count, h, w, 3), np.uint8)
    for k in range(count):
        phase = 2.0 * np.pi * k / max(count, 1)
        m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), 4.0 * np.sin(phase), 1.0 + 0.05 * np.sin(2 * phase))
        m[0, 2] += 0.08 * w * np.sin(phase)
        out[k] = cv2.warpAffine(base, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    return out
