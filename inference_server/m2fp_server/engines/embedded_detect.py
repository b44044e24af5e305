"""MediaPipe's pose detector (``pose_detection.tflite``, Apache-2.0): where are the people, how big.

The selfie models miss people that are small in the frame; the pose landmark
model segments one person well but only inside a region around that person.
This detector supplies those regions.  It is a BlazePose SSD: 2254 anchors on a
224x224 letterboxed input; each hit gives a box and four keypoints: the hip
centre, a point on the circle that holds the whole body, the shoulder centre
and a point on the upper-body circle.  The anchor layout and decoding follow
MediaPipe's ``pose_detection_cpu.pbtxt`` settings (5 layers, strides
8/16/32/32/32, two fixed-size anchors per cell).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from .selfie import MODELS_DIR, load_interpreter

DETECT_FILE = "pose_detection.tflite"
INPUT = 224


def _anchors() -> np.ndarray:
    """(2254, 2) anchor centres in [0, 1] (x, y), in the model's output order."""
    centres = []
    for stride, layers in ((8, 1), (16, 1), (32, 3)):
        n = INPUT // stride
        ys, xs = np.mgrid[0:n, 0:n]
        c = np.stack([(xs + 0.5) / n, (ys + 0.5) / n], -1).reshape(-1, 1, 2)
        centres.append(np.repeat(c, 2 * layers, axis=1).reshape(-1, 2))
    return np.concatenate(centres).astype(np.float32)


