"""Ground-truth clips, metrics, the slow oracle and ``m2fp eval`` end to end (real server, real time)."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from m2fp_protocol import DEFAULT_SYNC_FRAMES
from m2fp_server.cli.main import main
from m2fp_server.errors import BadInput
from m2fp_server.evaluation.camera import Camera
from m2fp_server.evaluation.clips import CLIPS, get_clip
from m2fp_server.evaluation.evaluate import Variant
from m2fp_server.evaluation.metrics import boundary_error, flicker, iou, score

SMALL = {"static": 6, "moving": 20, "size": (160, 120)}


@pytest.mark.parametrize("name", ["sway", "bob", "zoom", "tilt", "two-people"])
def test_clip_is_deterministic_with_a_still_opening_and_a_moving_part(name: str) -> None:
    clip = CLIPS[name](**SMALL)
    again = CLIPS[name](**SMALL)
    assert np.array_equal(clip.frames, again.frames) and np.array_equal(clip.truth, again.truth)
    assert clip.frames.shape == (26, 120, 160, 3) and clip.frames.dtype == np.uint8
    assert clip.truth.shape == (26, 120, 160) and set(np.unique(clip.truth)) <= {0, 1}
    assert list(clip.static_frames) == list(range(6)) and list(clip.moving_frames) == list(range(6, 26))
    assert 0.1 < clip.truth.mean() < 0.7
    st = clip.static_frames
    assert all(np.array_equal(clip.truth[st.start], clip.truth[i]) for i in st)  # truth still...
    assert not np.array_equal(clip.frames[0], clip.frames[1])  # ...the picture has sensor noise
    moves = [np.count_nonzero(clip.truth[i] != clip.truth[i - 1]) for i in clip.moving_frames]
    assert min(moves) > 0  # the person moves on every moving frame


def test_two_people_clip_has_two_people() -> None:
    import cv2
    clip = get_clip("two-people", **SMALL)
    n, _ = cv2.connectedComponents(clip.truth[0])
    assert n - 1 == 2


def test_metrics_on_known_masks() -> None:
    truth = np.zeros((4, 50, 50), np.uint8)
    truth[:, 10:30, 10:30] = 1
    alphas = truth * 255
    assert iou(alphas[0], truth[0]) == 1.0
    shifted = np.roll(alphas[0], 4, axis=1)
    assert iou(shifted, truth[0]) == pytest.approx(16 * 20 / (24 * 20))
    # the two vertical sides are 4 px apart, the horizontal ones mostly coincide: mean ~2 px
    assert boundary_error(shifted, truth[0]) == pytest.approx(2.0, abs=0.3)
    flick = alphas.copy()
    flick[2, 0, :10] = 255  # 10 pixels on in frame 2 only: 2 flips of 10 px over 3 steps
    assert flicker(flick, range(4)) == pytest.approx(100 * (20 / 2500) / 3)
    s = score(alphas, truth, range(0, 2), range(2, 4), mask_age=np.array([-1, 1, 2, 2]))
    assert s.iou_moving == 1.0 and s.missing == 1 and s.age_median == 2.0


def test_variants_parse_and_reject_nonsense() -> None:
    assert Variant.parse("hold") == Variant("hold", False, 0, None)
    assert Variant.parse("sync2+motion") == Variant("sync2+motion", True, 2, None)  # replay asks for 0
    assert Variant.parse("defaults") == Variant("defaults", True, DEFAULT_SYNC_FRAMES, None)
    assert Variant.parse("motion+predict1.5").predict == 1.5
    with pytest.raises(ValueError):
        Variant.parse("warp")



@pytest.mark.parametrize("bad", ["abc", "5", "-640", "1e3", "99999", ""])
def test_slow_oracle_input_size_is_checked_with_a_clear_message(bad: str) -> None:
    from m2fp_server.engines.base import EngineUnavailable
    from m2fp_server.evaluation.slow_oracle import SlowOracleEngine
    clip = get_clip("sway", **SMALL)
    with pytest.raises(EngineUnavailable, match="input=.*16..4096"):
        SlowOracleEngine(clip=clip, input=bad)  # type: ignore[arg-type]  # as -E gives it: text
    eng = SlowOracleEngine(clip=clip, input="640")  # type: ignore[arg-type]
    try:
        assert eng.preferred_input == (640, 640)
    finally:
        eng.close()

def test_slow_oracle_answers_with_the_truth_late_and_never_blocks() -> None:
    from m2fp_server.evaluation.slow_oracle import SlowOracleEngine
    clip = get_clip("sway", **SMALL)
    eng = SlowOracleEngine(clip=clip, delay_ms=200, rate_hz=4, wait_first_s=0)
    try:
        stream = eng.new_stream()
        t = time.perf_counter()
        first = eng.infer(clip.frames[8], stream)
        assert time.perf_counter() - t < 0.05 and first.extra.get("empty")  # nothing yet, no waiting
        time.sleep(0.35)
        out = eng.infer(clip.frames[9], stream)
        assert out.age_frames == 1  # the result is frame 8's...
        assert iou((out.probs[1] * 255).astype(np.uint8), clip.truth[8]) > 0.98  # ...and exactly its truth
    finally:
        eng.close()


def test_m2fp_eval_reports_offline_and_live_scores(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "eval.json"
    rc = main(["--log-level", "WARNING", "eval", "--clip", "sway", "--static", "10", "--moving", "36",
               "--size", "320x240", "--engine", "slow-oracle", "--engine", "selfie",
               "--variant", "hold", "--variant", "motion", "--variant", "defaults", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "| sway | slow-oracle | motion |" in text and "| sway | selfie | offline |" in text
    rows = {(r["engine"], r["variant"]): r for r in json.loads(out.read_text())}
    assert rows[("slow-oracle", "offline")]["iou_moving"] > 0.98  # the oracle is the truth
    hold, motion = rows[("slow-oracle", "hold")], rows[("slow-oracle", "motion")]
    assert hold["result_age_median"] >= 6  # 300 ms at 3 Hz: results are many frames old
    assert hold["iou_moving"] < 0.85  # holding them leaves a ghost
    assert motion["iou_moving"] > hold["iou_moving"] + 0.08  # motion compensation follows the person
    offline, defaults = rows[("selfie", "offline")], rows[("selfie", "defaults")]
    assert offline["iou_moving"] > 0.8
    # The defaults (frame sync 2, nothing predicted) show each frame with the mask made from it: the
    # selfie engine answers well within the 2 frames of delay, so live loses nothing against offline.
    # (Without sync, the age depends on how fast this host runs the engine plus the flow: not a claim.)
    assert defaults["age_median"] == 0, defaults
    assert defaults["iou_moving"] >= offline["iou_moving"] - 0.02, defaults


def test_m2fp_eval_rejects_an_unknown_clip(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["eval", "--clip", "nope"]) == 1
    assert "unknown clip" in capsys.readouterr().err


def test_camera_darkens_adds_noise_and_compresses_the_same_way_every_run() -> None:
    clip = get_clip("sway", static=4, moving=2, size=(160, 120))
    cam = Camera.parse("dim=0.8, noise=5,jpeg=70")
    assert (cam.dim, cam.noise, cam.jpeg) == (0.8, 5.0, 70)
    seen = cam.apply(clip)
    assert seen.name == "sway@dim0.8+noise5+jpeg70"
    assert np.array_equal(seen.truth, clip.truth) and seen.frames.shape == clip.frames.shape
    assert np.array_equal(cam.apply(clip).frames, seen.frames)  # reproducible
    assert abs(seen.frames.mean() - 0.8 * clip.frames.mean()) < 2.0
    # sensor noise is new every frame: a still opening changes more from frame to frame
    def change(frames: np.ndarray) -> float:
        return float(np.abs(frames[1].astype(np.int16) - frames[0]).mean())
    assert change(seen.frames) > change(clip.frames) + 1.0
    assert Camera.parse("").apply(clip) is clip


@pytest.mark.parametrize("bad", ["dim=3", "noise=-1", "jpeg=5", "jpeg=7.5", "blur=2", "dim", "dim=x", "noise=nan"])
def test_camera_rejects_nonsense_with_a_clear_message(bad: str, capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BadInput):
        Camera.parse(bad)
    assert main(["eval", "--clip", "sway", "--camera", bad]) != 0
    assert "--camera" in capsys.readouterr().err
