"""The embedded engine on real framings: busts, full bodies, small people; offline, live and per stream.

Full-body people and the photo backgrounds come from Debian's opencv-doc samples,
fetched at test time (``evaluation/framings.py``); those tests skip with the
reason when the package cannot be had.  Short clips keep this file near 1 minute.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

import cv2
import numpy as np
import pytest

from m2fp_server.cpu import usable_cores
from m2fp_server.engines import registry
from m2fp_server.engines.embedded import EmbeddedEngine
from m2fp_server.evaluation.camera import Camera
from m2fp_server.evaluation.clip import Clip
from m2fp_server.evaluation.clips import CLIPS, get_clip
from m2fp_server.evaluation.evaluate import Variant, live_run, offline_alphas
from m2fp_server.evaluation.footage import panned_photo, render
from m2fp_server.evaluation.framings import bust_cutout, fullbody_cutout
from m2fp_server.evaluation.groundtruth import Placement, compose, place
from m2fp_server.evaluation.metrics import flicker, iou, mean_iou

from conftest import nudge

SHORT = {"static": 8, "moving": 24}


def _clip(name: str, **kw):  # type: ignore[no-untyped-def]
    try:
        return get_clip(name, **{**SHORT, **kw})
    except FileNotFoundError as exc:  # opencv-doc could not be fetched here (CI fetches it first: fail there)
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))


def _offline_ious(clip, frames: Iterable[int] | None = None) -> list[float]:  # type: ignore[no-untyped-def]
    """IoU against the truth on ``frames`` (all by default) of a fresh engine run on every frame, with the
    switches that follow the host's timing off (``alternate_ms``, ``pair_ms``): figures a slow host does not change."""
    eng = EmbeddedEngine(alternate_ms=0, pair_ms=0)
    ours = offline_alphas(eng, clip)
    eng.close()
    return [iou(ours[i], clip.truth[i]) for i in (range(len(clip)) if frames is None else frames)]


def _on_photo(cutouts, motion, size: tuple[int, int], static: int, moving: int,  # type: ignore[no-untyped-def]
              photo: str = "leuvenB.jpg"):
    """People moving by ``motion`` (seconds -> placements) on a still photo (the street ``leuvenB.jpg``)."""
    try:
        return render("on-photo", "people on a photo", cutouts, motion, panned_photo(photo, size, lambda t: (0.0, 0.0)),
                      size=size, static=static, moving=moving, fps=30.0)
    except FileNotFoundError as exc:  # opencv-doc could not be fetched here (CI fetches it first: fail there)
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))


def _street_still(cutouts, places: list[Placement], size: tuple[int, int],  # type: ignore[no-untyped-def]
                  static: int = 4, photo: str = "leuvenB.jpg"):
    """People standing still on a still photo (the street ``leuvenB.jpg``): ``static`` + 2 frames."""
    return _on_photo(cutouts, lambda t: places, size, static, 2, photo)


@pytest.fixture(scope="module")
def engine():  # type: ignore[no-untyped-def]
    eng = EmbeddedEngine()
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def landscape():  # type: ignore[no-untyped-def]
    eng = EmbeddedEngine(only="landscape")
    yield eng
    eng.close()


def test_registered_and_preferred_by_auto_over_selfie() -> None:
    assert registry.ENGINES["embedded"] == "embedded:EmbeddedEngine"
    from m2fp_server.engines.auto import AUTO_CANDIDATES
    order = [name for name, _ in AUTO_CANDIDATES]
    assert order.index("embedded") < order.index("selfie")
    for name in ("framing-bust", "framing-two-people", "framing-full-body", "framing-small-body"):
        assert name in CLIPS


def test_full_body_beats_every_single_model_and_holds_still(engine) -> None:  # type: ignore[no-untyped-def]
    clip = _clip("framing-full-body", moving=45)  # one whole sweep: the person reaches both sides
    ours = offline_alphas(engine, clip)
    moving = mean_iou(ours, clip.truth, clip.moving_frames)
    assert moving >= 0.90, moving
    for only in ("landscape", "general", "pose"):
        single = EmbeddedEngine(only=only)
        theirs = mean_iou(offline_alphas(single, clip), clip.truth, clip.moving_frames)
        assert moving > theirs + 0.03, (only, moving, theirs)
    # sensor noise only in the static part: nothing may flicker
    assert flicker(ours, clip.static_frames) <= 0.01


def test_small_person_touching_no_edge_is_found_and_kept(engine, landscape) -> None:  # type: ignore[no-untyped-def]
    clip = _clip("framing-small-body", size=(1280, 720))
    t = clip.truth[clip.moving_frames.start]
    ys, xs = np.nonzero(t)
    assert ys.min() > 0 and xs.min() > 0 and ys.max() < t.shape[0] - 1 and xs.max() < t.shape[1] - 1
    ours = mean_iou(offline_alphas(engine, clip), clip.truth, clip.moving_frames)
    theirs = mean_iou(offline_alphas(landscape, clip), clip.truth, clip.moving_frames)
    assert ours >= 0.85 and ours > theirs + 0.3, (ours, theirs)


def test_bust_mode_averages_both_selfie_models_and_beats_each(landscape) -> None:  # type: ignore[no-untyped-def]
    """A webcam bust is the selfie models' home ground: bust mode averages them (the general one on
    squares placed on the people).  It must beat the landscape model alone (bust mode's model before)
    on one bust (the textured bust clips of docs/engines.md, by 0.02 here; over other textures it was up
    to 0.012 below on short clips), and on two busts in a 16:9 frame, where squashing the frame into
    the general model's square loses the people, clearly better than either model alone.  ``pair_ms=0``:
    the pair however long the general model takes (under CI's load the shared engine had dropped it)."""
    engine, general = EmbeddedEngine(pair_ms=0), EmbeddedEngine(only="general")
    for name, against in (("sway", {"landscape": 0.01}), ("tilt", {"landscape": 0.01}),
                          ("two-people", {"landscape": 0.03, "general": 0.03})):
        clip = get_clip(name, **SHORT)  # shipped cutouts over a texture, no download
        ours = mean_iou(offline_alphas(engine, clip), clip.truth, clip.moving_frames)
        for single in (landscape, general):
            if single.settings.only in against:
                theirs = mean_iou(offline_alphas(single, clip), clip.truth, clip.moving_frames)
                assert ours >= theirs + against[single.settings.only], (name, single.settings.only, ours, theirs)
    general.close()
    ctx = engine.new_stream()
    engine.infer(get_clip("framing-bust", background="texture:4", **SHORT).frames[0], ctx)
    assert ctx.track.mode == "bust"
    engine.close()


def test_two_people_both_kept(engine) -> None:  # type: ignore[no-untyped-def]
    clip = _clip("framing-two-people")
    a = offline_alphas(engine, clip)
    k = clip.moving_frames.start + 10
    n, labels = cv2.connectedComponents(clip.truth[k])
    assert n == 2 or n == 3  # the two busts may overlap
    left, right = clip.truth[k][:, :200], clip.truth[k][:, -200:]
    assert (a[k][:, :200][left > 0] >= 128).mean() > 0.8
    assert (a[k][:, -200:][right > 0] >= 128).mean() > 0.8


def test_streams_do_not_share_state() -> None:
    """Interleaving a bust stream and a full-body stream gives each exactly what it gets alone.

    What the engine measures of the host is shared by its streams, and rightly (``pair_ms``: bust mode
    drops the general model on a busy host; ``alternate_ms``: people take turns, and the detector's thread
    waits): off here, so the answer does not depend on the host's load."""
    engine = EmbeddedEngine(pair_ms=0, alternate_ms=0)
    body = _clip("framing-full-body", static=3, moving=6)
    bust = get_clip("framing-bust", background="texture:4", static=3, moving=6)
    a, b, x, y = (engine.new_stream() for _ in range(4))
    alone_body = [engine.infer(f, a).probs[1] for f in body.frames]
    alone_bust = [engine.infer(f, b).probs[1] for f in bust.frames]
    for i in range(len(body.frames)):
        assert np.array_equal(engine.infer(body.frames[i], x).probs[1], alone_body[i])
        assert np.array_equal(engine.infer(bust.frames[i], y).probs[1], alone_bust[i])
    assert x.track.mode == "body" and y.track.mode == "bust"
    engine.close()


def test_framing_change_is_followed_within_a_few_frames(engine) -> None:  # type: ignore[no-untyped-def]
    """Full body, then a bust (someone walks up to the camera), then a full body again, in one stream."""
    body = _clip("framing-full-body", static=2, moving=12)
    bust = get_clip("framing-bust", background="texture:4", static=2, moving=12)
    modes = []
    walk = engine.new_stream()
    for clip in (body, bust, body):
        for f in clip.frames:
            engine.infer(f, walk)
            modes.append(walk.track.mode)
    n = len(body.frames)
    assert modes[:n] == ["body"] * n
    assert set(modes[n + 3:2 * n]) == {"bust"}, modes
    assert set(modes[2 * n + 3:]) == {"body"}, modes


