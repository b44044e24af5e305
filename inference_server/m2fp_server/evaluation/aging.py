"""How much a mask loses as it ages, with and without the server's motion compensation.

Live, a mask reaches the viewer one to three frames after the frame it was
computed from; the server moves it ahead along the measured motion
(``predict_frames``).  Two measurements:

* :func:`moved_ahead`: offline, every frame's mask moved ``a`` frames ahead by
  the stream's own ``FlowTracker.extrapolate`` (exactly what the server does)
  and scored against the truth ``a`` frames later.  Deterministic: it measures
  the motion compensation alone, free of scheduling luck;
* :func:`carried`: offline, every frame's mask shown ``a`` frames later as a client
  shows a late mask: moved on by the motion its MASK carries (``carry_offset``);
* :func:`iou_by_age`: a live run's shown masks grouped by how old they were.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable

import cv2
import numpy as np

from m2fp_protocol import MOTION_SCALE, PersonBox, carry_offset, people_offsets

from ..postprocess.mask_motion import carry, carry_people
from ..postprocess.motion import FlowTracker
from .metrics import iou

AGES = (0, 1, 2, 3)


def iou_by_age(alphas: np.ndarray, truth: np.ndarray, mask_age: np.ndarray, frames: Iterable[int],
               ages: Iterable[int] = AGES) -> dict[int, tuple[float, int]]:
    """Age -> (mean IoU, frames) over ``frames``; ages past the last are counted in the last."""
    ages = tuple(ages)
    buckets: dict[int, list[float]] = {a: [] for a in ages}
    for k in frames:
        a = int(mask_age[k])
        if a < 0:
            continue
        buckets[min(a, ages[-1])].append(iou(alphas[k], truth[k]))
    return {a: (float(np.mean(v)) if v else math.nan, len(v)) for a, v in buckets.items()}


def moved_ahead(small_alphas: list[np.ndarray], small_frames: list[np.ndarray], truth: np.ndarray,
                frames: range, ages: Iterable[int] = AGES,
                tracker_factory: Callable[[], FlowTracker] | None = None) -> dict[int, float]:
    """Age -> mean IoU of masks moved ``age`` frames ahead along the flow, scored ``age`` frames later.

    ``small_alphas[k]``: the offline mask (float 0..1) for ``small_frames[k]`` (the frame as sent);
    the result is scored at the truth's size.  Frames whose target falls past ``frames`` are skipped,
    so every age is scored on the same number of frames.
    """
    ages = tuple(ages)
    tracker = tracker_factory() if tracker_factory else FlowTracker(history=2)
    H, W = truth.shape[1:]
    last = frames.stop - max(ages)
    scores: dict[int, list[float]] = {a: [] for a in ages}
    for k, f in enumerate(small_frames):
        tracker.push(f)
        if k >= last:
            continue
        if k < frames.start:
            # the server fits every frame's motion (it knows the speed before); so does this
            tracker.extrapolate(small_alphas[k], 1.0)
            continue
        for a in ages:
            moved = small_alphas[k] if a == 0 else tracker.extrapolate(small_alphas[k], float(a))
            big = cv2.resize(moved, (W, H), interpolation=cv2.INTER_LINEAR)
            scores[a].append(iou((np.clip(big, 0, 1) * 255).astype(np.uint8), truth[k + a]))
    return {a: (float(np.mean(v)) if v else math.nan) for a, v in scores.items()}


def carried(alphas: np.ndarray, motions: list[tuple[float, float]], truth: np.ndarray, frames: range,
            ages: Iterable[int] = (1, 2, 3), people: list[list[PersonBox]] | None = None,
            size: tuple[int, int] = (0, 0)) -> dict[int, tuple[float, float]]:
    """Age -> mean IoU of each mask shown ``age`` frames after its own (held where it is, moved on by its
    motion as the filter's shader does: ``carry_offset``, clamped at the edge), scored against the truth
    there.

    ``alphas``: the offline masks (uint8) at the truth's size; ``motions``: each one's MASK motion;
    ``people``: each one's PEOPLE (boxes in a mask of ``size``; moved person by person where given).
    """
    ages = tuple(ages)
    T = len(alphas)
    last = frames.stop - max(ages)
    held: dict[int, list[float]] = {a: [] for a in ages}
    moved: dict[int, list[float]] = {a: [] for a in ages}
    for k in range(frames.start, min(last, T)):
        mx, my = (round(v * MOTION_SCALE) for v in motions[k])
        for a in ages:
            held[a].append(iou(alphas[k], truth[k + a]))
            if people and people[k]:
                moved_k = carry_people(alphas[k], people_offsets(people[k], size[0], size[1], k + a, k))
            else:
                moved_k = carry(alphas[k], carry_offset(k + a, k, mx, my))
            moved[a].append(iou(moved_k, truth[k + a]))
    return {a: (float(np.mean(held[a])) if held[a] else math.nan, float(np.mean(moved[a])) if moved[a] else math.nan)
            for a in ages}
