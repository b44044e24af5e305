"""The one scaling rule for frames sent to the server (client side) and masks scaled back (both sides)."""
from __future__ import annotations

from typing import Tuple


def fit_inside(size: Tuple[int, int], box: Tuple[int, int]) -> Tuple[int, int]:
    """Scale (w, h) to fit inside box (bw, bh) keeping aspect; never upscale (a bigger frame only costs)."""
    w, h = size
    bw, bh = box
    s = min(bw / w, bh / h, 1.0)
    return max(1, round(w * s)), max(1, round(h * s))
