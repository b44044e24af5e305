"""Scores of a mask sequence against a clip's truth.

Masks are uint8 alphas (0..255) decided at 128; truth is 0/1.  Each function
takes whole sequences and a frame range so the static and moving parts of a
clip are scored by the same code.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, Mapping

import cv2
import numpy as np

DECISION = 128  # alpha >= this counts as "person"


def decide(alpha: np.ndarray) -> np.ndarray:
    return alpha >= DECISION


def iou(alpha: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of one frame (1.0 when both are empty)."""
    p = decide(alpha)
    t = truth.astype(bool)
    union = np.count_nonzero(p | t)
    if union == 0:
        return 1.0
    return np.count_nonzero(p & t) / union


def mean_iou(alphas: np.ndarray | Mapping[int, np.ndarray], truth: np.ndarray, frames: Iterable[int]) -> float:
    vals = [iou(alphas[i], truth[i]) for i in frames]
    return float(np.mean(vals)) if vals else math.nan


def flicker(alphas: np.ndarray, frames: Iterable[int]) -> float:
    """% of pixels whose decision flips from one frame to the next, averaged over ``frames``.

    Meant for the static part of a clip, where the right answer never changes.
    """
    idx = list(frames)
    flips = [np.count_nonzero(decide(alphas[a]) != decide(alphas[b])) / alphas[b].size
             for a, b in zip(idx, idx[1:])]
    return 100.0 * float(np.mean(flips)) if flips else math.nan


def _edge(mask: np.ndarray) -> np.ndarray:
    m = mask.astype(np.uint8)
    return (m - cv2.erode(m, np.ones((3, 3), np.uint8))).astype(bool)


def boundary_error(alpha: np.ndarray, truth: np.ndarray) -> float:
    """Mean symmetric distance (pixels) between the predicted and the true outline.

    NaN when either outline is empty (nothing to compare).
    """
    pe, te = _edge(decide(alpha)), _edge(truth.astype(bool))
    if not pe.any() or not te.any():
        return math.nan
    dt_t = cv2.distanceTransform((~te).astype(np.uint8), cv2.DIST_L2, 3)
    dt_p = cv2.distanceTransform((~pe).astype(np.uint8), cv2.DIST_L2, 3)
    return float((dt_t[pe].mean() + dt_p[te].mean()) / 2.0)


def mean_boundary_error(alphas: np.ndarray, truth: np.ndarray, frames: Iterable[int]) -> float:
    vals = [boundary_error(alphas[i], truth[i]) for i in frames]
    vals = [v for v in vals if not math.isnan(v)]
    return float(np.mean(vals)) if vals else math.nan


@dataclass
class Scores:
    """One engine/variant on one clip.  IoU figures are means of per-frame IoU."""

    iou_static: float
    iou_moving: float
    flicker_static: float  # % pixels per frame
    boundary_moving: float  # pixels, at the clip's size
    age_median: float  # frames between the shown frame and the frame its mask came from
    age_max: float
    missing: int  # frames shown with no mask at all (start-up)

    def to_json(self) -> dict[str, float | None]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def score(alphas: np.ndarray, truth: np.ndarray, static: range, moving: range,
          mask_age: np.ndarray | None = None) -> Scores:
    """Score a whole sequence; ``mask_age`` per frame (-1 = no mask yet), None = offline (age 0)."""
    if alphas.shape != truth.shape:
        raise ValueError(f"masks {alphas.shape} and truth {truth.shape} differ in shape")
    if mask_age is None:
        mask_age = np.zeros(len(truth), np.int32)
    known = mask_age[mask_age >= 0]
    # the first frames of a live run have no mask yet: score the static part from where masks exist
    first = int(np.argmax(mask_age >= 0)) if len(known) else len(truth)
    static_scored = range(max(static.start, first), static.stop)
    return Scores(
        iou_static=mean_iou(alphas, truth, static_scored),
        iou_moving=mean_iou(alphas, truth, moving),
        flicker_static=flicker(alphas, static_scored),
        boundary_moving=mean_boundary_error(alphas, truth, moving),
        age_median=float(np.median(known)) if len(known) else math.nan,
        age_max=float(known.max()) if len(known) else math.nan,
        missing=int(np.count_nonzero(mask_age < 0)),
    )
