"""Temporal smoothing: no shimmer on a still person, no trail behind a moving one."""
from __future__ import annotations

import numpy as np
import pytest

from m2fp_protocol import StreamConfig
from m2fp_server.evaluation.clips import get_clip
from m2fp_server.evaluation.evaluate import offline_alphas
from m2fp_server.evaluation.metrics import flicker, mean_iou
from m2fp_server.postprocess.temporal import TemporalSmoother


@pytest.fixture(scope="module")
def clip():  # type: ignore[no-untyped-def]
    return get_clip("sway", static=25, moving=30, size=(320, 240))


def test_smoothing_removes_the_selfie_models_flicker_without_costing_iou(selfie_engine, clip) -> None:  # type: ignore[no-untyped-def]
    raw = offline_alphas(selfie_engine, clip, StreamConfig(smoothing=0.0))
    smooth = offline_alphas(selfie_engine, clip, StreamConfig(smoothing=0.5))
    f_raw, f_smooth = flicker(raw, clip.static_frames), flicker(smooth, clip.static_frames)
    assert f_raw > 0.005  # sensor noise really makes the model's outline shimmer
    assert f_smooth <= 0.01 and f_smooth < f_raw / 4
    iou_raw = mean_iou(raw, clip.truth, clip.moving_frames)
    iou_smooth = mean_iou(smooth, clip.truth, clip.moving_frames)
    assert iou_smooth > iou_raw - 0.005  # no trail behind the moving person


def test_where_the_picture_changes_the_newest_alpha_goes_through_unchanged(clip) -> None:  # type: ignore[no-untyped-def]
    sm = TemporalSmoother(weight=0.9)
    s = clip.moving_frames.start
    a0 = clip.truth[s].astype(np.float32)
    a1 = clip.truth[s + 6].astype(np.float32)
    sm(a0, clip.frames[s])
    sm(a0, clip.frames[s])
    out = sm(a1, clip.frames[s + 6])
    changed = a0 != a1  # the person moved here
    assert changed.sum() > 500
    assert np.mean(np.abs(out[changed] - a1[changed]) < 1e-6) > 0.97
    ema = 0.9 * a0 + 0.1 * a1  # a plain EMA would still show the old position there
    assert np.mean(np.abs(ema[changed] - a1[changed]) < 0.5) < 0.01


def test_small_wobble_is_held_and_real_change_passes(clip) -> None:  # type: ignore[no-untyped-def]
    sm = TemporalSmoother(weight=0.5, deadband=0.08)
    frame = clip.frames[0]
    base = np.full((240, 320), 0.48, np.float32)
    sm(base, frame)
    out = sm(base + 0.05, frame)  # noise-sized wobble across the threshold
    assert np.all(out == base)
    out = sm(base + 0.5, frame)  # a real change in a still picture still shows at once (EMA)
    assert np.all(out > 0.7)
