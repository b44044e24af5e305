"""Motion compensation on real pictures: a result from an old frame lands where the person is now."""
from __future__ import annotations

import numpy as np
import pytest

from m2fp_server.evaluation.clips import get_clip
from m2fp_server.evaluation.metrics import iou
from m2fp_server.postprocess.motion import FlowTracker


@pytest.fixture(scope="module")
def clip():  # type: ignore[no-untyped-def]
    return get_clip("sway", static=4, moving=24, size=(256, 192))


def _alpha8(a: np.ndarray) -> np.ndarray:
    return (np.clip(a, 0, 1) * 255).astype(np.uint8)


def test_chained_flow_carries_an_old_mask_onto_the_newest_frame(clip) -> None:  # type: ignore[no-untyped-def]
    tr = FlowTracker()
    start = clip.moving_frames.start
    for i in range(start + 12):
        tr.push(clip.frames[i])
    old = clip.truth[start].astype(np.float32)
    now = clip.truth[start + 11]
    held = iou(_alpha8(old), now)
    warped = tr.warp(old, start)
    assert warped is not None and warped.shape == old.shape
    moved = iou(_alpha8(warped), now)
    assert held < 0.9  # the person really moved away from the old mask
    assert moved > 0.92 and moved > held + 0.05


def test_warp_works_at_any_resolution_and_on_class_stacks(clip) -> None:  # type: ignore[no-untyped-def]
    tr = FlowTracker(max_width=128)  # flow on a coarser grid than the mask
    start = clip.moving_frames.start
    for i in range(start + 8):
        tr.push(clip.frames[i])
    probs = np.stack([1.0 - clip.truth[start], clip.truth[start]]).astype(np.float32)
    out = tr.warp(probs, start)
    assert out is not None and out.shape == probs.shape
    assert iou(_alpha8(out[1]), clip.truth[start + 7]) > 0.93
    np.testing.assert_allclose(out.sum(axis=0), 1.0, atol=1e-4)


def test_extrapolation_moves_the_mask_ahead_of_the_person(clip) -> None:  # type: ignore[no-untyped-def]
    tr = FlowTracker()
    start = clip.moving_frames.start
    n = start + 10
    for i in range(n + 1):
        tr.push(clip.frames[i])
    cur = clip.truth[n].astype(np.float32)
    ahead = clip.truth[n + 2]
    predicted = tr.extrapolate(cur, 2.0)
    assert iou(_alpha8(predicted), ahead) > iou(_alpha8(cur), ahead) + 0.01


def test_still_frames_are_not_moved(clip) -> None:  # type: ignore[no-untyped-def]
    tr = FlowTracker()
    for i in clip.static_frames:
        tr.push(clip.frames[i])
    a = clip.truth[0].astype(np.float32)
    assert iou(_alpha8(tr.extrapolate(a, 2.0)), clip.truth[0]) > 0.995
    assert iou(_alpha8(tr.warp(a, 0)), clip.truth[0]) > 0.99


def test_a_broken_chain_is_reported_not_guessed(clip) -> None:  # type: ignore[no-untyped-def]
    tr = FlowTracker(history=4)
    for i in range(10):
        tr.push(clip.frames[i])
    assert tr.warp(np.zeros((10, 10), np.float32), 2) is None  # older than the kept history
    tr.push(clip.frames[10], flow=False)  # motion switched off: the history is dropped
    assert tr.warp(np.zeros((10, 10), np.float32), 9) is None
    assert tr.warp(np.ones((10, 10), np.float32), tr.seq) is not None


def test_a_pinned_frame_can_be_warped_long_after_its_flows_are_gone(clip) -> None:  # type: ignore[no-untyped-def]
    tr = FlowTracker(history=3)
    start = clip.moving_frames.start
    for i in range(start + 2):
        tr.push(clip.frames[i])
    assert tr.pin(start)  # the slow engine started on this frame
    for i in range(start + 2, start + 14):
        tr.push(clip.frames[i])
    old = clip.truth[start].astype(np.float32)
    warped = tr.warp(old, start)  # 13 frames later, with only 3 flows kept
    assert warped is not None
    assert iou(_alpha8(warped), clip.truth[start + 13]) > 0.9
    assert tr.warp(old, start + 1) is None  # not pinned: out of reach
    tr.release(start + 1)
    assert tr.warp(old, start) is None  # released once a newer result is in
