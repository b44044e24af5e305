"""Random scenes for measuring on footage nobody tuned on: ``random-<seed>`` clips.

The named clips were each looked at while the engines and the motion compensation were built, so they
flatter them.  A random scene draws, from its seed alone, who is in it (one or two of the full bodies and
busts, at any size from a small full body to a bust cut by the frame's bottom), how they move (walking,
swaying and leaning up to 8 degrees, zooming), the background (opencv-doc photos no named clip uses,
panned, or the playing tree video) and the frame size (640x480, 854x480, 1280x720).  The same seed gives
the same clip on every machine; a new seed is a scene nobody has seen.  Report them apart from the named
clips (docs/evaluation.md).
"""
from __future__ import annotations

import math
import re
from typing import Any, Callable

import numpy as np

from ..errors import BadInput
from .clip import Clip
from .footage import panned_photo, playing_video, render
from .framings import bust_cutout, fullbody_cutout
from .groundtruth import Cutout, Placement

#: photographs without people that no named clip uses (opencv-doc)
PHOTOS = ("aero1.jpg", "aero3.jpg", "board.jpg", "stuff.jpg", "ela_original.jpg", "rubberwhale1.png",
          "graf3.png", "starry_night.jpg", "fruits.jpg", "baboon.jpg", "squirrel_cls.jpg", "aloeR.jpg")
FULL_BODIES = ("basketball", "messi", "catcher")
BUSTS = ("astronaut", "grace_hopper")
KINDS = ("full", "full", "bust", "two_full", "full_bust", "two_bust")
WHO = {"full": "a whole body", "bust": "a bust", "two_full": "two whole bodies",
       "full_bust": "a whole body and a bust", "two_bust": "two busts"}
SIZES = ((640, 480), (854, 480), (1280, 720))
NAME = re.compile(r"random-(\d{1,9})")
RANGE = re.compile(r"random-(\d{1,9})\.\.(\d{1,9})")
#: scenes one ``random-<first>..<last>`` may name
MAX_RANGE = 1000

Motion = Callable[[float], Placement]


def is_random(name: str) -> bool:
    return NAME.fullmatch(name) is not None


def expand_random(names: list[str]) -> list[str]:
    """``random-<first>..<last>`` as the scenes it names, in order; other names as they are."""
    out: list[str] = []
    for name in names:
        m = RANGE.fullmatch(name)
        if m is None:
            out.append(name)
            continue
        first, last = int(m.group(1)), int(m.group(2))
        if not 0 <= last - first < MAX_RANGE:
            raise BadInput(f"{name}: give a first seed no greater than the last, at most {MAX_RANGE} scenes")
        out += [f"random-{k}" for k in range(first, last + 1)]
    return out


def random_scene(name: str, static: int = 10, moving: int = 90, fps: float = 30.0, **_: Any) -> Clip:
    """The scene ``random-<seed>``: ``static`` still frames, then ``moving`` frames (``size`` is the seed's)."""
    m = NAME.fullmatch(name)
    if m is None:
        raise BadInput(f"{name!r} is not a random scene; name one random-<seed>, e.g. random-170")
    r = np.random.default_rng(int(m.group(1)))
    size = SIZES[int(r.integers(len(SIZES)))]
    kind = KINDS[int(r.integers(len(KINDS)))]
    # draws in a fixed order: a scene does not change when a later draw does
    background = int(r.integers(4))
    amp, period = float(r.uniform(0.02, 0.15)), float(r.uniform(2.0, 6.0))
    if background < 3:
        photo = PHOTOS[int(r.integers(len(PHOTOS)))]
        bg = panned_photo(photo, size, lambda t: (amp * math.sin(2 * math.pi * t / period),
                                                  0.3 * amp * math.sin(2 * math.pi * t / (0.7 * period))))
        where = photo
    else:
        bg = playing_video("tree.avi", size, lambda t: (amp * math.sin(2 * math.pi * t / period), 0.0))
        where = "tree.avi"
    cutouts: list[Cutout] = []
    motions: list[Motion] = []
    if kind == "full":
        cutouts, motions = [fullbody_cutout(_pick(r, FULL_BODIES))], [_walker(r)]
    elif kind == "bust":
        cutouts, motions = [bust_cutout(_pick(r, BUSTS))], [_leaner(r, float(r.uniform(0.35, 0.65)))]
    elif kind == "two_full":
        a, b = (int(k) for k in r.choice(len(FULL_BODIES), 2, replace=False))
        cutouts = [fullbody_cutout(FULL_BODIES[a]), fullbody_cutout(FULL_BODIES[b])]
        motions = [_walker(r), _walker(r)]
    elif kind == "full_bust":  # somebody further back, and a bust nearer the camera (drawn over them)
        cutouts = [fullbody_cutout(_pick(r, FULL_BODIES)), bust_cutout(_pick(r, BUSTS))]
        motions = [_walker(r), _leaner(r, float(r.choice([0.25, 0.75])))]
    else:
        cutouts = [bust_cutout("astronaut"), bust_cutout("grace_hopper")]
        motions = [_leaner(r, 0.3), _leaner(r, 0.7)]
    return render(name, f"random scene: {WHO[kind]} over {where}, {size[0]}x{size[1]}", cutouts,
                  lambda t: [m(t) for m in motions], bg, size=size, static=static, moving=moving, fps=fps)


def _pick(r: np.random.Generator, names: tuple[str, ...]) -> str:
    return names[int(r.integers(len(names)))]


def _walker(r: np.random.Generator) -> Motion:
    """A full body, small to frame-filling, walking to and fro (up to a quarter of the width a second),
    swaying about their feet and zooming."""
    height, x0, speed = float(r.uniform(0.3, 0.95)), float(r.uniform(0.2, 0.8)), float(r.uniform(-0.25, 0.25))
    sway, period, zoom = float(r.uniform(0, 8)), float(r.uniform(0.6, 2.0)), float(r.uniform(-0.15, 0.15))
    bottom = float(r.uniform(0.9, 1.0) if height < 0.85 else r.uniform(0.95, 1.1))

    def at(t: float) -> Placement:
        x = 0.1 + abs(((x0 + speed * t - 0.1) % 1.6) - 0.8)  # to and fro between 0.1 and 0.9
        return Placement(x, bottom, height * (1 + zoom * math.sin(t)), sway * math.sin(2 * math.pi * t / period))
    return at


def _leaner(r: np.random.Generator, cx: float) -> Motion:
    """A bust around ``cx``, cut by the frame's bottom, leaning (up to 10 degrees), swaying and zooming."""
    height, lean, period = float(r.uniform(0.7, 1.1)), float(r.uniform(0, 10)), float(r.uniform(0.8, 2.5))
    sway, zoom, bottom = float(r.uniform(0.0, 0.15)), float(r.uniform(0, 0.15)), float(r.uniform(1.0, 1.15))

    def at(t: float) -> Placement:
        return Placement(cx + sway * math.sin(2 * math.pi * t / (1.3 * period)), bottom,
                         height * (1 + zoom * math.sin(t)), lean * math.sin(2 * math.pi * t / period))
    return at
