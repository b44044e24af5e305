"""Where RVM looks: the whole frame, or a closer view around people who are small in it.

RVM finds nobody when a whole body is a small part of its input (docs/engines.md, "Small people"):
fed a view in which the people fill most of its height, it finds them.  The view keeps the model's
input size, so the fixed-shape graphs stay as they are; it follows the people smoothly, and RVM's
recurrent states, which are images at 1/2 to 1/16 of the model input, are moved with it, so what the
model remembers of earlier frames stays where it was in the picture.

Everything here is in the pixels of the frame the engine was given.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

Box = tuple[float, float, float, float]  # x0, y0, x1, y1


@dataclass(frozen=True)
class ZoomSettings:
    """When and how far the view closes in (``-E zoom_*`` options of the rvm engine)."""

    enabled: bool = True
    below: float = 0.5  # close in when the people's box is shorter than this share of the frame height
    fill: float = 0.8  # ... so that it fills this share of the view's height (and width)
    max_zoom: float = 3.0  # at most this much closer than the whole frame
    follow: float = 0.5  # share of the way to the wanted view taken per frame
    detect_every: int = 15  # frames between person detections while people are seen
    search_every: int = 3  # ... while nobody is seen
    min_area: float = 0.002  # alpha blobs smaller than this share of the view are not people
    min_detection: float = 0.2  # pose detector score worth a look (RVM then confirms it or not)

    def __post_init__(self) -> None:
        if not 0.05 <= self.below <= 1.0 or not 0.1 <= self.fill <= 1.0:
            raise ValueError("zoom_below must be in 0.05..1 and zoom_fill in 0.1..1")
        if not 1.0 <= self.max_zoom <= 8.0:
            raise ValueError("zoom_max must be in 1..8")
        if not 0.0 < self.follow <= 1.0:
            raise ValueError("zoom_follow must be in 0..1 (0 excluded)")
        if self.detect_every < 1 or self.search_every < 1:
            raise ValueError("zoom_detect_every and zoom_search_every must be at least 1")


@dataclass(frozen=True)
class View:
    """The part of the frame the model sees: its top-left corner and frame pixels per model pixel."""

    ox: float
    oy: float
    scale: float

    @classmethod
    def whole(cls, frame: tuple[int, int], model: tuple[int, int]) -> "View":
        return cls(0.0, 0.0, frame[0] / model[0])

    def frame_to_model(self) -> np.ndarray:
        s = self.scale
        return np.array([[1 / s, 0, -self.ox / s], [0, 1 / s, -self.oy / s]], np.float32)

    def box(self, alpha: np.ndarray, min_area: float, threshold: float = 0.5) -> Box | None:
        """Frame box around the person blobs of a model-size alpha; None when there are none."""
        mask = (alpha >= threshold).astype(np.uint8)
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        keep = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= min_area * mask.size]
        if not keep:
            return None
        x0 = min(stats[i, cv2.CC_STAT_LEFT] for i in keep)
        y0 = min(stats[i, cv2.CC_STAT_TOP] for i in keep)
        x1 = max(stats[i, cv2.CC_STAT_LEFT] + stats[i, cv2.CC_STAT_WIDTH] for i in keep)
        y1 = max(stats[i, cv2.CC_STAT_TOP] + stats[i, cv2.CC_STAT_HEIGHT] for i in keep)
        s = self.scale
        return (self.ox + x0 * s, self.oy + y0 * s, self.ox + x1 * s, self.oy + y1 * s)


def union(boxes: list[Box], frame: tuple[int, int]) -> Box | None:
    fw, fh = frame
    inside = [(max(0.0, b[0]), max(0.0, b[1]), min(float(fw), b[2]), min(float(fh), b[3])) for b in boxes]
    inside = [b for b in inside if b[2] > b[0] and b[3] > b[1]]
    if not inside:
        return None
    return (min(b[0] for b in inside), min(b[1] for b in inside),
            max(b[2] for b in inside), max(b[3] for b in inside))


def wanted(box: Box | None, frame: tuple[int, int], model: tuple[int, int], z: ZoomSettings) -> View:
    """The view that frames ``box`` (the people) as ``z`` asks; the whole frame for big people or none."""
    whole = View.whole(frame, model)
    fw, fh = frame
    if box is None or not z.enabled or box[3] - box[1] >= z.below * fh:
        return whole
    mw, mh = model
    bw, bh = box[2] - box[0], box[3] - box[1]
    view_h = max(bh, bw * mh / mw) / z.fill  # frame pixels the view spans vertically
    scale = min(max(view_h / mh, whole.scale / z.max_zoom), whole.scale)
    vw, vh = mw * scale, mh * scale
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    ox = min(max(cx - vw / 2, 0.0), max(fw - vw, 0.0))
    oy = min(max(cy - vh / 2, 0.0), max(fh - vh, 0.0))
    return View(ox, oy, scale)


def holds(view: View, box: Box | None, model: tuple[int, int], z: ZoomSettings) -> bool:
    """Whether a closer view still frames ``box`` well enough to stay where it is.

    Without this dead band the view would follow every pixel the alpha's outline moves, and the
    re-sampled input would make a still person's outline flicker.
    """
    if box is None:
        return False
    vw, vh = model[0] * view.scale, model[1] * view.scale
    mx, my = 0.05 * vw, 0.05 * vh
    inside = (box[0] >= view.ox + mx and box[2] <= view.ox + vw - mx
              and box[1] >= view.oy + my and box[3] <= view.oy + vh - my)
    share = max(box[3] - box[1], (box[2] - box[0]) * model[1] / model[0]) / vh
    return inside and z.fill - 0.2 <= share <= z.fill + 0.05


def follow(now: View, to: View, rate: float) -> View:
    """``rate`` of the way from ``now`` to ``to`` (scale in log space); snaps when nearly there."""
    if rate >= 1.0:
        return to
    s = math.exp(math.log(now.scale) + rate * (math.log(to.scale) - math.log(now.scale)))
    nxt = View(now.ox + rate * (to.ox - now.ox), now.oy + rate * (to.oy - now.oy), s)
    close = abs(nxt.ox - to.ox) < 0.5 and abs(nxt.oy - to.oy) < 0.5 and abs(nxt.scale / to.scale - 1) < 0.005
    return to if close else nxt


def crop(rgb: np.ndarray, view: View, model: tuple[int, int]) -> np.ndarray:
    """The view's part of the frame at the model's size (the whole frame is resized by the engine)."""
    return cv2.warpAffine(rgb, view.frame_to_model(), model, flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def paste(alpha: np.ndarray, view: View, whole: View) -> np.ndarray:
    """The view's model-size alpha placed in the whole frame, at the same model size; 0 outside the view."""
    if view == whole:
        return alpha
    r = whole.scale / view.scale
    m = np.array([[r, 0, -view.ox / view.scale], [0, r, -view.oy / view.scale]], np.float32)
    h, w = alpha.shape
    return cv2.warpAffine(alpha, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def move_states(states: list[np.ndarray], before: View, after: View, model: tuple[int, int]) -> list[np.ndarray]:
    """RVM's recurrent states (1, C, h, w), made for ``before``, resampled for ``after``."""
    if before == after:
        return states
    moved = []
    for st in states:
        _, c, h, w = st.shape
        kx, ky = model[0] / w, model[1] / h  # model pixels per state pixel
        r = after.scale / before.scale
        m = np.array([[r, 0, (after.ox - before.ox) / (kx * before.scale)],
                      [0, r, (after.oy - before.oy) / (ky * before.scale)]], np.float32)
        img = st[0].transpose(1, 2, 0)
        out = np.empty_like(img)
        for k in range(0, c, 4):  # warpAffine takes up to 4 channels at once
            part = cv2.warpAffine(np.ascontiguousarray(img[..., k:k + 4]), m, (w, h),
                                  flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
            out[..., k:k + 4] = part.reshape(h, w, -1)
        moved.append(np.ascontiguousarray(out.transpose(2, 0, 1)[None]))
    return moved
