"""Per-frame pre- and post-processing shared by the torch path and the exported runtimes.

Kept free of torch so an engine running an export needs only numpy, OpenCV and
the runtime.  Exports have fixed shapes, so every frame is placed on a fixed
canvas: resized so its short side is ``short_side`` (smaller if it would not fit),
top-left, the rest filled with the mean colour -- which is exactly M2FP's own
zero padding after normalisation, just more of it.
"""
from __future__ import annotations

from ...errors import BadInput

import math
from dataclasses import dataclass

import cv2
import numpy as np

#: M2FP's normalisation (RGB, 0..255), from the model definition.
PIXEL_MEAN = np.array([123.675, 116.28, 103.53], np.float32)
PIXEL_STD = np.array([58.395, 57.12, 57.375], np.float32)
#: The model pads to a multiple of this and predicts masks at 1/STRIDE resolution.
SIZE_DIVISIBILITY = 32
MASK_STRIDE = 4
SHORT_SIDES = (256, 384, 512)


@dataclass(frozen=True)
class Canvas:
    """The fixed model input, (height, width), both multiples of 32."""

    height: int
    width: int

    @classmethod
    def for_short_side(cls, short_side: int, portrait: bool = False) -> "Canvas":
        """16:9 (or 9:16) with the short side ``short_side``, padded to 32: 256 -> 256x480."""
        if short_side <= 0 or short_side % SIZE_DIVISIBILITY:
            raise BadInput(f"short side must be a positive multiple of {SIZE_DIVISIBILITY}, got {short_side}")
        long_side = int(math.ceil(short_side * 16 / 9 / SIZE_DIVISIBILITY) * SIZE_DIVISIBILITY)
        return cls(long_side, short_side) if portrait else cls(short_side, long_side)

    @property
    def key(self) -> str:
        return f"{self.height}x{self.width}"


@dataclass(frozen=True)
class Placement:
    """Where the frame sits on the canvas: resized size (h, w)."""

    height: int
    width: int

    @property
    def mask_shape(self) -> tuple[int, int]:
        return (-(-self.height // MASK_STRIDE), -(-self.width // MASK_STRIDE))


def _fit(rgb: np.ndarray, short_side: int, canvas: Canvas) -> tuple[np.ndarray, Placement]:
    """The frame resized to sit top-left on the canvas with the short side ``short_side``."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB frame, got {rgb.dtype} {rgb.shape}")
    h, w = rgb.shape[:2]
    scale = min(short_side / min(h, w), canvas.width / w, canvas.height / h)
    nh, nw = min(canvas.height, max(1, round(h * scale))), min(canvas.width, max(1, round(w * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = rgb if (nh, nw) == (h, w) else cv2.resize(rgb, (nw, nh), interpolation=interp)
    return small, Placement(nh, nw)


def place(rgb: np.ndarray, short_side: int, canvas: Canvas, out: np.ndarray | None = None
          ) -> tuple[np.ndarray, Placement]:
    """RGB uint8 (H, W, 3) -> (1, 3, canvas) float32 RGB 0..255 padded with the mean colour."""
    small, p = _fit(rgb, short_side, canvas)
    if out is None or out.shape != (1, 3, canvas.height, canvas.width):
        out = np.empty((1, 3, canvas.height, canvas.width), np.float32)
    out[0] = PIXEL_MEAN[:, None, None]
    out[0, :, :p.height, :p.width] = small.transpose(2, 0, 1)
    return out, p


def place_u8(rgb: np.ndarray, short_side: int, canvas: Canvas) -> tuple[np.ndarray, Placement]:
    """Like :func:`place`, as (1, H, W, 3) uint8 (the served graph pads and normalises itself)."""
    small, p = _fit(rgb, short_side, canvas)
    out = np.zeros((1, canvas.height, canvas.width, 3), np.uint8)
    out[0, :p.height, :p.width] = small
    return out, p


def semantic_probs(logits: np.ndarray, masks: np.ndarray, placement: Placement, num_classes: int
                   ) -> np.ndarray:
    """Per-class probabilities at 1/4 resolution, (C, h, w) float32, summing to 1 over C.

    M2FP's semantic inference: ``einsum('qc,qhw->chw', softmax(logits)[..., :-1],
    sigmoid(masks))``, the first ``num_classes`` channels (the multi-person model
    has an extra whole-person class used for instances), cropped to the frame
    and normalised per pixel so the alpha of "everything but background" is
    ``1 - P(background)``.  Normalising does not change the argmax.
    """
    logits = logits.reshape(logits.shape[-2], logits.shape[-1]).astype(np.float32, copy=False)
    q = logits.shape[0]
    mh, mw = placement.mask_shape
    m = masks.reshape(q, masks.shape[-2], masks.shape[-1])[:, :mh, :mw]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    cls = (e / e.sum(axis=1, keepdims=True))[:, :num_classes]  # (Q, C); drops no-object too
    sig = 1.0 / (1.0 + np.exp(-m.reshape(q, -1)))
    sem = (cls.T @ sig).reshape(num_classes, mh, mw)
    sem /= np.maximum(sem.sum(axis=0, keepdims=True), 1e-6)
    return sem.astype(np.float32, copy=False)
