"""Move a mask ahead along each person's own motion, measured around that person.

The dense extrapolation of ``motion.FlowTracker`` works on one small flow grid
for the whole frame.  That fails where it matters most: a small person has too
few pixels on that grid, and over a moving background (a pan, a playing video)
the flow along the person's outline is the background's, so the outline smears
or stays behind.  Here, per person (connected part of the mask):

* the flow is computed only in a box around that person, at a resolution where
  the person has enough pixels (the frame as sent, reduced only for people
  larger than ``work_side``);
* only vectors well inside the person (the mask eroded) are used, so the
  background's motion does not enter;
* a similarity transform (shift, rotation, scale: sway, roll and zoom) is fitted
  to them robustly (RANSAC), and the person's whole mask, soft edge included,
  is moved by that transform raised to the number of frames ahead.

A person whose fit has too few vectors, or whose motion is below ``still_px``,
is left where it is (a still person keeps a still mask: no flicker added).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class PersonMotion:
    work_side: int = 320  # a person's box is scaled so its longer side is at most this (pixels) for the flow
    margin: float = 0.15  # box margin around a person, share of its longer side
    min_area: int = 64  # people smaller than this (pixels at the flow resolution) are left as they are
    erode: float = 0.06  # vectors are taken this share of the box's shorter side inside the outline
    min_vectors: int = 24
    still_px: float = 0.2  # largest point shift (pixels per frame at the flow resolution) treated as no motion
    max_points: int = 600
    _dis: object | None = None

    def _flow(self, cur: np.ndarray, prev: np.ndarray) -> np.ndarray:
        if self._dis is None:
            self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        return self._dis.calc(cur, prev, None)  # type: ignore[attr-defined]

    def transform(self, region: np.ndarray, cur: np.ndarray, prev: np.ndarray) -> np.ndarray | None:
        """3x3 map from this frame to the previous one for the person in ``region`` (bool, grey frame's size)."""
        ys, xs = np.nonzero(region)
        if xs.size < self.min_area:
            return None
        H, W = cur.shape
        x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        m = int(self.margin * max(x1 - x0, y1 - y0)) + 4
        x0, y0, x1, y1 = max(0, x0 - m), max(0, y0 - m), min(W, x1 + m), min(H, y1 + m)
        k = min(1.0, self.work_side / max(x1 - x0, y1 - y0))
        size = (max(8, round((x1 - x0) * k)), max(8, round((y1 - y0) * k)))
        c = cv2.resize(cur[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA) if k < 1 else cur[y0:y1, x0:x1]
        p = cv2.resize(prev[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA) if k < 1 else prev[y0:y1, x0:x1]
        r = region[y0:y1, x0:x1].astype(np.uint8)
        if k < 1:
            r = cv2.resize(r, size, interpolation=cv2.INTER_NEAREST)
        e = max(1, int(self.erode * min(size)))
        inner = cv2.erode(r, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * e + 1, 2 * e + 1)))
        if np.count_nonzero(inner) < self.min_vectors:
            inner = r
        flow = self._flow(np.ascontiguousarray(c), np.ascontiguousarray(p))
        iy, ix = np.nonzero(inner)
        if ix.size < self.min_vectors:
            return None
        step = max(1, ix.size // self.max_points)
        ix, iy = ix[::step], iy[::step]
        src = np.stack([ix, iy], 1).astype(np.float32)
        dst = src + flow[iy, ix]
        if float(np.median(np.abs(flow[iy, ix]).max(1))) < self.still_px * k:
            return np.eye(3)
        a, inliers = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=1.0,
                                                 maxIters=200, confidence=0.98, refineIters=5)
        if a is None or inliers is None or int(inliers.sum()) < self.min_vectors // 2:
            return None
        # crop coordinates (scaled by k, shifted by x0, y0) -> frame coordinates
        to_crop = np.array([[k, 0, -x0 * k], [0, k, -y0 * k], [0, 0, 1]], np.float64)
        crop_m = np.vstack([a, [0, 0, 1]])
        return np.linalg.inv(to_crop) @ crop_m @ to_crop

    def extrapolate(self, alpha: np.ndarray, cur: np.ndarray, prev: np.ndarray, frames_ahead: float) -> np.ndarray | None:
        """``alpha`` (h, w float, this frame) moved ``frames_ahead`` frames on; None = nobody could be fitted.

        ``cur``, ``prev``: this frame and the one before, grey, any resolution (the flow's).
        """
        gh, gw = cur.shape
        h, w = alpha.shape
        big = alpha if (h, w) == (gh, gw) else cv2.resize(alpha, (gw, gh), interpolation=cv2.INTER_LINEAR)
        n, labels, stats, _ = cv2.connectedComponentsWithStats((big >= 0.5).astype(np.uint8), connectivity=8)
        if n <= 1:
            return None
        # alpha's pixel centres <-> flow grid pixel centres
        sx, sy = w / gw, h / gh
        g2a = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]], np.float64)
        gone = np.zeros((h, w), np.uint8)
        arrived = []
        fitted = 0
        for i in range(1, n):
            if stats[i, cv2.CC_STAT_AREA] < self.min_area:
                continue
            region = labels == i
            m = self.transform(region, cur, prev)
            if m is None:
                continue
            fitted += 1
            if np.allclose(m, np.eye(3)):
                continue
            back = _power(m, frames_ahead)  # future frame -> this frame
            back_a = g2a @ back @ np.linalg.inv(g2a)
            # this person's soft mask: alpha around the region (its outline's soft pixels included)
            reach = cv2.dilate(region.astype(np.uint8), np.ones((5, 5), np.uint8))
            if (h, w) != (gh, gw):
                reach = cv2.resize(reach, (w, h), interpolation=cv2.INTER_NEAREST)
            gone |= reach
            arrived.append(cv2.warpAffine(alpha * reach, back_a[:2].astype(np.float32), (w, h),
                                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                          borderMode=cv2.BORDER_CONSTANT, borderValue=0))
        if not fitted:
            return None
        out = np.where(gone > 0, 0.0, alpha).astype(np.float32)  # people leave where they were...
        for moved in arrived:
            np.maximum(out, moved, out=out)  # ...and are where they will be
        return out


def _power(m: np.ndarray, p: float) -> np.ndarray:
    """``m`` (3x3 similarity) raised to a non-negative real power: integer part by products, the rest blended."""
    whole = int(np.floor(p))
    frac = p - whole
    r = np.linalg.matrix_power(m, whole)
    if frac > 1e-6:
        r = (1 - frac) * r + frac * (r @ m)
    return r