@dataclass
class Person:
    """One detection in frame pixels."""

    score: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 (the detector's face-anchored box)
    hips: tuple[float, float]
    body_radius: float  # radius of the circle around the whole body, centred on the hips
    shoulders: tuple[float, float]

    def body_box(self) -> tuple[float, float, float, float]:
        """Where the whole body would be, even if the frame cuts it."""
        x, y = self.hips
        r = self.body_radius
        return (x - r, y - r, x + r, y + r)


class PoseDetector:
    def __init__(self, path: Path | None = None, threads: int = 1, min_score: float = 0.5,
                 backend: str | None = None) -> None:
        self._it = load_interpreter(path or MODELS_DIR / DETECT_FILE, threads, backend)
        self._in = self._it.get_input_details()[0]["index"]
        outs = {tuple(d["shape"]): d["index"] for d in self._it.get_output_details()}
        self._boxes = outs[(1, 2254, 12)]
        self._scores = outs[(1, 2254, 1)]
        self._anchors = _anchors()
        self.min_score = min_score
        self._buf = np.empty((1, INPUT, INPUT, 3), np.float32)

    def __call__(self, rgb: np.ndarray, max_people: int = 4) -> list[Person]:
        H, W = rgb.shape[:2]
        s = INPUT / max(W, H)
        w, h = max(1, round(W * s)), max(1, round(H * s))
        ox, oy = (INPUT - w) // 2, (INPUT - h) // 2
        small = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        self._buf.fill(-1.0)  # letterbox bars are black in [-1, 1]
        self._buf[0, oy:oy + h, ox:ox + w] = small * np.float32(2.0 / 255.0) - 1.0
        self._it.set_tensor(self._in, self._buf)
        self._it.invoke()
        raw = self._it.get_tensor(self._boxes)[0]
        logits = self._it.get_tensor(self._scores)[0, :, 0]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -80.0, 80.0)))
        keep = np.nonzero(scores >= self.min_score)[0]
        if keep.size == 0:
            return []
        a = self._anchors[keep]
        r = raw[keep] / INPUT
        cx, cy = r[:, 0] + a[:, 0], r[:, 1] + a[:, 1]
        boxes = np.stack([cx - r[:, 2] / 2, cy - r[:, 3] / 2, cx + r[:, 2] / 2, cy + r[:, 3] / 2], 1)
        kps = r[:, 4:12].reshape(-1, 4, 2) + a[:, None, :]

        def to_frame(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return (x * INPUT - ox) / s, (y * INPUT - oy) / s

        bx0, by0 = to_frame(boxes[:, 0], boxes[:, 1])
        bx1, by1 = to_frame(boxes[:, 2], boxes[:, 3])
        kx, ky = to_frame(kps[..., 0], kps[..., 1])
        order = _nms(np.stack([bx0, by0, bx1, by1], 1), scores[keep], 0.3)[:max_people]
        people = []
        for i in order:
            radius = float(np.hypot(kx[i, 1] - kx[i, 0], ky[i, 1] - ky[i, 0]))
            people.append(Person(float(scores[keep][i]), (float(bx0[i]), float(by0[i]), float(bx1[i]), float(by1[i])),
                                 (float(kx[i, 0]), float(ky[i, 0])), radius, (float(kx[i, 2]), float(ky[i, 2]))))
        return people

    def on_tiles(self, rgb: np.ndarray) -> list[Person]:
        """Detections on a wide frame's left and right squares (overlapping), in frame coordinates.

        The detector letterboxes its input to 224x224, so a small person in a wide frame gets few
        pixels; a square tile gives them twice as many.
        """
        H, W = rgb.shape[:2]
        return self.on_tile(rgb, 0) + self.on_tile(rgb, W - H)

    def on_tile(self, rgb: np.ndarray, x0: int) -> list[Person]:
        """Detections on the square of the frame starting at column ``x0``, in frame coordinates."""
        return self.on_square(rgb, x0, 0, rgb.shape[0])

    def on_square(self, rgb: np.ndarray, x0: int, y0: int, side: int) -> list[Person]:
        """Detections on the square of ``side`` pixels at (``x0``, ``y0``) (inside the frame), in frame
        coordinates."""
        people = []
        for p in self(np.ascontiguousarray(rgb[y0:y0 + side, x0:x0 + side])):
            bx0, by0, bx1, by1 = p.box
            people.append(replace(p, box=(bx0 + x0, by0 + y0, bx1 + x0, by1 + y0),
                                  hips=(p.hips[0] + x0, p.hips[1] + y0),
                                  shoulders=(p.shoulders[0] + x0, p.shoulders[1] + y0)))
        return people


class FrameDetections:
    """One frame's detector answers, each computed once: when first asked, or ahead of time on another
    thread (``EmbeddedSettings.detect_lag``), with the decisions taken later on a newer frame.

    ``frame`` is the stream's frame number of the picture detected; ``tiles_planned`` says whether the
    frame's decisions were to look at both tiles (decided when it was handed to the thread, so a decision
    taken later does not wait for a tile nobody computed); None = decided when asked.  ``along``: the
    frame with the people followed painted out and the square along their row the decisions will look at
    (``EmbeddedEngine._alongside``), when that was planned too.  ``posed``: the pose model's presence score
    on that square, when it was looked at on the thread too (``ahead``); None = not looked at.
    """

    def __init__(self, detect: PoseDetector, rgb: np.ndarray, frame: int,
                 tiles_planned: bool | None = None,
                 along: tuple[np.ndarray, tuple[int, int, int]] | None = None) -> None:
        self._detect = detect
        self.rgb, self.frame, self.tiles_planned = rgb, frame, tiles_planned
        self._painted = None if along is None else along[0]
        self.along_planned = None if along is None else along[1]
        self._along: dict[tuple[int, int, int], list[Person]] = {}
        self.posed: float | None = None
        self._whole: list[Person] | None = None
        self._tiles: list[Person] | None = None
        self._tile: dict[int, list[Person]] = {}

    def whole(self) -> list[Person]:
        """The whole (letterboxed) frame's detections."""
        if self._whole is None:
            self._whole = self._detect(self.rgb, max_people=6)
        return self._whole

    def tiles(self) -> list[Person]:
        """Both squares' detections (``PoseDetector.on_tiles``)."""
        if self._tiles is None:
            self._tiles = self.tile(0) + self.tile(self.rgb.shape[1] - self.rgb.shape[0])
        return self._tiles

    def tile(self, x0: int) -> list[Person]:
        """One square's detections (``PoseDetector.on_tile``)."""
        if x0 not in self._tile:
            self._tile[x0] = self._detect.on_tile(self.rgb, x0)
        return self._tile[x0]

    def along(self, square: tuple[int, int, int], painted: Callable[[], np.ndarray]) -> list[Person]:
        """One square's detections (x0, y0, side) on the frame with the people followed painted out
        (``painted`` makes it when it was not planned)."""
        if square not in self._along:
            self._along[square] = self._detect.on_square(self.painted(painted), *square)
        return self._along[square]

    def painted(self, make: Callable[[], np.ndarray]) -> np.ndarray:
        """The frame with the people followed painted out, made once (by ``make`` when not planned)."""
        if self._painted is None:
            self._painted = make()
        return self._painted

    def ahead(self, detect: PoseDetector, squares: Sequence[int],
              presence: Callable[[np.ndarray, tuple[int, int, int]], float] | None = None) -> FrameDetections:
        """Compute the whole frame's and these squares' detections with ``detect`` (another instance of the
        same model: one instance is not to be run from two threads at once), and the square along the row
        if one was planned, with ``presence`` (the pose model's score on a square of the painted frame, its
        own instance too) as well."""
        own, self._detect = self._detect, detect
        try:
            self.whole()
            for x0 in squares:
                self.tile(x0)
            if self.along_planned is not None and self._painted is not None:
                painted = self._painted
                self.along(self.along_planned, lambda: painted)
                if presence is not None:
                    self.posed = presence(painted, self.along_planned)
        finally:
            self._detect = own
        return self


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes (0 when both are empty)."""
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _nms(boxes: np.ndarray, scores: np.ndarray, iou_max: float) -> list[int]:
    order = list(np.argsort(-scores))
    keep: list[int] = []
    while order:
        i = order.pop(0)
        keep.append(int(i))
        rest = []
        for j in order:
            if box_iou(boxes[i], boxes[j]) <= iou_max:
                rest.append(j)
        order = rest
    return keep
