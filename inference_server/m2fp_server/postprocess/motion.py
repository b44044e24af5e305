"""Motion compensation: move an old mask onto the newest frame with dense optical flow.

A slow engine's result belongs to a frame several frames back.  Holding it
leaves a ghost where the person was; one flow over the whole gap fails on fast
motion (the two pictures are too different).  So every frame's flow to its
predecessor is computed once (OpenCV DIS on a small grey frame) and kept; a
result from frame k is carried to frame n through the chain k -> k+1 -> ... -> n.
The chain is a coordinate map, updated with one remap per new frame, so the
mask itself is resampled only once (no blur build-up).
A frame the slow engine has started on is ``pin``-ned: its chain is advanced on
every push from then on, so its result can be warped however late it arrives,
while only a second's worth of flows is kept.

``extrapolate`` moves a mask a few frames into the *future* (the frames the
viewer will see while the mask travels back): each person by their own motion,
measured around them (``person_motion``); where nobody can be fitted, by the
dense flow, the person's velocity spread to the pixels around them so the
leading edge fills in.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass, field

import cv2
import numpy as np

from .person_motion import PersonMotion

FLOW_MAX_WIDTH = 256  # flow is computed on frames no wider than this


@dataclass
class _Chain:
    """Where each pixel of frame ``at`` was in frame ``source`` (flow-grid coordinates)."""

    source: int
    at: int
    map: np.ndarray  # (fh, fw, 2) float32


@dataclass
class FlowTracker:
    """Per-stream flow history.  ``push`` every frame; ``warp`` results from older frames onto it."""

    history: int = 30  # frames of flow kept (a result from an unpinned frame older than this is held)
    max_width: int = FLOW_MAX_WIDTH
    preset: int = cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST
    finest_scale: int = 1  # DIS pyramid level where refinement stops (0 = full grid: best, and slowest)
    deadband: float = 0.25  # px/frame of flow treated as noise when extrapolating
    person_max_width: int = 640  # the per-person motion of ``extrapolate`` is measured on frames up to this wide
    seq: int = -1  # number of the newest frame
    person: PersonMotion = field(default_factory=PersonMotion)
    _fine: np.ndarray | None = None  # newest frame, grey, at the per-person resolution
    _fine_prev: np.ndarray | None = None
    _lazy: tuple[int, np.ndarray, np.ndarray] | None = None  # (seq, grey, previous grey) of a flow not computed yet
    _gray: np.ndarray | None = None
    _flows: collections.OrderedDict = field(default_factory=collections.OrderedDict)  # seq -> (fh, fw, 2)
    _chains: dict[int, _Chain] = field(default_factory=dict)
    _pinned: set[int] = field(default_factory=set)
    _dis: cv2.DISOpticalFlow | None = None
    _grid: np.ndarray | None = None

    def reset(self) -> None:
        self.seq = -1
        self._gray = None
        self._flows.clear()
        self._chains.clear()
        self._pinned.clear()
        self._fine = self._fine_prev = None
        self._lazy = None
        self.person.reset()

    @property
    def grid_size(self) -> tuple[int, int] | None:
        """(width, height) of the flow grid, once a frame was pushed."""
        return None if self._gray is None else (self._gray.shape[1], self._gray.shape[0])

    def push(self, rgb: np.ndarray, flow: bool = True) -> int:
        """Register the next frame; returns its sequence number.

        With ``flow=False`` the frame is only counted and the chain is broken
        (nothing older can be warped onto it).
        """
        self.seq += 1
        h, w = rgb.shape[:2]
        fw = min(w, self.max_width)
        fh = max(8, round(h * fw / w))
        # grey first: one channel to scale down instead of three
        full = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
        gray = full if (fw, fh) == (w, h) else cv2.resize(full, (fw, fh), interpolation=cv2.INTER_AREA)
        prev, self._gray = self._gray, gray
        fw2 = min(w, max(self.person_max_width, fw))
        if fw2 == fw:
            fine = gray
        else:
            fh2 = max(8, round(h * fw2 / w))
            fine = full if fw2 == w else cv2.resize(full, (fw2, fh2), interpolation=cv2.INTER_AREA)
        self._fine_prev, self._fine = (self._fine if flow else None), fine
        self._lazy = None
        if not flow or prev is None or prev.shape != gray.shape:
            self._flows.clear()
            self._chains.clear()
            self._pinned.clear()
            return self.seq
        if self.history <= 2 and not self._pinned:
            # prediction only (no slow results to carry): the whole-frame flow is needed only where
            # nobody could be fitted (``extrapolate``), so it is computed then
            self._lazy = (self.seq, gray, prev)
            return self.seq
        self._flows[self.seq] = self._frame_flow(gray, prev)
        while len(self._flows) > self.history:
            self._flows.popitem(last=False)
        for source in list(self._pinned):  # keep pinned chains current: they never need old flows
            if self.chain_to(source) is None:
                self._pinned.discard(source)
        return self.seq

    def _frame_flow(self, gray: np.ndarray, prev: np.ndarray) -> np.ndarray:
        """Backward flow: pixel x of ``gray`` was at x + b(x) in ``prev``."""
        if self._dis is None:
            self._dis = cv2.DISOpticalFlow.create(self.preset)
            self._dis.setFinestScale(self.finest_scale)
        return self._dis.calc(gray, prev, None)  # type: ignore[call-overload]  # stubs lack flow=None

    def _flow(self, seq: int) -> np.ndarray | None:
        """The flow into frame ``seq`` (computed now if it was left for later)."""
        if seq not in self._flows and self._lazy is not None and self._lazy[0] == seq:
            _, gray, prev = self._lazy
            self._flows[seq] = self._frame_flow(gray, prev)
            while len(self._flows) > self.history:
                self._flows.popitem(last=False)
        return self._flows.get(seq)

    def pin(self, source: int) -> bool:
        """Keep the chain from frame ``source`` current from now on (a slow result for it is coming).

        False when ``source`` is already out of reach (older than the kept flows).
        """
        if source in self._pinned:
            return True
        if self.chain_to(source) is None:
            return False
        self._pinned.add(source)
        return True

    def release(self, before: int) -> None:
        """Forget the chains of frames older than ``before`` (a newer result has arrived)."""
        self._pinned = {s for s in self._pinned if s >= before}
        self._chains = {s: c for s, c in self._chains.items() if s >= before}

    def _identity(self, shape: tuple[int, int]) -> np.ndarray:
        if self._grid is None or self._grid.shape[:2] != shape:
            h, w = shape
            xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            self._grid = np.dstack([xs, ys])
        return self._grid

    def chain_to(self, source: int) -> np.ndarray | None:
        """Coordinate map newest frame -> frame ``source`` (flow grid), or None if the chain is broken."""
        if self._gray is None or source > self.seq:
            return None
        grid = self._identity(self._gray.shape[:2])
        if source == self.seq:
            return grid
        ch = self._chains.get(source)
        if ch is None or ch.at > self.seq:
            if self._flow(source + 1) is None:
                return None
            ch = _Chain(source, source, grid.copy())
        for s in range(ch.at + 1, self.seq + 1):
            b = self._flow(s)
            if b is None:
                return None
            pos = grid + b  # where each pixel of frame s was in frame s-1
            ch.map = cv2.remap(ch.map, pos[..., 0], pos[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            ch.at = s
        self._chains[source] = ch
        for old in [s for s in self._chains if s != source and s not in self._pinned]:
            del self._chains[old]  # unpinned chains live only while they are being used
        return ch.map

    def warp(self, arr: np.ndarray, source: int) -> np.ndarray | None:
        """Carry ``arr`` ((h, w) or (C, h, w), any resolution) from frame ``source`` to the newest frame."""
        cmap = self.chain_to(source)
        if cmap is None:
            return None
        if source == self.seq:
            return arr
        return remap_any(arr, cmap)

    def velocity(self) -> np.ndarray | None:
        """Per-pixel motion of the newest frame (px/frame on the flow grid), mean of the last two flows."""
        b = self._flow(self.seq)
        if b is None:
            return None
        b1 = self._flows.get(self.seq - 1)
        v = -b if b1 is None else -(b + b1) * 0.5
        mag = np.sqrt(v[..., 0] ** 2 + v[..., 1] ** 2)
        v[mag < self.deadband] = 0.0
        return v

    def extrapolate(self, alpha: np.ndarray, frames_ahead: float) -> np.ndarray:
        """Move ``alpha`` (h, w float, this frame) ``frames_ahead`` frames along the person's motion.

        Each person is moved by their own motion, measured around them (``PersonMotion``); where
        nobody could be fitted, the dense flow of the whole frame is used.
        """
        if frames_ahead > 0 and self.person_max_width > 0 and self._fine is not None and self._fine_prev is not None \
                and self._fine.shape == self._fine_prev.shape:
            moved = self.person.extrapolate(np.asarray(alpha, np.float32), self._fine, self._fine_prev, frames_ahead,
                                           self.seq)
            if moved is not None:
                return moved
        v = self.velocity() if frames_ahead > 0 else None
        if v is None or not v.any():
            return alpha
        fh, fw = v.shape[:2]
        a = cv2.resize(alpha, (fw, fh), interpolation=cv2.INTER_AREA) if alpha.shape != (fh, fw) else alpha
        a = np.clip(a, 0.0, 1.0).astype(np.float32)
        # spread the person's velocity outward, so pixels they move into follow them too
        k = (max(3, fw // 8) | 1,) * 2
        wsum = cv2.boxFilter(a, -1, k) + 1e-4
        spread = np.dstack([cv2.boxFilter(a * v[..., 0], -1, k), cv2.boxFilter(a * v[..., 1], -1, k)]) / wsum[..., None]
        v_use = a[..., None] * v + (1.0 - a[..., None]) * spread
        pos = self._identity((fh, fw)) - frames_ahead * v_use
        return remap_any(alpha, pos)


def remap_any(arr: np.ndarray, cmap: np.ndarray) -> np.ndarray:
    """Sample ``arr`` ((h, w) or (C, h, w)) at a flow-grid coordinate map, at ``arr``'s own resolution."""
    chw = arr.ndim == 3
    h, w = arr.shape[-2:]
    fh, fw = cmap.shape[:2]
    if (fh, fw) != (h, w):
        sx, sy = w / fw, h / fh
        m = cv2.resize(cmap, (w, h), interpolation=cv2.INTER_LINEAR)
        mx = (m[..., 0] + 0.5) * sx - 0.5
        my = (m[..., 1] + 0.5) * sy - 0.5
    else:
        mx, my = cmap[..., 0], cmap[..., 1]
    src = np.ascontiguousarray(np.moveaxis(arr, 0, -1)) if chw else arr
    if src.dtype != np.float32:
        src = src.astype(np.float32)
    out = cv2.remap(src, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if chw:
        out = out.reshape(h, w, -1)
        return np.ascontiguousarray(np.moveaxis(out, -1, 0))
    return out