def test_nothing_outside_the_region_is_erased(engine) -> None:  # type: ignore[no-untyped-def]
    """A second, small bust far from the tracked full body is still in the mask (landscape model there)."""
    from m2fp_server.evaluation.framings import bust_cutout, fullbody_cutout, photo_background
    try:
        body, bg = fullbody_cutout("basketball"), photo_background("street", (640, 480))
    except FileNotFoundError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
    layers = [place(body, Placement(0.3, 0.95, 0.8), (640, 480)),
              place(bust_cutout("astronaut"), Placement(0.85, 1.02, 0.45), (640, 480))]
    frame, truth = compose(bg, layers)
    two = engine.new_stream()
    for _ in range(3):
        p = engine.infer(frame, two).probs[1]
    tr = two.track
    assert tr.mode == "body" and len(tr.bodies) == 1 and tr.bodies[0].roi.cx < 320
    alpha = (cv2.resize(p, (640, 480)) * 255).astype(np.uint8)
    second = np.zeros_like(truth)
    second[:, 480:] = truth[:, 480:]
    assert (alpha[second > 0] >= 128).mean() > 0.8
    assert iou(alpha, truth) > 0.8



def test_a_false_hit_on_a_busy_street_does_not_cost_the_first_frame(engine) -> None:  # type: ignore[no-untyped-def]
    """The street of ``footage-small-body`` gives the detector a hit that outscores the small person and
    passes the pose check on its rough region; settled on its own mask it falls apart.  It is rejected at
    detection, so the person is found on the stream's first frame and the still opening stays still."""
    clip = _clip("footage-small-body", static=8, moving=2)
    ours = offline_alphas(engine, clip)
    assert iou(ours[0], clip.truth[0]) > 0.8, iou(ours[0], clip.truth[0])
    assert flicker(ours, clip.static_frames) <= 0.01


def test_two_whole_bodies_in_a_wide_frame_are_both_followed(engine) -> None:  # type: ignore[no-untyped-def]
    """Two full bodies apart in a 16:9 frame (the crossing clip's opening): the detector reports only the
    one in front on the whole frame; the tiles find the other, and each gets its own pose region."""
    clip = _clip("footage-crossing", static=12, moving=2)
    W, H = clip.size
    stream = engine.new_stream()
    for f in clip.frames[:12]:
        p = engine.infer(cv2.resize(f, (640, 360), interpolation=cv2.INTER_AREA), stream).probs[1]
    assert stream.track.mode == "body" and len(stream.track.bodies) == 2
    alpha = (cv2.resize(p, (W, H)) * 255).astype(np.uint8)
    n, labels = cv2.connectedComponents(clip.truth[11])
    assert n == 3  # two people apart
    for i in (1, 2):
        assert (alpha[labels == i] >= 128).mean() > 0.85, i
    assert iou(alpha, clip.truth[11]) > 0.85

def test_body_mode_says_who_is_who_and_a_late_mask_of_two_who_touch_is_moved_person_by_person() -> None:
    """Two full bodies walking towards each other until they touch, on a street photo, through the real
    pipeline: the engine's map of who is who (``EngineOutput.people``) keeps each person's number frame after
    frame, and on the frames where the two touch each still gets their own box and motion (PEOPLE), so a
    mask shown a frame late sits on both better than held where it was made."""
    from m2fp_protocol import StreamConfig, people_offsets
    from m2fp_server.pipeline import Pipeline
    from m2fp_server.postprocess.mask_motion import carry_people, people_boxes
    from m2fp_server.streams import StreamState

    def motion(t: float) -> list[Placement]:
        return [Placement(0.30 + 0.15 * t, 0.95, 0.72, 0.0), Placement(0.70 - 0.15 * t, 0.93, 0.68, 0.0)]
    clip = _on_photo([fullbody_cutout("messi"), fullbody_cutout("catcher")], motion, (854, 480), 2, 12)
    touch = [i for i, t in enumerate(clip.truth) if cv2.connectedComponents(t)[0] == 2]
    assert touch and touch[0] >= 8  # apart at first, then touching
    engine = EmbeddedEngine(alternate_ms=0)  # both people's pose runs every frame, however slow the host
    pipe, st = Pipeline(engine, blocking=True), StreamState(b"who")
    st.apply(StreamConfig.from_json({"motion": False}), engine.classes)
    stream = st.engine_state = engine.new_stream()
    centres: dict[int, list[float]] = {1: [], 2: []}
    told, held, moved = 0, [], []
    last = None
    for i, frame in enumerate(clip.frames):
        r = pipe.process(cv2.resize(frame, (640, 360), interpolation=cv2.INTER_AREA), st, (320, 180),
                         want_people=True)
        who = stream.track.people
        assert who is not None and sorted(set(np.unique(who)) - {0}) == [1, 2], i
        for k in (1, 2):
            centres[k].append(float(np.nonzero(who == k)[1].mean()))
        boxes = people_boxes(r.people, 320, 180)
        told += i in touch and len(boxes) == 2
        truth = cv2.resize(clip.truth[i], (320, 180), interpolation=cv2.INTER_AREA)
        if last is not None and last[1]:
            held.append(iou(last[0], truth))
            moved.append(iou(carry_people(last[0], people_offsets(last[1], 320, 180, i, i - 1)), truth))
        last = (r.alpha, boxes)
    # each number stays on its person: they walk towards each other, one step at a time, no swap
    left, right = (1, 2) if centres[1][0] < centres[2][0] else (2, 1)
    assert all(a < b for a, b in zip(centres[left], centres[right]))
    steps = [np.diff(centres[left]), -np.diff(centres[right])]  # output pixels per frame, towards the other
    assert all(((-0.5 < d) & (d < 4)).all() for d in steps), steps
    assert told >= 2, (touch, told)
    assert np.mean(moved) > np.mean(held) + 0.03, (np.round(held, 3), np.round(moved, 3))
    engine.close()


def test_a_person_found_and_lost_on_the_next_frame_is_not_looked_for_again_at_once(
        engine) -> None:  # type: ignore[no-untyped-def]
    """Two people walking together, one partly in front of the other, on a street photo: the detector finds
    the one in front, and on the next frame the pose model loses them in that region.  Detected again at once,
    they were found and lost frame after frame (body and bust mode in turn, the mask jumping with them);
    the stream now stays in bust mode until the next regular detection."""
    def motion(t: float) -> list[Placement]:
        return [Placement(0.15 + 0.15 * t, 0.94, 0.70, 0.0), Placement(0.10 + 0.25 * t, 0.92, 0.64, 0.0)]
    clip = _on_photo([fullbody_cutout("basketball"), fullbody_cutout("messi")], motion, (854, 480), 12, 2)
    stream = engine.new_stream()
    modes, scores = [], []
    W, H = clip.size
    for i in range(12):
        p = engine.infer(cv2.resize(clip.frames[i], (640, 360), interpolation=cv2.INTER_AREA), stream).probs[1]
        modes.append(stream.track.mode)
        scores.append(iou((cv2.resize(p, (W, H)) * 255).astype(np.uint8), clip.truth[i]))
    switches = sum(a != b for a, b in zip(modes, modes[1:]))
    assert switches <= 2, modes
    assert np.mean(scores) > 0.7, np.round(scores, 3)


def _meet_and_part(clip):  # type: ignore[no-untyped-def]
    """The first frame the truth's two people touch, and the first after that with both apart again."""
    parts = [cv2.connectedComponents(t)[0] - 1 for t in clip.truth]
    together = parts.index(1)
    return together, together + parts[together:].index(2)


def test_the_one_behind_is_followed_again_as_soon_as_two_people_part(engine) -> None:  # type: ignore[no-untyped-def]
    """Two full bodies cross; while they overlap the stream shows both through the landscape model.  Once
    they part, the one who was behind must get a region of their own within a few frames: detections come
    faster after an overlap, and a detection beside the followed person is not taken for them because it
    lies inside their (large, wide-pose) region."""
    clip = _clip("footage-crossing", static=30, moving=120)
    together, apart = _meet_and_part(clip)
    ours = offline_alphas(engine, clip)
    after = [iou(ours[i], clip.truth[i]) for i in range(apart, min(len(clip), apart + 15))]
    assert np.mean(after) >= 0.9, (apart, np.round(after, 3))


def test_a_second_person_the_detector_barely_sees_is_followed_too() -> None:
    """Over a graffiti wall the pose detector scores the person in dark clothes 0.05-0.3 (a busy
    background's false hits score as much) and the selfie models do not see him at all.  Such a faint
    detection beside a followed person is taken when the pose model is sure of it, twice, with a whole
    body by its own landmarks: from the stream's first frame both people are followed, and kept.  Their
    regions settle on them within the first frame, so the still opening holds still from its start (a
    region cut from a rough crop's landmarks is itself off: the masks used to jump on frames 1 and 2)."""
    clip = _clip("footage-crossing-graffiti", static=12, moving=2)
    eng = EmbeddedEngine(alternate_ms=0)  # every person's pose run every frame, whatever this host's speed
    ours = offline_alphas(eng, clip)
    eng.close()
    n, labels = cv2.connectedComponents(clip.truth[11])
    assert n == 3  # two people apart
    for i in (1, 2):
        assert (ours[11][labels == i] >= 128).mean() > 0.85, i
    assert iou(ours[11], clip.truth[11]) > 0.85
    assert iou(ours[0], clip.truth[0]) > 0.85  # both on the first frame (0.58: one of them, before)
    assert flicker(ours, clip.static_frames) <= 0.01


