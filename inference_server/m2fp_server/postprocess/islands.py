"""Small-island removal: drop stray blobs of mask (a patch above the head, a lamp, a reflection).

A component of the mask (alpha above ``LOW``, so its soft fringe goes with it) is
dropped when all of these hold:

* it covers less than ``min_fraction`` of the frame,
* it is less than a quarter of the largest component — so the largest (the
  person, however small and far away) is never dropped, nor a second person of
  comparable size,
* it touches no larger component within ``touch`` of the frame's size (a hand
  or a hair strand the model separated by a thin gap stays).

Runs at the model's resolution (a few thousand pixels), before any upscaling.
"""
from __future__ import annotations

import cv2
import numpy as np

LOW = 0.25  # alpha counted as part of a component (its fringe included)
MAX_CHECKED = 64  # components tested for touching; smaller leftovers beyond this are dropped
TOUCH = 0.015  # touching distance, as a fraction of the mask's larger side


def remove_islands(alpha: np.ndarray, min_fraction: float, touch: float = TOUCH) -> np.ndarray:
    """``alpha`` (h, w) float 0..1 with its small isolated components set to 0 (a new array, or ``alpha``)."""
    if min_fraction <= 0:
        return alpha
    h, w = alpha.shape
    n, labels, stats, _ = cv2.connectedComponentsWithStats((alpha > LOW).astype(np.uint8), connectivity=8)
    if n <= 2:  # nothing, or a single component: nothing can be an island
        return alpha
    areas = stats[:, cv2.CC_STAT_AREA].astype(np.int64)
    areas[0] = 0  # label 0 is the background
    largest = int(areas.max())
    limit = min(min_fraction * h * w, largest / 4.0)
    candidates = [i for i in np.argsort(-areas) if 0 < areas[i] < limit]
    if not candidates:
        return alpha
    r = max(1, round(touch * max(h, w)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    drop = []
    for k, i in enumerate(candidates):
        if k >= MAX_CHECKED:
            drop.append(i)
            continue
        x, y, bw, bh = (int(v) for v in stats[i, :4])
        x0, y0, x1, y1 = max(0, x - r), max(0, y - r), min(w, x + bw + r), min(h, y + bh + r)
        window = labels[y0:y1, x0:x1]
        grown = cv2.dilate((window == i).astype(np.uint8), kernel) > 0
        near = np.unique(window[grown])
        if not any(j != i and j != 0 and areas[j] > areas[i] for j in near):
            drop.append(i)
    if not drop:
        return alpha
    out = alpha.copy()
    out[np.isin(labels, drop)] = 0.0
    return out
