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
  to them robustly (RANSAC); with the same person's fit on the frame before, its
  change of speed is known too, and the person's whole mask, soft edge included,
  is moved along both for the number of frames ahead.

A person whose fit has too few vectors, or whose motion is below ``still_px``,
is left where it is (a still person keeps a still mask: no flicker added).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np


@dataclass
class PersonMotion:
    work_side: int = 240  # a person's box is scaled so its longer side is this (pixels) for the flow...
    max_upscale: float = 2.0  # ...enlarging small people at most this much (the flow needs texture per patch)
    # DIS presets for enlarged (small) people and for the rest: the fast preset misses much of a small
    # person's motion and some of a fast one's (docs/evaluation.md)
    small_preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM
    small_scale: float = 1.5  # a person enlarged at least this much is "small"
    large_preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM
    margin: float = 0.15  # box margin around a person, share of its longer side
    min_area: int = 64  # people smaller than this (pixels at the flow resolution) are left as they are
    erode: float = 0.06  # vectors are taken this share of the box's shorter side inside the outline
    min_vectors: int = 24
    still_px: float = 0.2  # largest point shift (pixels per frame at the flow resolution) treated as no motion
    max_points: int = 600
    accel: float = 1.0  # weight of a person's change of speed when moving ahead (0 = constant speed)
    split: bool = True  # look for a second motion in one connected mask (overlapping people)
    split_share: float = 0.05  # ...each of the two groups holding at least this share of the vectors...
    split_area: float = 0.1  # ...and of the region's pixels
    split_px: float = 0.5  # ...each fitting its own vectors this much better (median, pixels per frame) than one
    max_turn: float = 0.05  # radians per frame: a second motion turning faster is not a person's...
    max_zoom: float = 0.04  # ...nor one zooming faster (log scale per frame)
    max_accel: float = 0.02  # largest change of speed carried ahead, share of the person's size per frame
    max_jump: float = 0.08  # largest change of speed in one frame, share of the person's size, believed
    _dis: dict[int, cv2.DISOpticalFlow] = field(default_factory=dict)
    _fit_frame: int | None = None
    _people: list[_Person] = field(default_factory=list)

    def reset(self) -> None:
        self._fit_frame, self._people = None, []

    def _flow(self, cur: np.ndarray, prev: np.ndarray, preset: int) -> np.ndarray:
        dis = self._dis.get(preset)
        if dis is None:
            dis = self._dis[preset] = cv2.DISOpticalFlow.create(preset)
        return dis.calc(cur, prev, None)  # type: ignore[call-overload]  # stubs lack flow=None

    def transform(self, region: np.ndarray, cur: np.ndarray, prev: np.ndarray) -> np.ndarray | None:
        """3x3 map from this frame to the previous one for the person in ``region`` (bool, grey frame's size)."""
        parts = self.motions(region, cur, prev, split=False)
        return parts[0].to_prev if parts else None

    def motions(self, region: np.ndarray, cur: np.ndarray, prev: np.ndarray, split: bool | None = None,
                at: tuple[int, int] = (0, 0)) -> list[_Part]:
        """The motions in ``region`` (bool: the grey frames' size, or a box of them whose top left corner
        is at ``at``), one part of the region each.

        One motion, or two where the vectors form two groups that move differently: two people
        overlapping make one connected mask, and moving both by one motion tears the one behind.  Each
        pixel of the region then goes with the motion its own flow agrees with.  Empty when nothing
        could be fitted.
        """
        region8 = region.astype(np.uint8)
        count = cv2.countNonZero(region8)
        if count < self.min_area:
            return []
        H, W = cur.shape
        bx0, by0, bw, bh = cv2.boundingRect(region8)
        x0, y0 = bx0 + at[0], by0 + at[1]
        x1, y1 = x0 + bw, y0 + bh
        m = int(self.margin * max(bw, bh)) + 4
        x0, y0, x1, y1 = max(0, x0 - m), max(0, y0 - m), min(W, x1 + m), min(H, y1 + m)
        # the region inside this box (the box holds all of it)
        own = np.zeros((y1 - y0, x1 - x0), bool)
        ox, oy = bx0 + at[0] - x0, by0 + at[1] - y0
        own[oy:oy + bh, ox:ox + bw] = region[by0:by0 + bh, bx0:bx0 + bw]
        k = min(self.max_upscale, self.work_side / max(x1 - x0, y1 - y0))
        size = (max(8, round((x1 - x0) * k)), max(8, round((y1 - y0) * k)))
        interp = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
        c, p = cur[y0:y1, x0:x1], prev[y0:y1, x0:x1]
        r: np.ndarray = own.astype(np.uint8)
        if k != 1:
            c, p = cv2.resize(c, size, interpolation=interp), cv2.resize(p, size, interpolation=interp)
            r = cv2.resize(r, size, interpolation=cv2.INTER_NEAREST)
        e = max(1, int(self.erode * min(size)))
        inner = cv2.erode(r, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * e + 1, 2 * e + 1)))
        if np.count_nonzero(inner) < self.min_vectors:
            inner = r
        preset = self.small_preset if k >= self.small_scale else self.large_preset
        flow = self._flow(np.ascontiguousarray(c), np.ascontiguousarray(p), preset)
        iy, ix = np.nonzero(inner)
        if ix.size < self.min_vectors:
            return []
        step = max(1, ix.size // self.max_points)
        ix, iy = ix[::step], iy[::step]
        src = np.stack([ix, iy], 1).astype(np.float32)
        dst = src + flow[iy, ix]
        if float(np.median(np.abs(flow[iy, ix]).max(1))) < self.still_px * k:
            return [_Part(own, (x0, y0), np.eye(3))]
        one, inliers = self._similarity_fit(src, dst)
        fits = self._two_motions(src, dst, k, one) if (self.split if split is None else split) else []
        if not fits:
            if one is None or inliers is None or int(inliers.sum()) < self.min_vectors // 2:
                return []
            fits = [one]
        # crop coordinates (scaled by k, shifted by x0, y0) -> frame coordinates
        to_crop = np.array([[k, 0, -x0 * k], [0, k, -y0 * k], [0, 0, 1]], np.float64)
        from_crop = np.linalg.inv(to_crop)
        maps = [from_crop @ np.vstack([f, [0, 0, 1]]) @ to_crop for f in fits]
        if len(fits) == 1:
            return [_Part(own, (x0, y0), maps[0])]
        # each pixel of the region goes with the motion its flow agrees with (labels smoothed: flow is noisy)
        gy, gx = np.mgrid[0:size[1], 0:size[0]].astype(np.float32)
        seen_x, seen_y = gx + flow[..., 0], gy + flow[..., 1]
        res = [np.hypot(gx * f[0, 0] + gy * f[0, 1] + f[0, 2] - seen_x, gx * f[1, 0] + gy * f[1, 1] + f[1, 2] - seen_y)
               for f in fits]
        label = cv2.medianBlur(np.where(res[1] < res[0], 2, 1).astype(np.uint8) * r, 5)
        if k != 1:
            label = cv2.resize(label, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
        parts = [(label == i) & own for i in (1, 2)]
        area = [int(np.count_nonzero(q)) for q in parts]
        if min(area) < max(self.min_area, self.split_area * count):
            # the second motion holds a sliver (the outline, where the flow is the background's): one motion
            return [_Part(own, (x0, y0), maps[int(np.argmax(area))])]
        return [_Part(q, (x0, y0), mat) for q, mat in zip(parts, maps)]

    def _two_motions(self, src: np.ndarray, dst: np.ndarray, k: float, one: np.ndarray | None) -> list[np.ndarray]:
        """Two similarity fits when the vectors form two groups that move differently, else [].

        ``one``: the single fit to all of them.  It is no test for this on its own: a shift plus a zoom
        passes through two people moving apart, so the vectors are grouped first (k-means on the flow),
        each group is fitted alone, and each must be explained better by its own fit than by ``one``.
        """
        d = (dst - src).astype(np.float32)
        if one is None or len(d) < 2 * self.min_vectors:
            return []
        crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_MAX_ITER, 20, 0.05)
        start = np.zeros((len(d), 1), np.int32)  # not read (k-means++ picks the start); OpenCV 4 stubs want it
        _, lab, centres = cv2.kmeans(d, 2, start, crit, 2, cv2.KMEANS_PP_CENTERS)
        lab = lab.ravel()
        if float(np.hypot(*(centres[0] - centres[1]))) < self.split_px * k:
            return []
        fits, worse = [], 0.0
        for g in (0, 1):
            sel = lab == g
            if sel.sum() < max(self.min_vectors, self.split_share * len(d)):
                return []
            f, inl = self._similarity_fit(src[sel], dst[sel])
            if f is None or inl is None or int(inl.sum()) < self.min_vectors // 2 or not self._plausible(f):
                return []  # a group the flow got wrong (the background's vectors) zooms or turns wildly
            fits.append(f)
            # how much worse one motion for all explains this group than the group's own motion
            worse = max(worse, _residual(one, src[sel], dst[sel]) - _residual(f, src[sel], dst[sel]))
        return fits if worse > self.split_px * k else []  # else one motion (a zoom or a turn spreads vectors too)

    def _plausible(self, m: np.ndarray) -> bool:
        """Whether a 2x3 similarity turns and zooms no more than a person can in one frame."""
        return abs(math.atan2(m[1, 0], m[0, 0])) <= self.max_turn and \
            abs(math.log(max(1e-6, math.hypot(m[0, 0], m[1, 0])))) <= self.max_zoom

    def _similarity_fit(self, src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        if len(src) < 3:
            return None, None
        return cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=1.0, maxIters=200,
                                           confidence=0.98, refineIters=5)

    def fit(self, alpha: np.ndarray, cur: np.ndarray, prev: np.ndarray, frame: int | None = None) -> list[_Person]:
        """The people in ``alpha`` and their motion from ``prev`` to ``cur`` (cached per ``frame`` number)."""
        if frame is not None and frame == self._fit_frame:
            return self._people
        gh, gw = cur.shape
        big = alpha if alpha.shape == (gh, gw) else cv2.resize(alpha, (gw, gh), interpolation=cv2.INTER_LINEAR)
        n, labels, stats, _ = cv2.connectedComponentsWithStats((big >= 0.5).astype(np.uint8), connectivity=8)
        before = self._people if frame is not None and frame - 1 == self._fit_frame else []
        people = []
        for i in range(1, n):
            if stats[i, cv2.CC_STAT_AREA] < self.min_area:
                continue
            x, y, w, h = (int(v) for v in stats[i, :4])
            for part in self.motions(labels[y:y + h, x:x + w] == i, cur, prev, at=(x, y)):
                m = part.to_prev
                mask8 = part.mask.astype(np.uint8)
                mo = cv2.moments(mask8, binaryImage=True)
                c = (mo["m10"] / mo["m00"] + part.at[0], mo["m01"] / mo["m00"] + part.at[1])
                size = float(max(cv2.boundingRect(mask8)[2:]))
                near = [p for p in before if np.hypot(p.centre[0] - c[0], p.centre[1] - c[1]) < 0.3 * size]
                step = measured = _step(np.linalg.inv(m), c)
                accel = np.zeros(4)
                if len(near) == 1:
                    # the step before, about this centre (its shift depends on the point it is taken about)
                    was, had = _step(near[0].forward, c), _step(near[0].measured, c)
                    far = self.max_jump * size
                    if float(np.hypot(*(step[:2] - was[:2] - near[0].accel[:2]))) > far and \
                            float(np.hypot(*(step[:2] - had[:2]))) > far and near[0].step.any():
                        # a moving person does not change speed that much in one frame, so the fit is wrong
                        # (the flow locked onto the background): go on with the speed they had.  A start from
                        # still, or a new speed measured twice in a row, is believed.
                        step = was + near[0].accel
                    accel = step - was
                    # nor speeds up faster than this: a start from still is not carried on as an acceleration
                    top = self.max_accel * size / max(1e-6, float(np.hypot(accel[0], accel[1])))
                    if top < 1.0:
                        accel = accel * top
                people.append(_Person(part, c, step, accel, _similarity(step, c), _similarity(measured, c)))
        self._fit_frame, self._people = frame, people
        return people

    def extrapolate(self, alpha: np.ndarray, cur: np.ndarray, prev: np.ndarray, frames_ahead: float,
                    frame: int | None = None) -> np.ndarray | None:
        """``alpha`` (h, w float, this frame) moved ``frames_ahead`` frames on; None = nobody could be fitted.

        ``cur``, ``prev``: this frame and the one before, grey, any resolution (the flow's).  ``frame``:
        this frame's number; consecutive numbers let a person's change of speed be carried on too.
        """
        people = self.fit(alpha, cur, prev, frame)
        if not people:
            return None
        gh, gw = cur.shape
        h, w = alpha.shape
        # alpha's pixel centres <-> flow grid pixel centres
        sx, sy = w / gw, h / gh
        g2a = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]], np.float64)
        gone = np.zeros((h, w), np.uint8)
        arrived = []
        a = float(frames_ahead)
        for p in people:
            params = a * p.step + self.accel * 0.5 * a * (a + 1.0) * p.accel
            if not params.any():
                continue
            back = np.linalg.inv(_similarity(params, p.centre))  # future frame -> this frame
            back_a = g2a @ back @ np.linalg.inv(g2a)
            # this person's soft mask: alpha around the region (its outline's soft pixels included)
            reach: np.ndarray = np.zeros((gh, gw), np.uint8)
            (x0, y0), (ph, pw) = p.part.at, p.part.mask.shape
            reach[y0:y0 + ph, x0:x0 + pw] = p.part.mask
            reach = cv2.dilate(reach, np.ones((5, 5), np.uint8))
            if (h, w) != (gh, gw):
                reach = cv2.resize(reach, (w, h), interpolation=cv2.INTER_NEAREST)
            gone = np.maximum(gone, reach)
            arrived.append(cv2.warpAffine(alpha * reach, back_a[:2].astype(np.float32), (w, h),
                                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                          borderMode=cv2.BORDER_CONSTANT, borderValue=0))
        out = np.where(gone > 0, 0.0, alpha).astype(np.float32)  # people leave where they were...
        for moved in arrived:
            np.maximum(out, moved, out=out)  # ...and are where they will be
        return out