def test_a_lone_person_the_detector_barely_sees_is_found_on_the_first_frame(engine) -> None:  # type: ignore[no-untyped-def]
    """Alone over a graffiti wall, the person in dark clothes gets no detection the detector is sure of;
    among its faint ones (tiles too), the one the pose model is sure of, with a whole body by its own
    landmarks, starts body mode at once.  Before, the stream stayed in bust mode, whose models barely see
    him, for the whole still opening (0.35 IoU)."""
    clip = _clip("footage-dark-graffiti", static=8, moving=2)
    ours = offline_alphas(engine, clip)
    assert min(iou(ours[i], clip.truth[i]) for i in range(8)) > 0.85
    assert flicker(ours, clip.static_frames) <= 0.01


def _crossed(name: str):  # type: ignore[no-untyped-def]
    """A crossing clip, the engine's masks with every person's pose run every frame (whatever this host's
    speed), the first frame the truth's two people touch and the first after that they are apart."""
    clip = _clip(name, static=30, moving=120)
    together, apart = _meet_and_part(clip)
    eng = EmbeddedEngine(alternate_ms=0)
    ours = offline_alphas(eng, clip)
    eng.close()
    return clip, ours, together, apart


def test_people_who_crossed_are_followed_again_in_a_720p_frame() -> None:
    """Two people half the frame high cross at 1280x720.  Their two tracks merge while one hides behind
    the other: that starts the search for the one behind, and once they part both are followed again
    within a few frames (a detection between the two, rejected while they overlapped, blocks nothing)."""
    clip, ours, _, apart = _crossed("footage-crossing-small")
    after = [iou(ours[i], clip.truth[i]) for i in range(apart + 5, min(len(clip), apart + 20))]
    assert np.mean(after) >= 0.85, (apart, np.round(after, 3))
    assert min(iou(ours[i], clip.truth[i]) for i in range(len(clip))) > 0.3


@pytest.mark.parametrize("name, floor", [("footage-crossing", 0.88), ("footage-crossing-small", 0.85),
                                         ("footage-crossing-graffiti", 0.82)])
def test_the_one_behind_is_shown_while_two_people_overlap(name: str, floor: float) -> None:
    """From the first frame two people touch until 10 frames after they part.  Each person's pose run
    sees the others' last masks painted grey (the pose model finds the most prominent person in a region:
    cut around the one behind, it found the one in front), and the path of a person gone behind someone
    is looked along.  Before, the one behind was missing for up to 20 of these frames.  How many frames
    the one behind is briefly lost for (bust mode until the next detection) depends on the CPU's
    arithmetic: their presence score sits near the bar while they are mostly hidden.  Over the graffiti
    wall the one behind (dark clothes) was lost from the frame they left the one in front's side until the
    truth parts them: the detector's hit on them lies within reach of the one in front's hips, and on its
    rough region the pose model is unsure of them, sure on the region their own mask gives."""
    clip, ours, together, apart = _crossed(name)
    window = [iou(ours[i], clip.truth[i]) for i in range(together, apart + 10)]
    assert np.mean(window) >= floor, (together, apart, np.round(window, 2))


def test_the_one_in_front_stays_shown_while_bust_mode_looks_for_the_one_behind() -> None:
    """Two people cross; the one behind is lost behind the one in front, and the stream is in bust mode
    until the next detection.  Over a busy background the bust models lost the one in front too (down to
    0.12 IoU over the graffiti wall; 0.67 of the people shown on footage-crossing).  The one in front is
    followed by the pose model on their own region through those frames."""
    clip = _clip("footage-crossing", static=30, moving=120)
    eng = EmbeddedEngine(alternate_ms=0)
    ctx = eng.new_stream()
    scores = []
    for i, frame in enumerate(clip.frames):
        out = eng.infer(frame, ctx)
        if ctx.track is not None and ctx.track.mode == "bust" and ctx.track.front is not None:
            scores.append(iou((cv2.resize(out.probs[1], clip.size) * 255).astype(np.uint8), clip.truth[i]))
    eng.close()
    assert scores, "nobody was lost behind the one in front"
    assert np.mean(scores) > 0.8, np.round(scores, 2)


@pytest.fixture(scope="module")
def graffiti():  # type: ignore[no-untyped-def]
    """footage-crossing-graffiti (two whole bodies crossing before a painted wall), rendered once."""
    return _clip("footage-crossing-graffiti", static=30, moving=120)


def _played_without(clip, skipped: set[int], window: range) -> list[float]:  # type: ignore[no-untyped-def]
    """IoU on the frames of ``window`` that were played, with the frames ``skipped`` left out of the clip
    (as a server behind the video leaves them out) and every other frame run offline."""
    kept = [i for i in range(len(clip)) if i not in skipped]
    played = Clip(clip.name, clip.frames[kept], clip.truth[kept], clip.fps, range(0), range(0), clip.description)
    eng = EmbeddedEngine(alternate_ms=0, pair_ms=0)
    ours = offline_alphas(eng, played)
    eng.close()
    return [iou(ours[j], played.truth[j]) for j, i in enumerate(kept) if i in window]


def test_frames_a_busy_server_skipped_do_not_turn_a_figure_painted_on_the_wall_into_a_person(
        graffiti) -> None:  # type: ignore[no-untyped-def]
    """Live, a server behind the video skips frames (the newest wins), and the engine's detections fall on
    other frames than offline.  On footage-crossing-graffiti, with the frames one live run skipped, a
    detection found the cartoon painted on the wall (hips above the frame's top, a region larger than the
    frame), its region covered both people, one of them was taken to have gone behind it, and bust mode,
    which over the wall shows little more than one person, took over for 14 frames (0.57-0.76).  A body
    whose hips are above the frame is nobody in front of the camera."""
    window = _played_without(graffiti, {2, 3, 4, 5, 85, 87, 93, 106, 117, 124, 140, 141, 148},  # as that run's
                             range(133, 147))                                            # server skipped
    assert min(window) > 0.85, np.round(window, 3)


def test_once_everyone_who_overlapped_is_back_no_blob_beside_them_is_taken_for_the_one_behind(
        graffiti) -> None:  # type: ignore[no-untyped-def]
    """While the one behind is looked for, the place where the pair was is kept for them (``_Track.behind``).
    On footage-crossing-graffiti, with the frames one virtual-clock replay skipped, both were found again
    and the place outlived the search: a blob of the painted wall beside them met it, was taken for the one
    behind and shown (0.38).  Once everyone who overlapped is shown again, nobody is behind anyone."""
    window = _played_without(graffiti, {2, 3, 4, 5, 85, 91, 93, 98, 100, 101, 102},  # as that replay's server
                             range(99, 112))                                   # skipped
    assert min(window) > 0.85, np.round(window, 3)


@pytest.fixture(scope="module")
def crossing_small():  # type: ignore[no-untyped-def]
    """footage-crossing-small (two whole bodies crossing at 1280x720), rendered once for the tests below."""
    return _clip("footage-crossing-small", static=30, moving=120)


def test_the_one_hidden_behind_stays_shown_as_they_come_out(crossing_small) -> None:  # type: ignore[no-untyped-def]
    """footage-crossing-small: as one man walks behind the other, their two tracks end on one person, and
    one track is dropped.  Where the one behind was is remembered (``_Track.behind``): the landscape model's
    blob there speaks inside the regions for him.  But only while part of him showed: hidden entirely for a
    few frames, he was forgotten.  When he came out, the region followed slid onto him, the one in front was
    in no mask (0.74-0.78), then lost, and body mode began again with one of the two (0.44-0.47).  The place
    is now kept while he is looked for along his path (``_Track.hidden``), and the pair's mask marks it."""
    clip = crossing_small
    ious = _offline_ious(Clip(clip.name, clip.frames[:100], clip.truth[:100], clip.fps, range(0), range(0),
                              clip.description), range(93, 100))
    assert min(ious) > 0.8, np.round(ious, 3)


def test_once_everyone_who_overlapped_is_shown_again_the_search_for_them_ends(
        monkeypatch: pytest.MonkeyPatch, crossing_small) -> None:  # type: ignore[no-untyped-def]
    """After two people overlap, detections come every ``search_every`` frames and search the frame, both
    tiles and the frame with the people followed painted out, for the one behind.  Live, each took several
    normal frames' time and the frames after it came late or were skipped, also once both people were
    shown again and nobody was left to find.  Once as many people are shown as overlapped, detections are
    back on the settled schedule, and both people stay shown."""
    from m2fp_server.engines import embedded_detect
    clip = crossing_small
    frame = [0]
    ran: list[int] = []  # the frames the detector ran on
    detect = embedded_detect.PoseDetector.__call__

    def recorded(self, rgb, max_people=4):  # type: ignore[no-untyped-def]
        ran.append(frame[0])
        return detect(self, rgb, max_people)
    monkeypatch.setattr(embedded_detect.PoseDetector, "__call__", recorded)
    eng = EmbeddedEngine(alternate_ms=0, pair_ms=0)
    stream, out = eng.new_stream(), []
    searched, back = False, None  # whether people overlapped; the first frame both were shown again after it
    for i, f in enumerate(clip.frames):
        frame[0] = i
        p = eng.infer(cv2.resize(f, (640, 360), interpolation=cv2.INTER_AREA), stream).probs[1]
        out.append((cv2.resize(p, clip.size) * 255).astype(np.uint8))
        tr = stream.track
        searched = searched or tr.search > 0
        if searched and back is None and tr.mode == "body" and \
                sum(b.trial == 0 and b.shown > 0 for b in tr.bodies) == 2:
            back = i
    every = eng.settings.redetect_every
    eng.close()
    assert back is not None and back < len(clip) - 2 * every, back  # they overlapped, and both were found again
    after = sorted({i for i in ran if i > back})
    assert len(after) >= 2 and all(b - a >= every for a, b in zip(after, after[1:])), (back, after)
    assert min(iou(out[i], clip.truth[i]) for i in range(back + 1, len(clip))) > 0.88


