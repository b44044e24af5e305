"""Ground-truth clips: shipped cutouts moving over a moving background, truth exact.

Every clip opens with a static part (nothing moves but the sensor noise, so
flicker is the engine's own instability) followed by a moving part (sway, bob, zoom, tilt: lag shows up as IoU
loss).  Motion is a function of *seconds*, so a short test clip moves exactly
as fast as the full one.

To add a clip: write a builder that calls :func:`motion_clip` with one
:class:`Person` per person (a cutout name and a ``t -> Placement`` function) and
add one line to ``CLIPS``.  Builders take keyword arguments only and have
defaults for all of them, so ``CLIPS[name]()`` is the full clip and
``get_clip(name, static=10, moving=30, size=(320, 240))`` a short test one.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Callable

import cv2
import numpy as np

from ..errors import BadInput
from .clip import Clip
from .footage import FOOTAGE  # moving backgrounds, fast, small, edge-cut and crossing people
from .framings import FRAMINGS  # framing clips: real photos, full bodies
from .groundtruth import Cutout, Placement, add_sensor_noise, compose, place, textured_background
from .random_scenes import is_random, random_scene  # random-<seed>: scenes nobody tuned on

#: seconds since the moving part started (0 during the static opening) -> placement
Motion = Callable[[float], Placement]
#: seconds -> background offset (dx, dy) as fractions of the frame size
Pan = Callable[[float], tuple[float, float]]


@dataclass
class Person:
    cutout: str  # name in data/cutouts
    motion: Motion


def _still_pan(t: float) -> tuple[float, float]:
    return (0.0, 0.0)


@functools.lru_cache(maxsize=4)
def _cutout(name: str) -> Cutout:
    return Cutout.load(name)


def motion_clip(name: str, description: str, people: list[Person], *, size: tuple[int, int] = (640, 480),
                static: int = 30, moving: int = 120, fps: float = 30.0, pan: Pan = _still_pan,
                seed: int = 3, noise: float = 2.0) -> Clip:
    """Render ``static`` still frames then ``moving`` frames of ``people`` over a panned texture.

    ``noise``: standard deviation (grey levels) of per-frame Gaussian sensor noise,
    so no two frames are bit-identical, as with any camera.
    """
    if static < 2 or moving < 2:
        raise BadInput("a clip needs at least 2 static and 2 moving frames")
    W, H = size
    margin = int(0.25 * max(W, H))
    bg = textured_background(W + 2 * margin, H + 2 * margin, seed)
    T = static + moving
    frames = np.empty((T, H, W, 3), np.uint8)
    truth = np.empty((T, H, W), np.uint8)
    cuts = [_cutout(p.cutout) for p in people]
    rng = np.random.default_rng(seed + 1)
    for i in range(T):
        t = max(0, i - static + 1) / fps  # the first moving frame already moved one step
        dx, dy = pan(t)
        centre = (margin + W / 2.0 + dx * W, margin + H / 2.0 + dy * H)
        back = cv2.getRectSubPix(bg, (W, H), centre)
        layers = [place(c, p.motion(t), size) for c, p in zip(cuts, people)]
        frame, truth[i] = compose(back, layers)
        frames[i] = add_sensor_noise(frame, rng, noise)
    return Clip(name, frames, truth, fps, range(0, static), range(static, T), description)



# --------------------------------------------------------------------------- motions
def _sin(t: float, period: float) -> float:
    return math.sin(2.0 * math.pi * t / period)


def _slow_pan(t: float) -> tuple[float, float]:
    """A hand-held camera drifting: a few percent of the frame per second."""
    return (0.06 * _sin(t, 5.0), 0.03 * _sin(t, 3.7))


def _bust(name: str, description: str, cutout: str, motion: Motion) -> Callable[..., Clip]:
    """A builder for one person's bust over the drifting texture."""
    def build(**kw: Any) -> Clip:
        return motion_clip(name, description, [Person(cutout, motion)], pan=_slow_pan, **kw)
    return build


def two_people(**kw: Any) -> Clip:
    size = kw.setdefault("size", (854, 480))  # 16:9: two busts side by side fit without touching
    h = min(0.76, 0.40 * size[0] / size[1])  # a narrower frame: people further from the camera

    def left(t: float) -> Placement:
        return Placement(cx=0.25 + 0.04 * _sin(t, 2.2), bottom=1.02, height=h, angle=3.0 * _sin(t, 2.2))

    def right(t: float) -> Placement:
        return Placement(cx=0.76 - 0.03 * _sin(t, 1.8), bottom=1.03 + 0.03 * _sin(t, 1.3), height=h * 1.04)
    return motion_clip("two-people", "two busts side by side (16:9) swaying against each other",
                       [Person("astronaut", left), Person("grace_hopper", right)], pan=_slow_pan, **kw)


__all__ = ["CLIPS", "Clip", "get_clip", "motion_clip"]

#: clip name -> builder (keyword arguments only: size, static, moving, fps)
CLIPS: dict[str, Callable[..., Clip]] = {
    "sway": _bust("sway", "bust swaying left-right (±12 % width, 0.5 Hz), camera drifting", "astronaut",
                  lambda t: Placement(cx=0.5 + 0.12 * _sin(t, 2.0), bottom=1.02, height=0.92,
                                      angle=4.0 * _sin(t, 2.0))),
    "bob": _bust("bob", "bust bobbing up-down (±6 % height, 0.8 Hz)", "grace_hopper",
                 lambda t: Placement(cx=0.5 + 0.04 * _sin(t, 2.4), bottom=1.06 + 0.06 * _sin(t, 1.2), height=0.9)),
    "zoom": _bust("zoom", "bust leaning into the camera and back (height 0.85 -> 1.15, 3 s period)", "astronaut",
                  lambda t: Placement(cx=0.5 + 0.05 * _sin(t, 3.0), bottom=1.02,
                                      height=0.85 + 0.15 * (1 - math.cos(2 * math.pi * t / 3.0)))),
    "tilt": _bust("tilt", "bust tilting side to side (±10°, 0.5 Hz)", "grace_hopper",
                  lambda t: Placement(cx=0.5 + 0.03 * _sin(t, 2.0), bottom=1.03, height=0.9,
                                      angle=10.0 * _sin(t, 2.0))),
    "two-people": two_people,
}
CLIPS.update(FRAMINGS)
CLIPS.update(FOOTAGE)


@functools.lru_cache(maxsize=8)
def _cached(name: str, items: tuple) -> Clip:
    return random_scene(name, **dict(items)) if is_random(name) else CLIPS[name](**dict(items))


def get_clip(name: str, **kw) -> Clip:
    """Build (or reuse) a registered clip; arrays are shared: do not modify them."""
    if name not in CLIPS and not is_random(name):
        raise BadInput(f"unknown clip {name!r}; choose from: {', '.join(CLIPS)}, or random-<seed>")
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in kw.items() if v is not None}
    clip = _cached(name, tuple(sorted(kw.items())))
    clip.frames.flags.writeable = False
    clip.truth.flags.writeable = False
    return clip
