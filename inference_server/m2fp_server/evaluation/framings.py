"""Ground-truth clips for each framing a user may have: bust, two people, full body, small full body.

The busts are the shipped public-domain cutouts (``data/cutouts``).  No
public-domain full-body photograph ships with any package reachable here, so the
full-body people come from Debian's ``opencv-doc`` sample images
(``basketball1.png``: a man standing, grey; ``messi5.jpg``: a footballer in a
wide kicking pose, colour), and so do the people-free background photos (a room,
a street, a building front: the synthetic texture of ``groundtruth`` is far
harder than a real scene for every model).  Their licence is unclear, so they are never
committed: :func:`opencv_doc_file` finds them on the system or fetches the
package with ``apt-get download`` at test time, and the cutouts are cached
under ``~/.cache/m2fp-obs``.

The full-body cutouts are made so that no single shipped model is favoured: the
pose model's and the general selfie model's masks are averaged into a trimap
that GrabCut (colour statistics, no network) refines at full resolution; the
result overlaps each model's own mask only partly (docs/engines.md).

Every clip opens with a static part (flicker) and then moves (lag); people in
the full-body clips touch no frame edge.
"""
from __future__ import annotations

import logging
import math
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ..errors import MissingFile
from .clip import Clip
from .groundtruth import Cutout, Placement, clean_mask, render_clip, textured_background

log = logging.getLogger(__name__)

OPENCV_DOC_DIRS = (Path("/usr/share/doc/opencv-doc/examples/data"),)
CACHE_DIR = Path(os.environ.get("M2FP_CACHE_DIR", Path.home() / ".cache" / "m2fp-obs"))
FETCH_HINT = ("apt-get download opencv-doc && dpkg-deb --fsys-tarfile opencv-doc_*.deb | tar -x "
              "./usr/share/doc/opencv-doc/examples/data  (or: apt-get install opencv-doc)")


def opencv_doc_file(name: str) -> Path:
    """Path of an ``opencv-doc`` sample; fetched once into the cache when not installed."""
    cached = CACHE_DIR / "opencv-doc" / name
    for d in (*OPENCV_DOC_DIRS, cached.parent):
        if (d / name).is_file():
            return d / name
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise MissingFile(f"opencv-doc sample {name} not found; fetch it with: {FETCH_HINT}")
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        log.info("fetching opencv-doc (apt-get download) for %s", name)
        r = subprocess.run(["apt-get", "download", "-q", "opencv-doc"], cwd=tmp, capture_output=True, text=True)
        debs = list(Path(tmp).glob("opencv-doc_*.deb"))
        if r.returncode != 0 or not debs:
            raise MissingFile(f"opencv-doc sample {name} not found and apt-get download failed "
                                    f"({r.stderr.strip()[-200:]}); fetch it with: {FETCH_HINT}")
        wanted = sorted(set(SAMPLE_FILES) | {name})  # every sample at once: one download
        members = [f"./usr/share/doc/opencv-doc/examples/data/{n}" for n in wanted]
        deb = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(debs[0])], stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", tmp, *members], stdin=deb.stdout, check=True)
        deb.wait()
        for n, member in zip(wanted, members):
            shutil.copy(Path(tmp) / member, cached.parent / n)
    return cached


def fetch_opencv_doc() -> list[Path]:
    """Make sure every sample the framing clips use is here (CI calls this before the tests)."""
    return [opencv_doc_file(n) for n in SAMPLE_FILES]


# --------------------------------------------------------------------------- full-body cutouts
@dataclass(frozen=True)
class CutoutRecipe:
    file: str
    roi: tuple[float, float, float]  # square region the models see: cx, cy, side (image pixels)
    keep: tuple[int, int, int, int]  # x0, y0, x1, y1: only this person (the image may hold others)


RECIPES = {
    "basketball": CutoutRecipe("basketball1.png", (110, 270, 440), (0, 0, 240, 480)),
    "messi": CutoutRecipe("messi5.jpg", (262, 195, 420), (40, 40, 480, 342)),
    # used by footage.py: the same man in another pose
    "catcher": CutoutRecipe("basketball2.png", (100, 270, 440), (0, 0, 240, 480)),
}
#: real photographs without people, used as backgrounds (webcam-like room, street, building front)
BACKGROUNDS = {"room": "aloeL.jpg", "street": "leuvenA.jpg", "building": "building.jpg", "home": "home.jpg"}
SAMPLE_FILES = sorted({r.file for r in RECIPES.values()} | set(BACKGROUNDS.values()))