def test_a_whole_body_in_a_wide_pose_is_followed_alone(engine) -> None:  # type: ignore[no-untyped-def]
    """Messi mid-kick, alone on a street: the detector's rough body circle for the spread arms and legs
    ends just beyond the frame's bottom, which made him a person cut by the frame (bust mode).
    Such a near miss asks the tiles, whose circle fits, and the pose model's landmarks agree."""
    clip = _street_still([fullbody_cutout("messi")], [Placement(0.5, 0.95, 0.75, 0.0)], (640, 480))
    ours = offline_alphas(engine, clip)
    assert min(iou(ours[i], clip.truth[i]) for i in range(len(clip))) > 0.92


@pytest.mark.parametrize("body, bust", [
    (("catcher", Placement(0.72, 0.9, 0.6, 0.0)), ("grace_hopper", Placement(0.3, 1.02, 0.75, 0.0))),
    (("catcher", Placement(0.55, 0.88, 0.55, 0.0)), ("grace_hopper", Placement(0.28, 1.02, 0.78, 0.0))),
])
def test_a_whole_body_beside_a_bust_is_followed_from_the_first_frame(engine, body, bust) -> None:  # type: ignore[no-untyped-def]
    """A bust near the camera and a whole body further back, on a street: the letterboxed frame reports
    only the bust (the detector favours the person nearest the camera), and the selfie models of bust
    mode barely see the man in dark clothes (none of him was shown before).  Bust-mode detections look at
    one tile in turn (both on a stream's first frame): he is followed, the bust shown by the landscape
    model, also where his square region cuts it, and without coming and going on the still picture (a
    blob shown keeps a lower bar)."""
    cutouts = [fullbody_cutout(body[0]), bust_cutout(bust[0])]  # the bust drawn last: in front
    clip = _street_still(cutouts, [body[1], bust[1]], (854, 480), static=30)
    ours = offline_alphas(engine, clip)
    n, labels = cv2.connectedComponents(clip.truth[0])
    assert n == 3  # the bust and the body apart
    for i in (1, 2):
        assert (ours[0][labels == i] >= 128).mean() > 0.9, i
        assert (ours[29][labels == i] >= 128).mean() > 0.9, i
    assert min(iou(ours[i], clip.truth[i]) for i in range(len(clip))) > 0.84
    assert flicker(ours, clip.static_frames) <= 0.01


def test_a_bust_the_whole_bodys_region_covers_stays_shown(engine) -> None:  # type: ignore[no-untyped-def]
    """A whole body and a bust close beside them: the body's square region covers most of the bust.  Inside
    the regions only the pose model spoke, and it sees the body alone; half the bust was missing on every
    frame.  The detector is sure of the bust (its face), so the landscape model's blob on it speaks inside
    the regions too."""
    cutouts = [fullbody_cutout("catcher"), bust_cutout("grace_hopper")]
    clip = _street_still(cutouts, [Placement(0.5, 0.95, 0.85, 0.0), Placement(0.8, 1.05, 0.9, 0.0)], (854, 480),
                         static=32)
    ours = offline_alphas(engine, clip)
    n, labels = cv2.connectedComponents(clip.truth[0])
    assert n == 3  # the body and the bust apart
    for f in (0, 16, 31):  # a detection on frames 0, 15 and 30
        for i in (1, 2):
            assert (ours[f][labels == i] >= 128).mean() > 0.9, (f, i)
    assert min(iou(ours[i], clip.truth[i]) for i in range(len(clip))) > 0.9
    assert flicker(ours, clip.static_frames) <= 0.01


@pytest.mark.parametrize("kick, other, size", [
    (Placement(0.25, 0.97, 0.5, 0.0), ("basketball", Placement(0.6, 0.92, 0.7, 0.0)), (640, 480)),
    (Placement(0.3, 0.98, 0.55, 0.0), ("catcher", Placement(0.7, 0.9, 0.75, 0.0)), (854, 480)),
])
def test_a_whole_body_in_a_wide_pose_beside_another_is_followed_from_the_first_frame(
        engine, kick, other, size) -> None:  # type: ignore[no-untyped-def]
    """Messi mid-kick near the frame's bottom beside somebody standing.  The detector's body circle for his
    spread arms and legs ends beyond the frame's bottom, so he was not followed while somebody else was
    (or, once followed, dropped at the next detection as a person the frame cuts).  A detection that nearly
    fits is a whole body when the pose model's own landmarks say so and show its legs; a followed person
    stays followed while their landmarks say they are whole."""
    clip = _street_still([fullbody_cutout("messi"), fullbody_cutout(other[0])], [kick, other[1]], size, static=32)
    ours = offline_alphas(engine, clip)
    n, labels = cv2.connectedComponents(clip.truth[0])
    assert n == 3
    for f in (0, 16, 31):
        for i in (1, 2):
            assert (ours[f][labels == i] >= 128).mean() > 0.9, (f, i)
    assert min(iou(ours[i], clip.truth[i]) for i in range(len(clip))) > 0.9
    assert flicker(ours, clip.static_frames) <= 0.01


def test_a_whole_body_the_detector_misses_beside_another_is_followed_once_the_landscape_model_sees_him(
        engine) -> None:  # type: ignore[no-untyped-def]
    """``random-231``: Messi mid-kick and a man in grey beside a squirrel.  The detector does not report the
    man (nor the tiles); from frame 11 the landscape model has a blob on him, which the pose model said was
    somebody, so that blob was shown, poorly (0.53-0.79 for thirty frames).  A blob outside the regions that
    the pose model finds a whole body in, legs seen, is followed by the pose model from then on.  The
    squirrel's head by his hands is partly in his mask, by how much depends on the CPU's arithmetic (his
    worst frame fell below 0.85 on one CI machine and under ``M2FP_NUDGE``): the bars are on him being
    followed."""
    clip = _clip("random-231", static=10, moving=40)
    ours = offline_alphas(engine, clip)
    followed = [iou(ours[i], clip.truth[i]) for i in range(15, len(clip))]
    assert np.mean(followed) > 0.87 and min(followed) > 0.8, np.round(followed, 2)


def test_a_still_picture_keeps_a_big_whole_bodys_region_still(engine) -> None:  # type: ignore[no-untyped-def]
    """``random-600``: Messi mid-kick filling the frame, cut by its right edge, over a still aerial photo.  The
    mask steers his region and the region the mask, and for him that loop did not settle: the region
    changed on each of the first frames of the still picture by just over the deadband (0.09 % flicker,
    target 0.01 %).  A region whose picture has not changed since it was placed now stays where it is."""
    clip = _clip("random-600", static=12, moving=2)
    ours = offline_alphas(engine, clip)
    assert flicker(ours, clip.static_frames) <= 0.01
    assert min(iou(ours[i], clip.truth[i]) for i in clip.static_frames) > 0.9


def test_a_person_lost_behind_someone_stays_shown_by_the_landscape_model() -> None:
    """``random-618``: a man in black walks in front of Messi mid-kick, over a playing video of a tree.
    Once Messi is mostly behind him, the pose model on Messi's region (the man painted out) is sure of
    nobody: Messi was lost, and from the next detection on only the man was followed and shown (moving
    part 0.72; Messi's arm and legs stick out inside the man's region, where only the pose model spoke).
    Where a person was lost behind someone, the landscape model's blobs speak inside the regions too, while
    a part of them that no followed person's mask holds is left.  Every person's pose model runs on every
    frame here (``alternate_ms=0``): with turns taken as the host's timing says, the frame Messi is lost
    on, and so the frames after it, depend on that timing (one run on this machine lost him for good)."""
    clip = _clip("random-618", static=10, moving=60)
    after = _offline_ious(clip, range(36, len(clip)))
    assert np.mean(after) > 0.85 and min(after) > 0.8, np.round(after, 2)


@pytest.mark.parametrize("seed", [0, 3, 5, 6, 7])
def test_somebody_partly_behind_someone_is_found_on_the_first_frame(seed: int) -> None:
    """``random-618``'s still opening: Messi mid-kick partly behind a man in black.  With the man painted out
    the pose model was sure of Messi on the detector's region, but the paint hid his head, the region his
    mask gave cut it off, and there the pose model was sure of nobody: he was rejected as a false hit and
    only the man was shown.  Whether another detection of him got through hung on one grey level: the clip
    as rendered passed, half the nudges (``nudge``, as another CPU rounds) did not, and under some he was
    never followed at all (docs/engines.md, "Session 43").  The region of his landmarks, which place the
    parts the paint hides too, gets a look before a sure detection is dropped."""
    clip = _clip("random-618", static=3, moving=2)
    if seed:
        clip = nudge(clip, seed)
    still = _offline_ious(clip, clip.static_frames)
    assert min(still) > 0.85, np.round(still, 3)


