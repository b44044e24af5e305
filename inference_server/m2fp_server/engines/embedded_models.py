"""The shipped MediaPipe models behind one call each, and running them on a region.

``PoseSegmenter`` wraps ``pose_landmark_full.tflite`` (Apache-2.0): MediaPipe's
pose landmark model, which besides 33 landmarks outputs a 256x256 person mask
(logits) and a person-presence score.  MediaPipe feeds it a square region around
one person (found by its detector or tracked from the last frame); so do we.

``Roi`` is such a square region in frame pixels; ``run_on_roi`` crops it (with
replicated borders where it leaves the frame), runs a model and warps the
probability back to frame coordinates, zero outside the region.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from .selfie import MODELS_DIR, load_interpreter

POSE_FILE = "pose_landmark_full.tflite"


@dataclass
class PoseResult:
    mask: np.ndarray  # (256, 256) float32 person probability in the crop
    presence: float  # 0..1, the model's own "a person is here" score
    landmarks: np.ndarray  # (39, 5): x, y (crop pixels), z, visibility, presence (logits); 33 = hip centre,
    #                        34 = a point on the circle holding the whole body (MediaPipe's region anchors)


class PoseSegmenter:
    """Pose landmark model used for its person mask (one person per call)."""

    size = 256

    def __init__(self, path: Path | None = None, threads: int = 1, bf16: bool = False,
                 backend: str | None = None) -> None:
        self._it = load_interpreter(path or MODELS_DIR / POSE_FILE, threads, backend, bf16)
        self._in = self._it.get_input_details()[0]["index"]
        outs = {tuple(d["shape"]): d["index"] for d in self._it.get_output_details()}
        self._seg = outs[(1, 256, 256, 1)]
        self._flag = outs[(1, 1)]
        self._landmarks = outs[(1, 195)]
        self._buf = np.empty((1, self.size, self.size, 3), np.float32)

    def run(self, rgb256: np.ndarray) -> PoseResult:
        """``rgb256``: (256, 256, 3) uint8 crop."""
        np.multiply(rgb256, np.float32(1.0 / 255.0), out=self._buf[0], casting="unsafe")
        self._it.set_tensor(self._in, self._buf)
        self._it.invoke()
        logits = self._it.get_tensor(self._seg)[0, :, :, 0]
        mask = 1.0 / (1.0 + np.exp(-np.clip(logits, -30.0, 30.0)))
        return PoseResult(mask.astype(np.float32, copy=False), float(self._it.get_tensor(self._flag)[0, 0]),
                          self._it.get_tensor(self._landmarks)[0].reshape(39, 5))

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """Any-size RGB in (squashed to 256x256), mask out: the same call shape as TFLiteSegmenter."""
        small = cv2.resize(rgb, (self.size, self.size), interpolation=cv2.INTER_AREA)
        return self.run(small).mask


@dataclass(frozen=True)
class Roi:
    """A square region: centre and side in frame pixels."""

    cx: float
    cy: float
    side: float

    def matrix(self, out: int) -> np.ndarray:
        """Affine map frame -> (out x out) crop."""
        s = out / self.side
        return np.array([[s, 0, out / 2 - self.cx * s], [0, s, out / 2 - self.cy * s]], np.float32)

    def scaled(self, k: float) -> "Roi":
        """The same region in an image ``k`` times the size (working frame -> output size)."""
        return Roi(self.cx * k, self.cy * k, self.side * k)

    def box(self) -> tuple[int, int, int, int]:
        h = self.side / 2
        return (int(self.cx - h), int(self.cy - h), int(np.ceil(self.cx + h)), int(np.ceil(self.cy + h)))

    @classmethod
    def around(cls, x0: float, y0: float, x1: float, y1: float, margin: float, min_side: float = 16.0) -> "Roi":
        """Square around a box, enlarged by ``margin`` (0.25 = 25 % of the longer side)."""
        side = max(x1 - x0, y1 - y0, min_side) * (1.0 + margin)
        return cls((x0 + x1) / 2.0, (y0 + y1) / 2.0, side)


def crop(rgb: np.ndarray, roi: Roi, out: int) -> np.ndarray:
    interp = cv2.INTER_AREA if roi.side > out else cv2.INTER_LINEAR
    return cv2.warpAffine(rgb, roi.matrix(out), (out, out), flags=interp, borderMode=cv2.BORDER_REPLICATE)


def paste(prob: np.ndarray, roi: Roi, size: tuple[int, int]) -> np.ndarray:
    """Warp a crop's (n, n) probability back into a (W, H) frame; 0 outside the region."""
    n = prob.shape[0]
    return cv2.warpAffine(prob, roi.matrix(n), size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def run_on_roi(rgb: np.ndarray, roi: Roi, model: Callable[[np.ndarray], np.ndarray], n: int = 256) -> np.ndarray:
    """Crop, run ``model`` (crop -> square probability), paste back at the frame's size."""
    p = model(crop(rgb, roi, n))
    if p.shape != (n, n):
        p = cv2.resize(p, (n, n), interpolation=cv2.INTER_LINEAR)
    return paste(p, roi, (rgb.shape[1], rgb.shape[0]))
