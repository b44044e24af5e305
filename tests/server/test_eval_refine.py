"""Edge refinement, scored against the ground truth: the upscaled outline moves onto the real edge."""
from __future__ import annotations

import cv2
import numpy as np

from m2fp_protocol import StreamConfig
from m2fp_server.evaluation.clips import get_clip
from m2fp_server.evaluation.evaluate import offline_alphas
from m2fp_server.evaluation.metrics import mean_boundary_error, mean_iou
from m2fp_server.postprocess.refine import EdgeRefiner


def test_refined_upscale_of_a_coarse_truth_is_closer_to_the_truth_than_bilinear() -> None:
    clip = get_clip("tilt", static=2, moving=6, size=(320, 240))
    bil, ref = [], []
    for f, t in zip(clip.frames, clip.truth):
        coarse = cv2.resize(t.astype(np.float32), (40, 30), interpolation=cv2.INTER_AREA)  # a 1/8 model
        bil.append((cv2.resize(coarse, (320, 240)) * 255).astype(np.uint8))
        ref.append((EdgeRefiner()(coarse, f, (320, 240)) * 255).astype(np.uint8))
    frames = range(len(clip))
    assert mean_boundary_error(np.stack(ref), clip.truth, frames) < 0.85 * mean_boundary_error(
        np.stack(bil), clip.truth, frames)
    assert mean_iou(np.stack(ref), clip.truth, frames) > mean_iou(np.stack(bil), clip.truth, frames)


def test_refine_setting_improves_the_selfie_outline(selfie_engine) -> None:  # type: ignore[no-untyped-def]
    clip = get_clip("sway", static=2, moving=10, size=(320, 240))
    plain = offline_alphas(selfie_engine, clip, StreamConfig(smoothing=0.0, refine=False))
    refined = offline_alphas(selfie_engine, clip, StreamConfig(smoothing=0.0, refine=True))
    frames = range(len(clip))
    assert mean_boundary_error(refined, clip.truth, frames) < mean_boundary_error(plain, clip.truth, frames)


def test_refined_edges_do_not_shimmer_on_a_still_person(selfie_engine) -> None:  # type: ignore[no-untyped-def]
    from m2fp_server.evaluation.metrics import flicker
    clip = get_clip("sway", static=20, moving=2, size=(320, 240))
    raw = offline_alphas(selfie_engine, clip, StreamConfig(smoothing=0.0, refine=True))
    smooth = offline_alphas(selfie_engine, clip, StreamConfig(smoothing=0.5, refine=True))
    # the guide frame's sensor noise moves refined edges; smoothing after refinement holds them
    assert flicker(raw, clip.static_frames) > 0.01
    assert flicker(smooth, clip.static_frames) <= 0.001