def photo_background(name: str, size: tuple[int, int]) -> np.ndarray:
    """An opencv-doc photograph scaled to cover a (W, H) frame, centre-cropped; RGB."""
    bgr = cv2.imread(str(opencv_doc_file(BACKGROUNDS[name])), cv2.IMREAD_COLOR)
    if bgr is None:
        raise MissingFile(f"cannot read background {BACKGROUNDS[name]}")
    W, H = size
    s = max(W / bgr.shape[1], H / bgr.shape[0])
    big = cv2.resize(bgr, (max(W, round(bgr.shape[1] * s)), max(H, round(bgr.shape[0] * s))),
                     interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    y, x = (big.shape[0] - H) // 2, (big.shape[1] - W) // 2
    return np.ascontiguousarray(cv2.cvtColor(big[y:y + H, x:x + W], cv2.COLOR_BGR2RGB))


def _models_probability(rgb: np.ndarray, roi: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    from ..engines.embedded_models import PoseSegmenter, Roi, run_on_roi
    from ..engines.selfie import MODEL_FILES, MODELS_DIR, TFLiteSegmenter
    r = Roi(*roi)
    pose = run_on_roi(rgb, r, PoseSegmenter())
    selfie = run_on_roi(rgb, r, TFLiteSegmenter(MODELS_DIR / MODEL_FILES["general"]))
    return pose, selfie


def build_fullbody_cutout(name: str) -> Cutout:
    """Cut the person out with GrabCut seeded by the average of two models (see module doc)."""
    recipe = RECIPES[name]
    bgr = cv2.imread(str(opencv_doc_file(recipe.file)), cv2.IMREAD_COLOR)
    if bgr is None:
        raise MissingFile(f"cannot read {recipe.file}")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    pose, selfie = _models_probability(rgb, recipe.roi)
    x0, y0, x1, y1 = recipe.keep
    keep = np.zeros(pose.shape, bool)
    keep[y0:y1, x0:x1] = True
    avg = (pose + selfie) / 2 * keep
    trimap = np.full(avg.shape, cv2.GC_BGD, np.uint8)
    trimap[avg > 0.1] = cv2.GC_PR_BGD
    trimap[avg > 0.5] = cv2.GC_PR_FGD
    trimap[(pose > 0.95) & (selfie > 0.95) & keep] = cv2.GC_FGD
    cv2.setRNGSeed(0)
    # OpenCV's stubs want a rectangle, which GC_INIT_WITH_MASK ignores (its docs pass None)
    cv2.grabCut(bgr, trimap, None, np.zeros((1, 65)), np.zeros((1, 65)), 5,  # type: ignore[call-overload]
                cv2.GC_INIT_WITH_MASK)
    alpha = clean_mask(((trimap == cv2.GC_FGD) | (trimap == cv2.GC_PR_FGD)).astype(np.float32))
    ys, xs = np.nonzero(alpha)
    pad = 4
    bx0, by0 = max(0, xs.min() - pad), max(0, ys.min() - pad)
    bx1, by1 = min(rgb.shape[1], xs.max() + 1 + pad), min(rgb.shape[0], ys.max() + 1 + pad)
    # crop to the person so Placement.height is the person's height and the anchor is the feet
    return Cutout(np.ascontiguousarray(rgb[by0:by1, bx0:bx1]), np.ascontiguousarray(alpha[by0:by1, bx0:bx1]))


def fullbody_cutout(name: str) -> Cutout:
    """Cached :func:`build_fullbody_cutout` (the cache holds derived images of unclear licence: never ship it)."""
    path = CACHE_DIR / "cutouts" / f"{name}.png"
    if path.is_file():
        bgra = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if bgra is not None and bgra.ndim == 3 and bgra.shape[2] == 4:
            rgba = cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA)
            return Cutout(np.ascontiguousarray(rgba[..., :3]), np.where(rgba[..., 3] > 127, 255, 0).astype(np.uint8))
    cut = build_fullbody_cutout(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    cut.save(path)
    return cut


def bust_cutout(name: str) -> Cutout:
    """A shipped bust cropped to its mask (so ``height`` in a Placement is the person's)."""
    cut = Cutout.load(name)
    ys, xs = np.nonzero(cut.alpha)
    x0, x1 = xs.min(), xs.max() + 1
    y0 = ys.min()
    return Cutout(np.ascontiguousarray(cut.rgb[y0:, x0:x1]), np.ascontiguousarray(cut.alpha[y0:, x0:x1]))


# --------------------------------------------------------------------------- clips
#: seconds since the motion began -> one placement per person
Motion = Callable[[float], list[Placement]]


def _render(name: str, description: str, cutouts: list[Cutout], motion: Motion, background: str, *,
            size: tuple[int, int], static: int, moving: int, fps: float, noise: float = 2.0,
            seed: int = 5) -> Clip:
    """Render ``static`` still frames then ``moving`` frames, with per-frame sensor noise like ``clips``.

    ``background``: a BACKGROUNDS key, or "texture:<seed>" for the synthetic busy texture.
    """
    W, H = size
    if background.startswith("texture:"):
        bg = textured_background(W, H, int(background.split(":")[1]))
    else:
        bg = photo_background(background, size)
    return render_clip(name, description, cutouts, motion, lambda t: bg, size=size, static=static, moving=moving,
                       fps=fps, noise=noise, seed=seed)


def _sin(t: float, period: float) -> float:
    return math.sin(2.0 * math.pi * t / period)


@dataclass(frozen=True)
class Framing:
    """One framing clip: who (cutouts, made on first use), how they move, over which photo by default."""

    name: str
    description: str
    cutouts: Callable[[], list[Cutout]]
    motion: Motion
    background: str
    size: tuple[int, int] = (640, 480)

    def __call__(self, *, size: tuple[int, int] | None = None, static: int = 30, moving: int = 90,
                 fps: float = 30.0, background: str | None = None, noise: float = 2.0) -> Clip:
        return _render(self.name, self.description, self.cutouts(), self.motion, background or self.background,
                       size=size or self.size, static=static, moving=moving, fps=fps, noise=noise)


_FRAMINGS = [
    # webcam bust over a real room photo: sway, bob, lean (touches the bottom edge, as webcam shots do)
    Framing("framing-bust", "webcam bust, room photo, sway/bob/lean", lambda: [bust_cutout("astronaut")],
            lambda t: [Placement(0.5 + 0.10 * _sin(t, 2.0), 1.02 + 0.03 * _sin(t, 0.9),
                                 0.92 + 0.04 * _sin(t, 3.0), 6.0 * _sin(t, 1.6))], "room"),
    # two busts over a real photo, opposite sway; one stands further back
    Framing("framing-two-people", "two busts, building photo, opposite sway",
            lambda: [bust_cutout("grace_hopper"), bust_cutout("astronaut")],
            lambda t: [Placement(0.28 + 0.07 * _sin(t, 1.8), 1.02, 0.62 + 0.03 * _sin(t, 2.5), 4.0 * _sin(t, 1.3)),
                       Placement(0.72 - 0.07 * _sin(t, 1.8), 1.02 + 0.02 * _sin(t, 0.8), 0.85,
                                 -5.0 * _sin(t, 1.7))], "home"),
    # a standing man 80 % of the frame high, touching no edge, swept sideways fast
    Framing("framing-full-body", "full body (opencv-doc basketball1), street photo, fast sideways sweep, "
            "no edge touched", lambda: [fullbody_cutout("basketball")],
            lambda t: [Placement(0.5 + 0.24 * _sin(t, 1.5), 0.93 + 0.02 * _sin(t, 0.5), 0.80, 5.0 * _sin(t, 1.1))],
            "street"),
    # a footballer in a wide pose, 38 % of a 16:9 frame high, touching no edge, moving across
    Framing("framing-small-body", "small full body (opencv-doc messi5), 16:9 building photo, moving "
            "across, no edge touched", lambda: [fullbody_cutout("messi")],
            lambda t: [Placement(0.45 + 0.25 * _sin(t, 3.0), 0.82 + 0.03 * _sin(t, 0.7), 0.38, 8.0 * _sin(t, 2.0))],
            "building", (1280, 720)),
]


#: registered into ``clips.CLIPS`` (clip name -> builder, keyword arguments only)
FRAMINGS: dict[str, Callable[..., Clip]] = {f.name: f for f in _FRAMINGS}