def test_somebody_found_behind_someone_but_never_sure_is_shown_by_the_landscape_model() -> None:
    """``random-644``: Messi mid-kick mostly behind a man in black, on a still picture.  The detector finds
    him, but the pose model on his region (the man painted out) is never sure of him (presence 0.4-0.5): he
    was dropped before ever being shown, so no mask of his was kept for the landscape model to speak for
    him, and from the detection that stopped retrying him on, only the man was shown (IoU 0.55).  The pose
    model's mask of him from that run is remembered, and the landscape blob he and the man make together
    keeps the lower bar of a blob known to hold people."""
    clip = _clip("random-644", static=30, moving=2)
    still = _offline_ious(clip, clip.static_frames)
    assert min(still) > 0.85, np.round(still, 2)


@pytest.mark.parametrize("static, moving", [(30, 90), (2, 100)])
def test_a_landscape_blob_that_is_nobody_stays_unshown_beside_a_walking_person(static: int, moving: int) -> None:
    """``random-656``: one whole body walking over a panned photo of a baboon's face, whose cheek and nose
    the landscape model takes for a person.  With 30 still frames: asked about, the pose model on a region
    around the cheek's blob found somebody, but it was the man followed (painted out grey, his silhouette
    still reads as a person), and the blob showed beside him for a few frames each time it came back (IoU
    0.33-0.5 from frame 75 on); the pose model's person must now be on the blob.  With 2: the nose's blob
    spans the man's region and only its part outside the region was asked about (nobody); the landscape
    model's answer is reused for two frames after each run, and when the region moved on such a frame the
    rest, now outside it, showed as a strip along the region's edge (IoU 0.57-0.64)."""
    clip = _clip("random-656", static=static, moving=moving)
    ious = _offline_ious(clip, clip.moving_frames)
    assert min(ious) > 0.85, np.round(ious, 2)


def test_an_animal_the_pose_model_takes_for_a_person_stays_unshown_beside_a_walking_person() -> None:
    """``random-667``: a man walking in front of a squirrel filling the frame.  From frame 18 the landscape
    model's blob on the squirrel, asked about, had the pose model sure of a person there (0.82, its mask on
    the squirrel), and the squirrel was shown for the rest of the clip (IoU 0.15-0.35).  A blob is now
    somebody by the pose model only where it also sees legs or the detector finds somebody there too (the man
    of ``random-231``, legs seen, is still followed: ``test_a_whole_body_the_detector_misses_beside_...``)."""
    clip = _clip("random-667", static=10, moving=20)
    ious = _offline_ious(clip)
    assert min(ious) > 0.85, np.round(ious, 2)


def test_somebody_mostly_behind_another_is_found_on_a_region_the_size_of_the_one_in_front() -> None:
    """``random-725``: a man standing mostly behind Messi mid-kick, on a still picture.  The detector sees
    only the man's uncovered part and gives him a body circle a quarter of his size; the region cut from it
    showed the pose model half a torso, which it said was nobody, and he was missing for 34 frames.  A
    detection whose region is much smaller than the people followed is looked at again on a region their
    size, around and above its hips (the pose model needs the head)."""
    clip = _clip("random-725", static=10, moving=2)
    found = _offline_ious(clip, range(6, 10))
    assert min(found) > 0.7, np.round(found, 2)


def test_a_whole_body_no_detection_comes_near_is_found_on_the_landscape_models_faint_blob() -> None:
    """``random-741``: a small man in grey standing in front of toys (rubberwhale1.png), the camera panning.
    The detector reports nothing near him, on the whole frame or the tiles, for 36 frames, and the selfie
    models show nothing on him: he was missing until frame 38.  The landscape model lights him up faintly (well below
    one half); with nobody detected, its upright faint blobs are asked of the pose model."""
    clip = _clip("random-741", static=4, moving=2)
    ious = _offline_ious(clip)
    assert min(ious) > 0.85, np.round(ious, 2)


def test_a_whole_body_beside_a_bust_is_found_when_only_the_bust_is_detected() -> None:
    """``random-790``: a man in grey standing beside an astronaut's bust over trees.  The detector reports
    the astronaut alone, on the frame and on the tiles, and neither selfie model lights him up: he was
    missing for 80 frames (IoU 0.80, the astronaut alone).  The pose model on the square of the frame away
    from the bust finds him."""
    clip = _clip("random-790", static=4, moving=2)
    ious = _offline_ious(clip)
    assert min(ious) > 0.9, np.round(ious, 2)


def test_a_bust_beside_a_small_whole_body_is_shown_from_the_first_frame() -> None:
    """``random-809``: a small man in grey followed in body mode, and an astronaut's bust beside him.  The
    detector is sure of her, but her hips lay inside his square region, and a detection whose hips are in a
    followed person's region was taken for his own (a wide pose): she was left out for the still opening's
    first four frames, then shown (IoU 0.19, flicker 2.6 %).  His own detection also has its face in his
    mask's box, or before he has one, near his region's middle column."""
    clip = _clip("random-809", static=6, moving=2)
    ious = _offline_ious(clip, range(6))
    assert min(ious) > 0.75, np.round(ious, 2)


def test_a_bust_the_detector_says_the_frame_cuts_is_not_followed_as_a_whole_body_from_the_first_frame() -> None:
    """``random-1028``: Messi mid-kick and an astronaut's bust over a playing video.  On the first frame the
    pose model, on the square along Messi's row that holds her, drew her legs inside the frame and was
    sure of a whole body; she was followed as one, the next detection said the frame cuts her, and from
    then on the landscape model showed her: the still opening's first mask differed from the rest (IoU
    0.83 against 0.96, flicker 0.37 %).  The detector's own verdict on whoever is in that square counts."""
    clip = _clip("random-1028", static=6, moving=2)
    ious = _offline_ious(clip, range(6))
    assert min(ious) > 0.9, np.round(ious, 3)


def test_a_kick_the_pose_model_finds_along_the_row_is_followed_from_the_first_frame() -> None:
    """``random-812``: a man in grey and Messi mid-kick beside him over a dark floor.  On the first frame the
    pose model found Messi on the square along the man's row, but the detector's body circle for a kick is
    too big (it ends just beyond the frame's bottom), and the rule that drops a bust the detector says the
    frame cuts (random-1028, above) dropped him: he was found at the next detection and shown four frames
    into the still opening (IoU 0.91 before, 0.92 after; flicker 0.07 % over these six frames).  A circle
    that nearly fits is a wide pose there too (``NEARLY_FITS``), as wherever a detection is checked for a
    whole body."""
    clip = _clip("random-812", static=6, moving=2)
    eng = EmbeddedEngine(alternate_ms=0, pair_ms=0)
    ours = offline_alphas(eng, clip)
    eng.close()
    assert flicker(ours, clip.static_frames) <= 0.01
    assert min(iou(ours[i], clip.truth[i]) for i in range(6)) > 0.93


def test_a_faint_man_beside_a_kick_is_shown_from_the_first_frame() -> None:
    """``random-1061``: Messi mid-kick and, beside his raised foot, a small man in dark clothes before a
    graffiti wall, at 1280x720.  The detector gives the man a faint hit (0.12), with his hips inside the
    square region of Messi's wide pose; a faint hit inside a region found was taken for that person and
    not looked at until the next detection, so the man appeared four frames into the still opening (IoU
    0.73 before him, flicker 0.37 %).  Where the pose model has seen the people found, their hips say who is
    who, and the man is checked with them painted out."""
    clip = _clip("random-1061", static=6, moving=2)
    ious = _offline_ious(clip, range(6))
    assert min(ious) > 0.85, np.round(ious, 3)


def test_a_region_that_runs_off_the_frame_ends_that_track() -> None:
    """``random-1025``: Messi mid-kick behind an astronaut's bust over a painting, at 1280x720.  Followed in
    body mode, a region took in her body, which the frame's bottom cuts: its mask spilled into the crop's
    replicated border, the region grew to hold it and the mask with it, frame after frame, from 400 to
    9000 pixels with its centre far below the frame, and the pose model kept scoring the crop.  Her head
    was in no mask (IoU down to 0.67).  A region over twice the frame's height ends that track."""
    from m2fp_server.evaluation.evaluate import send_size
    clip = _clip("random-1025", static=10, moving=55)
    eng = EmbeddedEngine(alternate_ms=0, pair_ms=0)
    stream = eng.new_stream()
    w, h = send_size(clip, eng)
    sides, ious = [], []
    for i, frame in enumerate(clip.frames):
        out = eng.infer(cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA), stream)
        sides += [b.roi.side / h for b in stream.track.bodies]
        ious.append(iou((cv2.resize(out.probs[1], clip.size) * 255).astype(np.uint8), clip.truth[i]))
    eng.close()
    assert max(sides) < 3.0, round(max(sides), 1)  # a region over 2 is dropped before it is run (26 before)
    assert min(ious[50:]) > 0.8, np.round(ious[50:], 2)