@dataclass
class _Part:
    """One motion found in a connected mask."""

    mask: np.ndarray  # bool, flow resolution: the pixels it moves, in a box of the frame...
    at: tuple[int, int]  # ...whose top left corner is here
    to_prev: np.ndarray  # 3x3 map, this frame -> the previous one (frame coordinates)


@dataclass
class _Person:
    part: _Part
    centre: tuple[float, float]
    step: np.ndarray  # motion over the last frame about ``centre``: dx, dy, angle (rad), log scale
    accel: np.ndarray  # change of ``step`` since the frame before (zeros when that person was not matched)
    forward: np.ndarray  # ``step`` as a 3x3 map, previous frame -> this one (re-read about another centre)
    measured: np.ndarray  # the same for the step as measured, before the check against the speed before


def _residual(m: np.ndarray, src: np.ndarray, dst: np.ndarray) -> float:
    """Median distance between where a 2x3 map puts ``src`` and ``dst``."""
    return float(np.median(np.hypot(*(src @ m[:, :2].T + m[:, 2] - dst).T)))


def _step(forward: np.ndarray, c: tuple[float, float]) -> np.ndarray:
    """A similarity (3x3, previous frame -> this one) as dx, dy, angle, log scale about the point ``c``."""
    lin = forward[:2, :2]
    moved = forward[:2] @ np.array([c[0], c[1], 1.0])
    return np.array([moved[0] - c[0], moved[1] - c[1], np.arctan2(lin[1, 0], lin[0, 0]),
                     np.log(max(1e-6, float(np.hypot(lin[0, 0], lin[1, 0]))))])


def _similarity(params: np.ndarray, c: tuple[float, float]) -> np.ndarray:
    """Inverse of :func:`_step`: x -> c + d + s R (x - c)."""
    dx, dy, ang, logs = (float(v) for v in params)
    s = np.exp(logs)
    r = np.array([[s * np.cos(ang), -s * np.sin(ang)], [s * np.sin(ang), s * np.cos(ang)]])
    t = np.array([c[0] + dx, c[1] + dy]) - r @ np.array(c)
    return np.array([[r[0, 0], r[0, 1], t[0]], [r[1, 0], r[1, 1], t[1]], [0.0, 0.0, 1.0]])
