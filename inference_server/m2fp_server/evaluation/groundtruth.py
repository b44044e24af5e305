"""Exact ground truth from public-domain portraits.

No real footage with masks exists offline, but exact truth can be built: cut a
person out of a portrait once (model mask, largest component, holes filled), then
composite the cutout over a moving background with a known transform per frame.
The transformed cutout alpha *is* the ground truth of every frame.

A cutout made by a model biases that model's own score upward: fine for
regression, stability and lag measurements, stated wherever figures are quoted.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from ..errors import BadInput, MissingFile
from ..samples import DATA_DIR, portrait
from .clip import Clip

CUTOUT_DIR = DATA_DIR / "cutouts"


@dataclass
class Cutout:
    rgb: np.ndarray  # (h, w, 3) uint8
    alpha: np.ndarray  # (h, w) uint8, 0 or 255

    @classmethod
    def load(cls, name: str) -> "Cutout":
        path = CUTOUT_DIR / f"{name}.png"
        bgra = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if bgra is None or bgra.ndim != 3 or bgra.shape[2] != 4:
            raise MissingFile(f"cutout {path} is missing or not RGBA")
        rgba = cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA)
        return cls(np.ascontiguousarray(rgba[..., :3]), np.where(rgba[..., 3] > 127, 255, 0).astype(np.uint8))

    def save(self, path: Path) -> None:
        cv2.imwrite(str(path), cv2.cvtColor(np.dstack([self.rgb, self.alpha]), cv2.COLOR_RGBA2BGRA))


def clean_mask(prob: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Largest connected component with its holes filled, as 0/255."""
    binary = (prob >= threshold).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if n <= 1:
        return np.zeros_like(binary)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    comp = (labels == largest).astype(np.uint8)
    # fill holes: flood the background from a padded border, the rest is the person
    padded = np.pad(comp, 1)
    flood = padded.copy()
    mask = np.zeros((padded.shape[0] + 2, padded.shape[1] + 2), np.uint8)
    cv2.floodFill(flood, mask, (0, 0), 1)
    holes = (flood == 0)[1:-1, 1:-1]
    return ((comp | holes) * 255).astype(np.uint8)


def make_cutout(rgb: np.ndarray, person_prob: Callable[[np.ndarray], np.ndarray]) -> Cutout:
    prob = person_prob(rgb)
    prob = cv2.resize(prob, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    return Cutout(rgb.copy(), clean_mask(prob))


# --------------------------------------------------------------------------- backgrounds
def textured_background(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A busy, person-free RGB texture (smooth colour noise + shapes), larger than any frame."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (max(2, height // 40), max(2, width // 40), 3), dtype=np.uint8)
    img = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(40):
        color = tuple(int(c) for c in rng.integers(0, 255, 3))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        if rng.random() < 0.5:
            cv2.rectangle(img, (x, y), (x + int(rng.integers(20, 200)), y + int(rng.integers(20, 200))), color, -1)
        else:
            cv2.circle(img, (x, y), int(rng.integers(10, 90)), color, -1)
    return cv2.GaussianBlur(img, (3, 3), 0)


# --------------------------------------------------------------------------- placement
@dataclass
class Placement:
    """Where a cutout sits in one frame: centre-bottom anchor, scale, rotation (degrees)."""

    cx: float  # anchor x as a fraction of the frame width
    bottom: float  # bottom edge as a fraction of the frame height (1.0 = touches the bottom)
    height: float  # person height as a fraction of the frame height
    angle: float = 0.0


def place(cutout: Cutout, p: Placement, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Warp a cutout into a (W, H) frame: returns (rgb, alpha float 0..1) layers."""
    W, H = size
    ch, cw = cutout.alpha.shape
    s = p.height * H / ch
    ax, ay = cw / 2.0, float(ch)  # anchor: bottom centre of the cutout
    tx, ty = p.cx * W, p.bottom * H
    m = cv2.getRotationMatrix2D((ax, ay), p.angle, s)
    m[0, 2] += tx - ax
    m[1, 2] += ty - ay
    rgb = cv2.warpAffine(cutout.rgb, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    a = cv2.warpAffine(cutout.alpha, m, (W, H), flags=cv2.INTER_LINEAR, borderValue=0)
    return rgb, a.astype(np.float32) / 255.0


def compose(background: np.ndarray, layers: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Stack layers over a background; returns (frame RGB, ground truth 0/1 uint8)."""
    out = background.astype(np.float32)
    gt = np.zeros(background.shape[:2], np.float32)
    for rgb, a in layers:
        out = rgb * a[..., None] + out * (1.0 - a[..., None])
        gt = np.maximum(gt, a)
    return (out + 0.5).astype(np.uint8), (gt >= 0.5).astype(np.uint8)


def add_sensor_noise(frame: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Gaussian grain (grey levels), so no two frames of a still scene are bit-identical."""
    if sigma <= 0:
        return frame
    grain = rng.standard_normal(frame.shape, dtype=np.float32)
    grain *= sigma
    grain += frame
    np.clip(grain, 0, 255, out=grain)
    return np.rint(grain)


def render_clip(name: str, description: str, cutouts: Sequence[Cutout],
                motion: Callable[[float], list[Placement]], background: Callable[[float], np.ndarray], *,
                size: tuple[int, int], static: int, moving: int, fps: float, noise: float, seed: int) -> Clip:
    """``static`` still frames (flicker), then ``moving`` frames (lag), each with its own sensor noise;
    the truth is the warped cutouts.  ``background(t)`` gives the frame behind them at time ``t``."""
    if static < 2 or moving < 2:
        raise BadInput("a clip needs at least 2 static and 2 moving frames")
    W, H = size
    T = static + moving
    frames = np.empty((T, H, W, 3), np.uint8)
    truth = np.empty((T, H, W), np.uint8)
    rng = np.random.default_rng(seed)
    for k in range(T):
        t = max(0, k - static + 1) / fps  # the first moving frame already moved one step
        frame, truth[k] = compose(background(t), [place(c, p, size) for c, p in zip(cutouts, motion(t))])
        frames[k] = add_sensor_noise(frame, rng, noise)
    return Clip(name, frames, truth, fps, range(0, static), range(static, T), description)


def still(name: str = "astronaut", size: tuple[int, int] = (640, 480), placement: Placement | None = None,
          seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """One composite frame of a shipped cutout over a texture: (rgb, truth)."""
    W, H = size
    bg = textured_background(W, H, seed)
    p = placement or Placement(cx=0.5, bottom=1.0, height=0.9)
    return compose(bg, [place(Cutout.load(name), p, size)])


def _build_cutouts() -> None:  # pragma: no cover - run once by a developer, results committed
    """python -m m2fp_server.evaluation.groundtruth  (rebuilds data/cutouts with the selfie model)."""
    from ..engines.selfie import SelfieEngine
    eng = SelfieEngine()
    CUTOUT_DIR.mkdir(exist_ok=True)
    for name in ("astronaut", "grace_hopper"):
        rgb = portrait(name)
        cut = make_cutout(rgb, lambda x: eng.infer(x).probs[1])
        cut.save(CUTOUT_DIR / f"{name}.png")


if __name__ == "__main__":  # pragma: no cover
    _build_cutouts()