def test_a_small_man_in_grey_beside_a_whole_body_is_found_on_squares_along_their_row() -> None:
    """``random-842``: Messi and, further along, a small man in grey, over an aloe.  The detector, which
    letterboxes its input to 224x224, gives him no hit on the frame or its tiles; on a square the size of
    Messi's region it does.  He is shown from the first frame (before: missing until frame 34, IoU 0.65)."""
    clip = _clip("random-842", static=6, moving=2)
    ious = _offline_ious(clip, range(6))
    assert min(ious) > 0.85, np.round(ious, 2)


@pytest.mark.parametrize("name", ["random-893", "random-845"])
def test_a_man_the_detector_never_reports_beside_a_whole_body_is_found_by_the_pose_model_along_their_row(
        name: str) -> None:
    """``random-893``: Messi and a man in black over a graffiti wall; ``random-845``: Messi and a man in grey
    close beside him.  The detector gives the man no hit on the frame, its tiles or the squares along
    Messi's row; the pose model, on the square that holds him (Messi painted out), is sure of his whole body.
    He is shown from the first frame (before: missing for the whole still opening, IoU 0.64 and 0.56)."""
    clip = _clip(name, static=6, moving=2)
    ious = _offline_ious(clip, range(6))
    assert min(ious) > 0.85, np.round(ious, 2)


def test_squares_along_a_row_lie_inside_the_frame_and_cover_it() -> None:
    """``_along_squares``: squares the size of the region (at most the frame's height), on its row, both ways
    to the frame's edges with no gap, each inside the frame, the first beside the region, none twice."""
    from m2fp_server.engines.embedded import _along_squares
    from m2fp_server.engines.embedded_models import Roi

    for roi, (W, H) in [(Roi(300, 300, 200), (854, 480)), (Roi(312, 322, 414), (640, 480)),
                        (Roi(20, 460, 900), (1280, 720)), (Roi(1270, 10, 100), (1280, 720)),
                        (Roi(400, 240, 8), (854, 480))]:
        squares = _along_squares(roi, W, H)
        side = int(min(roi.side, W, H))
        assert len(squares) == len(set(squares))
        if side < 16:
            assert squares == []
            continue
        assert squares and all(s == side and 0 <= x0 <= W - side and 0 <= y0 <= H - side for x0, y0, s in squares)
        assert abs(squares[0][0] + side / 2 - roi.cx) <= side  # the first one beside the region
        xs = sorted(x0 for x0, _, _ in squares)
        # the row is covered to the frame's edges on both sides of the region
        assert xs[0] == 0 or roi.cx - side / 2 <= 0 and xs[0] <= roi.cx
        assert xs[-1] == W - side or roi.cx + side / 2 >= W and xs[-1] + side >= roi.cx
        assert all(b - a <= side for a, b in zip(xs, xs[1:]))


def test_a_person_who_stepped_out_from_behind_someone_is_found_with_the_one_followed_painted_out() -> None:
    """``random-831``: two men in grey; one walks behind the other and out again.  Once they parted, the
    detector reported the one followed alone (and faint hits around him), on the frame and the tiles: the
    other was missing for 28 frames while standing apart (IoU 0.53-0.58).  With the one followed painted
    out the detector sees him (by the next search or the one after: the searches are ``search_every``
    frames apart)."""
    clip = _clip("random-831", static=10, moving=90)
    ious = _offline_ious(clip)
    assert min(ious[84:94]) > 0.9, np.round(ious[77:94], 2)


def test_a_man_standing_apart_found_along_the_row_is_checked_before_a_weaker_hit_on_the_one_followed() -> None:
    """``random-1098``: two men in grey over a dark wall; the smaller one stands in front of the other in
    the still opening, then walks apart.  The detector on the square along the row (the one followed
    painted out) scored him 0.85, and the frame gave a hit on the chest of the one followed (0.69) that
    his hips did not match: only that hit was checked, rejected, and he was missing for 40 frames (IoU
    0.56-0.58).  The better hit is the one checked: he is shown three frames after that detection."""
    clip = _clip("random-1098", static=10, moving=90)
    ious = _offline_ious(clip)
    assert min(ious[36:60]) > 0.9, np.round(ious[30:60], 2)


def test_a_small_man_whose_mask_a_huge_false_hit_found_is_followed_from_the_stream_s_first_frame() -> None:
    """``random-1124``: a small man in black before an inflatable toy, at 1280x720.  The best detection on
    the tiles was a false hit whose body circle was about two frames high; the pose model on that region
    found the man, and its mask settled on him, but the region followed was the detection's, dropped at once
    as one that ran off the frame (``RAN_OFF``): the still opening's first two frames lost part of him
    (IoU 0.71, 0.95 from the third), and its flicker was over the target.  The region it settled on is
    followed."""
    clip = _clip("random-1124", static=10, moving=2)
    ious = _offline_ious(clip)
    assert min(ious[:10]) > 0.9, np.round(ious[:10], 2)


def test_a_whole_body_partly_behind_a_bust_s_shoulder_is_found_on_its_faint_detection() -> None:
    """``random-1135``: Grace Hopper's bust at the left of a graffiti wall, Messi mid-kick beside her,
    partly behind her shoulder.  The pose model lost him there and bust mode followed; on the square of the
    frame away from her (``_beside_bust``) the pose model found nobody, since that square cut him in two,
    and the detector's hit on him (frame 40: 0.05 on a tile, the pose model sure of him there) was never
    checked, since the faint detections were looked at only when nobody in the frame was a bust.  He was
    missing from frame 24 on (IoU 0.75-0.86 to frame 51).  Now the faint detections beside the bust are
    checked too: he is found at the next detection."""
    clip = _clip("random-1135", static=10, moving=45)
    ious = _offline_ious(clip)
    assert np.mean(ious[27:52]) > 0.9, np.round(ious[24:52], 2)


def test_a_bust_the_tiles_take_for_a_whole_body_is_dropped_when_the_frame_s_bottom_cuts_it() -> None:
    """``random-1129``: an astronaut's bust, cut at the chest by the frame's bottom, holding her helmet, over
    fruit.  The tiles took her for a whole body (the pose model drew legs for her) and she was followed in
    body mode, whose mask leaves the helmet out, until her region ran off the frame 13 frames in (IoU 0.82
    in the still opening, 0.97-0.98 in bust mode after).  Her landmarks did not put her whole body in the
    frame, and her mask met the frame's bottom across most of its width: a bust, shown by bust mode from
    the first frame."""
    clip = _clip("random-1129", static=10, moving=2)
    ious = _offline_ious(clip)
    assert min(ious[:10]) > 0.93, np.round(ious[:10], 2)


def test_a_busy_backgrounds_blobs_are_not_shown_beside_two_people_who_overlap() -> None:
    """``random-795``: two men over a circuit board, one in front of the other.
    - When the one behind is lost, bust mode shows the landscape model's blobs until the next detection, and
      the board's capacitors lit up there (IoU 0.43-0.61 for five frames).  Between two detections this is
      body mode's frame, held to its bar for blobs.
    - A crystal on the board, asked about as a landscape blob outside their regions: the detector on it
      scored 0.73 (``ASKED_DETECTION``: somebody) with its hips 600 pixels to the side of its face, and it
      was shown for twelve frames (IoU 0.65-0.79)."""
    clip = _clip("random-795", static=10, moving=90)
    ious = _offline_ious(clip)
    assert min(ious[67:72]) > 0.7, np.round(ious[67:72], 2)
    assert np.mean(ious[77:87]) > 0.85, np.round(ious[77:87], 2)


def test_a_bust_beside_a_followed_whole_body_stays_shown_when_the_detector_is_less_sure_of_it() -> None:
    """``random-666``: an astronaut's bust cut by the frame's left edge, beside a small Messi followed in body
    mode.  Her landscape blob was asked about once (the detector there 0.71: somebody); while the detector
    was sure of her as a bust, that answer was not matched and was forgotten, and the next time her blob was
    asked the detector scored 0.68 (below ``ASKED_DETECTION``): she vanished for 15 frames (IoU 0.10)."""
    clip = _clip("random-666", static=10, moving=40)
    ious = _offline_ious(clip)
    assert min(ious) > 0.7, np.round(ious, 2)


def test_a_whole_body_found_on_part_of_them_is_followed_on_a_region_that_holds_all_of_them() -> None:
    """``random-647``: a man in grey beside Messi over trees, the detector not seeing him after they parted.
    The landscape model lit up his chest and arms; the pose model on a region around that blob was sure of
    him (0.99) but its mask covered that part, and the region cut from the mask lost him on the next frame
    (0.11 there; MediaPipe's own region from his landmarks: 0.81).  He is now followed on the region that
    keeps him, as a detection's first region is."""
    clip = _clip("random-647", static=10, moving=71)
    found = _offline_ious(clip, range(75, 81))
    assert float(np.mean(found)) > 0.72, np.round(found, 2)


def test_two_people_one_partly_behind_the_other_give_a_still_mask_from_the_first_frame(
        engine) -> None:  # type: ignore[no-untyped-def]
    """``random-213``: two whole bodies, one partly behind the other, on a still picture.  Both are found on
    the first frame, but each one's pose run saw the other painted out with the other's mask from the frame
    before (none yet for the first): their masks settled over frames 1-3, 0.015 % flicker (target 0.01 %).
    A frame on which somebody is first shown beside someone they touch, on a still picture, is run once
    more with this frame's masks."""
    clip = _clip("random-213", static=10, moving=2)
    ours = offline_alphas(engine, clip)
    assert flicker(ours, clip.static_frames) <= 0.01
    assert min(iou(ours[i], clip.truth[i]) for i in clip.static_frames) > 0.85


