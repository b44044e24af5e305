"""Footage clips (moving backgrounds, fast, small, edge-cut, crossing people), per-person motion
compensation, the OpenVINO runtime for the shipped TFLite models, and the per-clip ``m2fp eval`` report.

Clips are scaled down here (short, small frames); motion is a function of seconds, so they move as fast
as the full clips.  The full figures come from ``m2fp eval`` (docs/evaluation.md).
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from m2fp_server.cli.main import main
from m2fp_server.evaluation.aging import moved_ahead
from m2fp_server.evaluation.clip import Clip
from m2fp_server.evaluation.clips import CLIPS, get_clip
from m2fp_server.evaluation.footage import FOOTAGE, HELD_OUT
from m2fp_server.evaluation.metrics import iou
from m2fp_server.postprocess.motion import FlowTracker
from m2fp_server.postprocess.person_motion import PersonMotion

SHORT = {"static": 4, "moving": 24}


def _centre_x(mask: np.ndarray) -> float:
    return float(np.nonzero(mask)[1].mean())


def test_footage_clips_are_registered_and_the_old_ones_kept() -> None:
    assert set(FOOTAGE) <= set(CLIPS)
    assert {"sway", "two-people", "framing-full-body", "framing-small-body"} <= set(CLIPS)
    assert HELD_OUT <= set(FOOTAGE) and HELD_OUT != set(FOOTAGE)


@pytest.mark.parametrize("name", sorted(FOOTAGE))
def test_footage_clip_has_a_still_opening_and_a_moving_background(name: str) -> None:
    clip = get_clip(name, size=(320, 240) if name != "footage-small-body" else (640, 360), **SHORT)
    assert clip.frames.shape[:3] == clip.truth.shape and len(clip) == 28
    s0, s1 = clip.static_frames.start, clip.static_frames.stop - 1
    assert np.array_equal(clip.truth[s0], clip.truth[s1])  # nobody moves in the opening
    still = np.abs(clip.frames[s0].astype(int) - clip.frames[s1].astype(int)).mean()
    assert still < 4  # sensor noise only
    assert clip.truth[clip.moving_frames].any(axis=(1, 2)).all()  # somebody in every frame
    # the background itself moves: where nobody stands in either frame, the picture changes
    a, b = clip.moving_frames.start, clip.moving_frames.stop - 1
    free = (clip.truth[a] == 0) & (clip.truth[b] == 0)
    diff = np.abs(clip.frames[a].astype(int) - clip.frames[b].astype(int)).mean(axis=2)
    assert diff[free].mean() > 8


def test_random_scenes_are_the_same_for_a_seed_and_differ_between_seeds() -> None:
    """``random-<seed>``: the seed alone makes the scene (frames and truth alike on a second build), seeds
    give different scenes (sizes, people, backgrounds), each with somebody in every frame, a still
    opening and a moving part; a range names its scenes in order, and a bad name or range is refused."""
    from m2fp_server.errors import BadInput
    from m2fp_server.evaluation.random_scenes import expand_random, random_scene
    a, again = random_scene("random-7", static=3, moving=6), random_scene("random-7", static=3, moving=6)
    assert np.array_equal(a.frames, again.frames) and np.array_equal(a.truth, again.truth)
    scenes = [get_clip(f"random-{k}", static=3, moving=6) for k in range(7, 13)]
    assert len({(c.size, c.description) for c in scenes}) >= 4, [c.description for c in scenes]
    for c in scenes:
        assert c.truth.any(axis=(1, 2)).all() and np.array_equal(c.truth[0], c.truth[2])
        assert not np.array_equal(c.truth[3], c.truth[-1])  # they move
    assert expand_random(["sway", "random-3..5"]) == ["sway", "random-3", "random-4", "random-5"]
    for bad in ("random-5..3", "random-0..5000"):
        with pytest.raises(BadInput):
            expand_random([bad])
    with pytest.raises(BadInput):
        get_clip("random-x")


def test_fast_clip_moves_half_a_frame_width_per_second_with_roll_and_zoom() -> None:
    clip = get_clip("footage-video-fast", size=(320, 240), static=2, moving=48)
    xs = [_centre_x(clip.truth[k]) / clip.size[0] for k in clip.moving_frames]
    assert np.abs(np.diff(xs)).max() * clip.fps >= 0.5
    heights = [np.ptp(np.nonzero(clip.truth[k])[0]) for k in clip.moving_frames]
    assert max(heights) > 1.15 * min(heights)  # zoom


def test_small_body_is_small_in_a_720p_frame_and_edge_cut_touches_the_edge() -> None:
    small = get_clip("footage-small-body", static=2, moving=4)
    assert small.size == (1280, 720)
    rows = np.nonzero(small.truth[0].any(axis=1))[0]
    assert (rows.max() - rows.min()) < 0.4 * 720 and not small.truth[0][:, [0, -1]].any()
    cut = get_clip("footage-edge-cut", size=(320, 240), **SHORT)
    assert all(cut.truth[k][:, 0].any() for k in range(len(cut)))  # the frame's left edge cuts her


def test_crossing_people_pass_each_other() -> None:
    clip = get_clip("footage-crossing", size=(427, 240), static=2, moving=120)

    def people(mask: np.ndarray) -> list[tuple[float, int]]:
        """(centre x, height) of each person, left to right."""
        n, _, stats, cents = cv2.connectedComponentsWithStats(mask)
        return sorted((float(cents[i][0]), int(stats[i, cv2.CC_STAT_HEIGHT])) for i in range(1, n))
    first, last = people(clip.truth[clip.moving_frames.start]), people(clip.truth[len(clip) - 1])
    assert len(first) == 2 and len(last) == 2
    assert cv2.connectedComponents(clip.truth[clip.moving_frames.start + 60])[0] - 1 == 1  # one before the other
    assert first[0][1] > first[1][1] and last[1][1] > last[0][1]  # the taller one went from left to right


# --------------------------------------------------------------------------- motion compensation
def _truth_alphas(clip: Clip, send_w: int = 640) -> tuple[list[np.ndarray], list[np.ndarray]]:
    W, H = clip.size
    sh = round(H * send_w / W)
    smalls = [cv2.resize(f, (send_w, sh), interpolation=cv2.INTER_AREA) for f in clip.frames]
    alphas = [cv2.resize(t.astype(np.float32), (send_w // 2, sh // 2), interpolation=cv2.INTER_AREA)
              for t in clip.truth]
    return smalls, alphas


def test_person_motion_moves_a_fast_person_ahead_better_than_the_whole_frame_flow() -> None:
    """Masks moved 2 frames ahead, scored 2 frames later: per-person motion against the dense flow."""
    clip = get_clip("footage-video-fast", static=2, moving=30)
    smalls, alphas = _truth_alphas(clip)
    ours = moved_ahead(alphas, smalls, clip.truth, clip.moving_frames, ages=(0, 2))

    def dense() -> FlowTracker:
        return FlowTracker(history=2, person_max_width=0)
    theirs = moved_ahead(alphas, smalls, clip.truth, clip.moving_frames, ages=(0, 2), tracker_factory=dense)
    held = np.mean([iou(clip.truth[k] * 255, clip.truth[k + 2]) for k in clip.moving_frames[:-2]])
    assert ours[0] > 0.97  # the truth itself, resized
    assert ours[2] > theirs[2] + 0.05 and ours[2] > held + 0.2


def test_a_still_person_is_not_moved() -> None:
    """Sensor noise alone must not shift a still mask (flicker)."""
    clip = get_clip("footage-pan-busts", size=(320, 240), **SHORT)
    tracker = FlowTracker(history=2)
    alpha = cv2.GaussianBlur(clip.truth[0].astype(np.float32), (5, 5), 0)
    for k in clip.static_frames:
        tracker.push(clip.frames[k])
        moved = tracker.extrapolate(alpha, 2.0)
        assert np.array_equal(moved, alpha) or np.abs(moved - alpha).max() < 1e-6


def test_person_motion_follows_a_known_shift_and_rotation() -> None:
    """A real photo region moved by a known similarity: the fitted motion recovers it."""
    from m2fp_server.evaluation.framings import photo_background
    img = cv2.cvtColor(photo_background("street", (320, 240)), cv2.COLOR_RGB2GRAY)
    region = np.zeros_like(img, bool)
    region[60:200, 100:200] = True
    m = cv2.getRotationMatrix2D((150, 130), 2.0, 1.02)
    m[:, 2] += np.array([6.0, -3.0])
    moved_img = cv2.warpAffine(img, m, (320, 240), borderMode=cv2.BORDER_REFLECT)
    moved_region = cv2.warpAffine(region.astype(np.uint8), m, (320, 240)) > 0
    back = PersonMotion().transform(moved_region, moved_img, img)  # this frame -> the previous one
    assert back is not None
    truth_back = np.linalg.inv(np.vstack([m, [0, 0, 1]]))
    pts = np.array([[120, 80, 1], [180, 190, 1], [150, 130, 1]], float).T
    assert np.abs(back @ pts - truth_back @ pts).max() < 1.0  # pixels



def test_two_people_in_one_mask_moving_apart_get_a_motion_each() -> None:
    """Two touching regions of a real photo moving in opposite directions: one connected mask, two motions."""
    from m2fp_server.evaluation.framings import photo_background
    img = cv2.cvtColor(photo_background("street", (320, 240)), cv2.COLOR_RGB2GRAY)
    left, right = np.zeros_like(img, bool), np.zeros_like(img, bool)
    left[50:210, 60:150], right[70:220, 150:250] = True, True
    moved_img, moved = img.copy(), np.zeros_like(img, bool)
    for region, dx in ((right, -5), (left, 6)):  # the left one passes in front
        m = np.array([[1, 0, dx], [0, 1, 0]], np.float32)
        shifted = cv2.warpAffine(img, m, (320, 240), borderMode=cv2.BORDER_REFLECT)
        to = cv2.warpAffine(region.astype(np.uint8), m, (320, 240)) > 0
        moved_img[to], moved[to] = shifted[to], True
    assert cv2.connectedComponents(moved.astype(np.uint8))[0] - 1 == 1
    parts = PersonMotion().motions(moved, moved_img, img)
    assert len(parts) == 2
    for part in parts:
        full = np.zeros_like(moved)
        (x, y), (h, w) = part.at, part.mask.shape
        full[y:y + h, x:x + w] = part.mask
        shift = -part.to_prev[0, 2]  # this frame -> the previous one undoes the shift
        expected = 6 if _centre_x(full) < 150 else -5
        assert abs(shift - expected) < 1.0 and abs(part.to_prev[1, 2]) < 1.0


def test_crossing_people_are_moved_ahead_each_by_their_own_motion() -> None:
    """Truth masks of the crossing clip moved 2 frames ahead: while the two people overlap they make one
    connected mask, and one motion for both tears them."""
    clip = get_clip("footage-crossing", static=4, moving=60)
    smalls, alphas = _truth_alphas(clip)

    def single() -> FlowTracker:
        tracker = FlowTracker(history=2)
        tracker.person.split = False
        return tracker
    frames = range(clip.moving_frames.start + 25, clip.moving_frames.stop)  # they overlap from here on
    ours = moved_ahead(alphas, smalls, clip.truth, frames, ages=(0, 2))
    theirs = moved_ahead(alphas, smalls, clip.truth, frames, ages=(0, 2), tracker_factory=single)
    assert ours[0] > 0.97 and ours[2] > 0.9
    assert ours[2] > theirs[2] + 0.03


def test_a_start_from_still_is_believed_and_a_one_frame_jump_is_not() -> None:
    """A region of a real photo: still, then moving 4 px per frame, then one frame whose picture jumps
    16 px (what a fit that locked onto the background looks like), then on at 4 px per frame."""
    from m2fp_server.evaluation.framings import photo_background
    tex = cv2.cvtColor(photo_background("street", (480, 240)), cv2.COLOR_RGB2GRAY)
    region = np.zeros((240, 320), np.float32)
    region[60:200, 100:180] = 1.0
    xs = [0, 0, 0, 4, 8, 12, 28, 32, 36]  # where the picture is, frame by frame (frame 6 jumps)
    pm = PersonMotion()
    steps = []
    for k in range(1, len(xs)):
        cur, prev = (np.ascontiguousarray(tex[:, 80 - xs[i]:400 - xs[i]]) for i in (k, k - 1))
        moved = np.roll(region, xs[k], axis=1)
        people = pm.fit(moved, cur, prev, frame=k)
        assert len(people) == 1
        steps.append(people[0].step[0])
    assert abs(steps[0]) < 0.5 and abs(steps[1]) < 0.5  # still
    assert abs(steps[2] - 4) < 0.5  # the start is believed at once
    assert abs(steps[5] - 4) < 1.0  # the jump is not: the speed before goes on
    assert abs(steps[7] - 4) < 0.5

# --------------------------------------------------------------------------- model runtime
def test_openvino_runs_the_pose_model_like_the_tflite_runtime() -> None:
    pytest.importorskip("openvino")
    from m2fp_server.engines.embedded_models import PoseSegmenter
    from m2fp_server.engines.selfie import MODEL_FILES, MODELS_DIR
    from m2fp_server.engines.tflite_backend import OpenVINOModel, open_model
    from m2fp_server.evaluation.groundtruth import still
    rgb, _ = still("astronaut", (256, 256))
    ov, lite = PoseSegmenter(backend="openvino"), PoseSegmenter(backend="litert")
    assert isinstance(ov._it, OpenVINOModel) and not isinstance(lite._it, OpenVINOModel)
    a, b = ov.run(rgb), lite.run(rgb)
    assert np.abs(a.mask - b.mask).max() < 0.01 and abs(a.presence - b.presence) < 0.01
    assert a.presence > 0.5
    # the selfie models use an op OpenVINO cannot read: the TFLite runtime takes them
    assert not isinstance(open_model(MODELS_DIR / MODEL_FILES["landscape"], backend="openvino"), OpenVINOModel)


# --------------------------------------------------------------------------- m2fp eval
def test_m2fp_eval_reports_ages_ms_and_cpu_flags_per_clip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "eval.json"
    rc = main(["--log-level", "WARNING", "eval", "--clip", "footage-edge-cut", "--static", "8", "--moving", "30",
               "--size", "320x240", "--engine", "selfie", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "flags:" in text.splitlines()[0]
    line = next(ln for ln in text.splitlines() if ln.startswith("| footage-edge-cut | selfie | 0."))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert len(cells) == 12 and cells[6].count("/") == 3
    assert cells[7].count("→") == 3  # each mask shown 1, 2, 3 frames late: held → carried
    assert any(ln.startswith("# CPU time taken by the host (steal) during this run:") for ln in text.splitlines())
    rows = {r["variant"]: r for r in json.loads(out.read_text())}
    assert set(rows) == {"offline", "defaults", "motion", "sync1+motion"}
    off = rows["offline"]
    assert set(off["moved_ahead"]) == {"0", "1", "2", "3"} and off["ms_per_frame"] > 0
    assert off["moved_ahead"]["0"] == pytest.approx(off["iou_moving"], abs=0.02)
    assert set(off["carried"]) == {"1", "2", "3"} and all(len(v) == 2 for v in off["carried"].values())
    live = rows["defaults"]
    assert live["iou_by_age"] and live["ms_per_frame"] > 0
    assert live["iou_moving"] > 0.8 and rows["sync1+motion"]["iou_moving"] > 0.7
