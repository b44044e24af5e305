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


# --------------------------------------------------------------------------- late results
def test_late_frames_counts_whole_intervals_the_server_took() -> None:
    from m2fp_server.pipeline import MAX_LATE_FRAMES, late_frames
    assert late_frames(0.010, 1 / 30) == 0  # back within the interval the client's lag assumes
    assert late_frames(0.040, 1 / 30) == 1
    assert late_frames(0.075, 1 / 30) == 2
    assert late_frames(5.0, 1 / 30) == MAX_LATE_FRAMES
    assert late_frames(0.1, 0.0) == 0  # interval not known yet


def test_the_frame_interval_ignores_dropped_frames() -> None:
    from m2fp_server.streams import StreamState
    st = StreamState(b"s")
    assert st.frame_interval() == 0.0
    t = 1_000_000
    for gap in (33_333, 66_667, 33_333, 100_000, 33_334):  # the scheduler dropped some frames
        t += gap
        st.note_stamp(t)
    assert st.frame_interval() == pytest.approx(1 / 30, abs=1e-4)
    st.note_stamp(t + 5_000_000)  # a pause: not a frame interval
    assert st.frame_interval() == pytest.approx(1 / 30, abs=1e-4)


def test_a_late_result_is_moved_ahead_by_the_frames_it_was_late() -> None:
    """A result the server finished two intervals late is shown four frames after its own; moved
    ahead by those frames it matches the person there better than moved ahead by the nominal two."""
    import time
    try:  # a full body swept fast over a playing video (fetched media, as .ci/run does)
        clip = get_clip("footage-video-fast", static=2, moving=36, size=(320, 240))
    except (FileNotFoundError, OSError) as exc:
        pytest.skip(f"footage media not fetched ({exc})")

    from m2fp_protocol import StreamConfig
    from m2fp_server.evaluation.slow_oracle import OracleEngine  # the clip's truth as the engine's answer
    from m2fp_server.pipeline import Pipeline
    from m2fp_server.streams import StreamState
    scores: dict[bool, list[float]] = {}
    for late in (False, True):
        eng = OracleEngine(clip)
        pipe = Pipeline(eng)
        st = StreamState(b"s")
        st.apply(StreamConfig.from_json({"motion": True, "predict_frames": 2, "smoothing": 0}), eng.classes)
        scores[late] = []
        for i in range(len(clip) - 4):
            st.note_stamp(1_000_000 + i * 33_333)
            received = time.perf_counter() - (0.070 if late else 0.0)
            r = pipe.process(clip.frames[i], st, received=received)
            if i in clip.moving_frames:
                scores[late].append(iou(r.alpha, clip.truth[i + 4]))
    assert np.mean(scores[True]) > np.mean(scores[False]) + 0.02, {k: np.mean(v) for k, v in scores.items()}