@pytest.mark.parametrize("behind, front", [
    (("catcher", Placement(0.375, 0.94, 0.70, 0.0)), ("basketball", Placement(0.625, 0.92, 0.66, 0.0))),
    (("catcher", Placement(0.41, 0.94, 0.70, 0.0)), ("messi", Placement(0.59, 0.92, 0.66, 0.0))),
])
def test_two_people_standing_one_partly_behind_the_other_are_both_shown_from_the_first_frame(
        engine, behind, front) -> None:  # type: ignore[no-untyped-def]
    """Two whole bodies standing close, one partly behind the other.  The hips of the one behind lie
    inside the region of the one in front, so the detection of the one behind was taken for the one in
    front: found only on the next detection, shown three frames later, and the still picture changed
    then; or, beside Messi's spread arms, the detector did not report the one behind at all.  The people
    found first are now painted out while the others are checked, and the detector looks again on the
    frame with them painted out."""
    clip = _street_still([fullbody_cutout(behind[0]), fullbody_cutout(front[0])], [behind[1], front[1]],
                         (854, 480), static=12)
    alone = _street_still([fullbody_cutout(front[0])], [front[1]], (854, 480), static=12)
    hidden = (clip.truth[0] > 0) & ~(alone.truth[0] > 0)  # what shows of the one behind
    assert np.count_nonzero(hidden) > 0.3 * np.count_nonzero(alone.truth[0])
    ours = offline_alphas(engine, clip)
    for i in (0, 11):
        assert (ours[i][hidden] >= 128).mean() > 0.85, i
        assert iou(ours[i], clip.truth[i]) > 0.9, i
    assert flicker(ours, clip.static_frames) <= 0.01


@pytest.mark.parametrize("body, photo, size", [
    ("basketball", "home.jpg", (640, 480)),  # a domed tower against the sky
    ("catcher", "graf1.png", (1280, 720)),  # a graffiti wall's cartoon figures
])
def test_what_the_landscape_model_takes_for_people_beside_a_small_body_is_not_shown(
        engine, body, photo, size) -> None:  # type: ignore[no-untyped-def]
    """A small whole body, and beside it something the landscape model is sure is a person.  In body mode
    its confident blobs outside the followed regions were shown as they were; each is now asked about
    (the pose model, the detector) and dropped when nobody is there."""
    clip = _street_still([fullbody_cutout(body)], [Placement(0.5, 0.92, 0.45)], size, static=10, photo=photo)
    ours = offline_alphas(engine, clip)
    for i in (0, 5, 11):
        assert iou(ours[i], clip.truth[i]) > 0.85, i
    assert flicker(ours, clip.static_frames) <= 0.01


def test_a_small_body_in_dim_light_is_found_beside_the_streets_false_hits(engine) -> None:  # type: ignore[no-untyped-def]
    """``footage-small-body`` 20 % darker: the detector scores the small person below its bar and two of
    the street's false hits above it.  Those fell apart in the pose model and the faint detections were
    only looked at when the detector was sure of nobody, so the person was not shown until they moved."""
    clip = _clip("footage-small-body", static=10, moving=2)
    clip = Camera(dim=0.8).apply(clip)
    ours = offline_alphas(engine, clip)
    for i in (0, 5, 9):
        assert iou(ours[i], clip.truth[i]) > 0.8, i
    assert flicker(ours, clip.static_frames) <= 0.01


def test_a_false_hit_lost_on_trial_leaves_the_person_followed(engine) -> None:  # type: ignore[no-untyped-def]
    """The street of ``footage-small-body`` gives the detector faint hits; one passes the pose model's
    checks and is followed on trial, then vanishes.  That is a false hit gone, not a person hidden behind
    the small one: the stream must not fall back to the selfie models, which do not see a person this
    small (the whole clip's every frame keeps them)."""
    clip = _clip("footage-small-body", static=30, moving=120)
    ours = offline_alphas(engine, clip)
    worst = min(iou(ours[i], clip.truth[i]) for i in range(len(clip)))
    assert worst > 0.7, worst


def test_people_take_turns_on_a_host_too_slow_for_all_their_pose_runs() -> None:
    """Two whole bodies cost two pose runs a frame.  Where those take longer together than
    ``alternate_ms`` (measured), one person is run per frame in turn and the other's last mask is carried
    on: half the runs, both people still shown, still people held still."""
    clip = _clip("footage-crossing", static=16, moving=16)
    runs: dict[float, list[int]] = {}
    alphas = {}
    for limit in (0.0, 0.001):  # never / always (any measured pose run takes longer than 1 µs)
        eng = EmbeddedEngine(alternate_ms=limit)
        count = [0]
        inner = eng._pose.run

        def counted(x, inner=inner, count=count):  # type: ignore[no-untyped-def]
            count[0] += 1
            return inner(x)
        eng._pose.run = counted  # type: ignore[method-assign]
        stream = eng.new_stream()
        per_frame, out = [], []
        for f in clip.frames:
            before = count[0]
            p = eng.infer(cv2.resize(f, (640, 360), interpolation=cv2.INTER_AREA), stream).probs[1]
            per_frame.append(count[0] - before)
            out.append((cv2.resize(p, clip.size) * 255).astype(np.uint8))
        runs[limit], alphas[limit] = per_frame, np.stack(out)
        assert len(stream.track.bodies) == 2
    # per frame, median (a detecting frame may add a pose check of a new detection)
    assert np.median(runs[0.0]) == 2 and np.median(runs[0.001]) == 1, runs
    assert flicker(alphas[0.001], clip.static_frames) <= 0.01
    every = mean_iou(alphas[0.0], clip.truth, clip.moving_frames)
    turns = mean_iou(alphas[0.001], clip.truth, clip.moving_frames)
    assert turns >= 0.85 and turns > every - 0.05, (every, turns)


def test_a_person_waiting_their_turn_moves_by_their_own_flow() -> None:
    """While two people take turns (``alternate_ms``), the one not run this frame is moved on by the flow
    inside their last mask, not by their region's speed (which trails a walking person: the region steps
    only past the deadband, and its speed is a median of the last steps).  Before they meet, taking turns
    then costs next to nothing against running both every frame."""
    clip = _clip("footage-crossing-small", static=8, moving=24)
    alphas = {}
    for limit in (0.0, 0.001):  # never / always
        eng = EmbeddedEngine(alternate_ms=limit, pair_ms=0)
        stream = eng.new_stream()
        out = []
        for f in clip.frames:
            p = eng.infer(cv2.resize(f, (640, 360), interpolation=cv2.INTER_AREA), stream).probs[1]
            out.append((cv2.resize(p, clip.size) * 255).astype(np.uint8))
        alphas[limit] = np.stack(out)
        assert len(stream.track.bodies) == 2
    every = mean_iou(alphas[0.0], clip.truth, clip.moving_frames)
    turns = mean_iou(alphas[0.001], clip.truth, clip.moving_frames)
    assert turns > every - 0.02, (every, turns)


def test_people_taking_turns_beside_each_other_move_by_their_own_flow() -> None:
    """Two people walking side by side, their boxes overlapping (a wide pose's arms reach the other), while
    they take turns: the one not run this frame is moved by the flow in the part of their last mask that is
    not the other's last mask.  Before, the flow was used only while nobody else's box touched theirs, and
    otherwise their region's speed, which trails a walking person (it steps only past the deadband)."""
    clip = _clip("footage-crossing", static=30, moving=120)
    together, apart = _meet_and_part(clip)
    scores = {}
    for limit in (0.0, 0.001):  # never / always
        eng = EmbeddedEngine(alternate_ms=limit)
        ours = offline_alphas(eng, clip)
        eng.close()
        scores[limit] = float(np.mean([iou(ours[i], clip.truth[i]) for i in range(together, apart)]))
    assert scores[0.001] > scores[0.0] - 0.05, scores


def test_a_region_shrunk_onto_part_of_a_person_is_mended_by_the_next_detection_of_them() -> None:
    """Two people walk apart, taking turns (``alternate_ms``).  Messi's region had shrunk onto his upper
    body: the pose model left out his kicking leg, and the region is drawn from the mask.  The detector
    found all of him again and again, but a new track whose mask is a followed person's was dropped as
    the same person, so his leg stayed missing (0.80 over the 15 frames before they part).  A new track
    whose mask is a followed person's grown, by a part that is nobody else's, hands them its region."""
    clip = _clip("footage-crossing", static=30, moving=120)
    _, apart = _meet_and_part(clip)
    eng = EmbeddedEngine(alternate_ms=0.001)  # always take turns
    ours = offline_alphas(eng, clip)
    eng.close()
    last = [iou(ours[i], clip.truth[i]) for i in range(apart - 14, apart + 1)]
    assert np.mean(last) >= 0.9, np.round(last, 2)


def test_bust_mode_drops_the_general_model_on_a_host_too_slow_for_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bust mode's second model costs one run a frame.  Where its runs take longer than ``pair_ms``
    (measured), bust mode shows the landscape model alone, exactly as ``bust=landscape`` would, and
    times the general model again only now and then; once it is fast again it is taken back."""
    import m2fp_server.engines.embedded as embedded_mod
    monkeypatch.setattr(embedded_mod, "PAIR_PROBE_EVERY", 5)
    clip = get_clip("framing-bust", background="texture:4", static=4, moving=26)
    eng, alone = EmbeddedEngine(pair_ms=40.0, hold_grey=0), EmbeddedEngine(bust="landscape", hold_grey=0)
    # the general model is timed by a clock each of its runs moves on by the slow host's time: no
    # sleep, and other processes on the host change nothing
    inner, delay, runs, now = eng._pair.general, [100.0], [0], [0.0]
    eng._pair.clock = lambda: now[0] / 1e3

    def slow_general(x):  # type: ignore[no-untyped-def]
        runs[0] += 1
        now[0] += delay[0]
        return inner(x)
    eng._pair.general = slow_general  # type: ignore[assignment]
    ours, theirs = eng.new_stream(), alone.new_stream()
    for i, f in enumerate(clip.frames[:20]):
        a, b = eng.infer(f, ours).probs[1], alone.infer(f, theirs).probs[1]
        if i >= 1:  # the first run measured it too slow: the landscape model alone since
            np.testing.assert_array_equal(a, b)
    assert ours.track.mode == "bust" and eng._pair_dropped
    assert runs[0] == 1 + 19 // 5, runs  # the first run, then one timing every 5 bust frames
    delay[0] = 0.0  # the host has time again: the next timings bring the moving average down
    for i in range(100):
        eng.infer(clip.frames[i % len(clip)], ours)
    assert not eng._pair_dropped, eng._pair.general_ms  # median of the last 9 runs: 5 fast probes
    eng.close()
    alone.close()


def test_while_people_are_followed_no_frame_waits_for_the_detector(monkeypatch: pytest.MonkeyPatch) -> None:
    """Live, a frame that ran the detector (the whole frame, then the tiles) took two or three times a
    normal frame and made the next masks late.  With ``detect_lag`` (an option), while people are followed,
    the detector runs on the engine's own thread and its decisions are taken ``detect_lag`` frames later, on
    that frame: the frames themselves never run a scheduled detection, and a slow thread changes no mask
    (the frame its decisions are due on waits for it), so live and offline, fast and slow hosts decide
    alike.  The pose model's look at the square along the row runs there too: a frame only looks again
    where it saw somebody.  Not while people take turns (``alternate_ms``).  Without it, that look waits
    for the frame after the detection's (together they took three times a frame's time)."""
    from m2fp_server.engines import embedded_detect
    clip = _clip("footage-video-fast", static=4, moving=40)
    calls: list[tuple[int, str]] = []
    frame = [0]
    detect = embedded_detect.PoseDetector.__call__

    def recorded(self, rgb, max_people=4):  # type: ignore[no-untyped-def]
        calls.append((frame[0], threading.current_thread().name))
        return detect(self, rgb, max_people)
    monkeypatch.setattr(embedded_detect.PoseDetector, "__call__", recorded)
    posed: list[int] = []  # frames the pose model looked at the square along the row on
    posed_along = EmbeddedEngine._posed_along

    def looked(self, *args):  # type: ignore[no-untyped-def]
        posed.append(frame[0])
        return posed_along(self, *args)
    monkeypatch.setattr(EmbeddedEngine, "_posed_along", looked)

    def run(lag: int, alternate_ms: float = 0.0, clip: Any = clip) -> np.ndarray:
        others = set(threading.enumerate())  # other engines' (the module's, with the default lag)
        eng = EmbeddedEngine(alternate_ms=alternate_ms, detect_lag=lag)
        stream, out = eng.new_stream(), []
        for i, f in enumerate(clip.frames):
            frame[0] = i
            p = eng.infer(cv2.resize(f, (640, 360), interpolation=cv2.INTER_AREA), stream).probs[1]
            out.append((cv2.resize(p, clip.size) * 255).astype(np.uint8))
            assert stream.track is not None and stream.track.mode == "body", i
        eng.close()
        assert not any(t.name.startswith("m2fp-detect") for t in set(threading.enumerate()) - others)
        return np.stack(out)
    now = run(0)
    main = threading.current_thread().name
    assert len({i for i, _ in calls}) >= 3, calls  # on the frames: the first, then every ``redetect_every``
    later = sum(i > 1 for i, _ in calls)
    assert [i for i in posed if i > 1], posed  # one person: the square along their row, at each detection...
    # ...on the frame after its own (when body mode begins, the squares are looked at on the first frame)
    assert not {i for i, _ in calls if i > 1} & set(posed), (calls, posed)
    calls.clear()
    posed.clear()
    lagged = run(3)
    # found on the first frame; the second detects on its own frame too (the share of the frame covered by
    # people has no reference before it: a framing change is decided at once); then the thread
    assert {i for i, name in calls if name == main} == {0, 1}, calls
    assert sum(name.startswith("m2fp-detect") for _, name in calls) == later, calls  # the same detections
    # the squares hold the street behind him: the thread's pose model saw nobody there, the frames do not look
    # (but on the frame after the second's own detection)
    assert not [i for i in posed if i > 2], posed
    assert mean_iou(lagged, clip.truth, clip.moving_frames) >= mean_iou(now, clip.truth, clip.moving_frames) - 0.01
    ahead = embedded_detect.FrameDetections.ahead

    def slow(self, *args):  # type: ignore[no-untyped-def]
        time.sleep(0.2)  # longer than the frames it has: the frame it is due on waits
        return ahead(self, *args)
    monkeypatch.setattr(embedded_detect.FrameDetections, "ahead", slow)
    assert np.array_equal(run(3), lagged)
    calls.clear()
    # two people whose pose runs take longer than that: they take turns, and the frames detect themselves
    run(3, alternate_ms=1e-3, clip=_clip("footage-crossing", static=2, moving=40))
    assert len(calls) >= 3 and {name for _, name in calls} == {main}, calls


def test_live_through_a_real_server_matches_offline(engine) -> None:  # type: ignore[no-untyped-def]
    """Played through ZeroMQ with three frames of video delay, frames shown with their own mask score
    as offline.  How many frames get their own mask depends on the machine's speed and load: that is a
    benchmark figure (README), not asserted here beyond "some".  The clip plays at 15 fps (200 ms of
    delay) so that "some" does not hang on the host: on a slow CI host the engine's full-body frames took
    92 ms p50 through the server, and only 4 frames of 24 came back within 30 fps's 100 ms."""
    clip = _clip("framing-full-body", fps=15.0)
    off = offline_alphas(engine, clip)
    alphas, ages, stats = live_run(EmbeddedEngine(), clip, Variant.parse("sync3"))
    assert stats["errors"] == 0
    own = [i for i in clip.moving_frames if ages[i] == 0]
    assert len(own) >= 5, (ages, stats)
    live, offline = mean_iou(alphas, clip.truth, own), mean_iou(off, clip.truth, own)
    assert live >= 0.88 and live >= offline - 0.03, (live, offline, stats)


def test_detector_places_hips_and_body_circle_on_real_people() -> None:
    """The SSD decoding (anchors, offsets, letterbox) lands on the person: hips inside the true box,
    the body circle about the person's height; a webcam bust's body reaches far below the frame."""
    from m2fp_server.engines.embedded_detect import PoseDetector, _anchors
    assert _anchors().shape == (2254, 2)
    det = PoseDetector()
    body = _clip("framing-full-body", static=2, moving=2)
    ys, xs = np.nonzero(body.truth[0])
    (p, *_) = det(body.frames[0])
    assert xs.min() < p.hips[0] < xs.max() and ys.min() < p.hips[1] < ys.max()
    assert 0.35 < 2 * p.body_radius / (ys.max() - ys.min()) < 1.6
    bust = get_clip("framing-bust", background="texture:4", static=2, moving=2)
    (q, *_) = det(bust.frames[0])
    assert q.hips[1] + 0.8 * q.body_radius > 1.2 * bust.frames.shape[1]


def test_bad_options_are_refused() -> None:
    from m2fp_server.engines.base import EngineUnavailable
    with pytest.raises(EngineUnavailable, match="only="):
        EmbeddedEngine(only="nonsense")
    with pytest.raises(EngineUnavailable, match="bad option value"):
        EmbeddedEngine(margin="wide")
    with pytest.raises(EngineUnavailable, match="bust="):
        EmbeddedEngine(bust="general")
    with pytest.raises(EngineUnavailable, match="detect_lag="):
        EmbeddedEngine(detect_lag=-1)


def test_bench_models_prints_each_model() -> None:
    r = subprocess.run([sys.executable, "-m", "m2fp_server.cli.main", "bench", "--models", "--seconds", "0.3"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = ["selfie general", "selfie landscape", "selfie pair", "pose landmark", "pose detector",
            "embedded engine, bust", "  the same, landscape model alone"]
    if usable_cores() >= 2:
        rows.append("pose landmark full, one region: f32, 2 threads")
    for row in rows:
        line = next(ln for ln in r.stdout.splitlines() if ln.startswith(row))
        assert float(line.split()[-3]) > 0 and float(line.split()[-2]) > 0
