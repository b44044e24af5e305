"""Frame sync in a real, headless OBS with a real m2fp-server (one short OBS run).

By default ("Frame sync" = 2) the server is asked to predict nothing (CONFIG
``predict_frames`` 0, as the server acknowledges it).  With "Frame sync" = 1 the video is
delayed one frame and the server moves each mask one frame ahead (``predict_frames`` 1),
so most frames are shown with the mask made for them from the frame before.
With sync off the server predicts the whole display lag (2); with "Frame sync" = 2
the video is delayed through the texture ring, the server is asked for no
prediction, the source still renders, its alpha matches the ground truth, and most
frames are shown with the mask made from that very frame.  Turning sync off again
releases the ring; OBS then quits with sync on (its leak count at exit covers every texture).

A second run checks the alignment itself: a person swaying left and right, each
frame's index coded as 8 black/white blocks in a corner (read back from the
screenshot's colour, which transparent mode keeps), so every screenshot's alpha
is compared with the truth of the very frame it shows and of its neighbours.
"""
from __future__ import annotations

import math
import subprocess
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest

from m2fp_server.evaluation.groundtruth import Cutout, Placement, compose, place, textured_background
from obs_harness import ObsProcess, ffmpeg_input, obs_available
from obs_harness_late_server import late_server_command
from obs_harness_server import ServerProcess
from test_obs_filter import FPS, H, W, alpha_iou, clip, iou, measure  # noqa: F401  (clip is a fixture)

pytestmark = pytest.mark.skipif(obs_available() is not None, reason=str(obs_available()))


def acked_predict(inst: dict) -> float | None:
    cfg = inst.get("server_config") or {}
    return cfg.get("predict_frames")


def test_frame_sync_in_real_obs(clip, tmp_path):  # noqa: F811
    path, truth = clip
    person = truth > 0
    srv = ServerProcess().start()
    inp = ffmpeg_input("Person", path).with_m2fp(server_address=srv.address, background_mode="transparent",
                                                 smoothing=0.0)
    obs = ObsProcess(tmp_path, [inp], size=(W, H), fps=FPS)
    report: list[str] = []
    try:
        obs.start()
        # the default is frame sync 2: the server is told to predict nothing
        inst = obs.wait_plugin(lambda i: i.get("masks", 0) >= 5 and acked_predict(i) == 0, 20.0)
        assert inst, f"no masks / no predict_frames 0 acknowledged: {obs.plugin_stats()}\n{obs.log_tail()}"
        assert inst["sync_frames"] == 2 and "sync_frames" in (inst.get("properties") or ["sync_frames"])

        # sync 1: each frame is shown with the previous frame's mask, moved 1 frame ahead
        obs.client.set_source_filter_settings("Person", "M2FP", {"sync_frames": 1}, True)
        inst = obs.wait_plugin(lambda i: i.get("sync_frames") == 1 and acked_predict(i) == 1, 5.0)
        assert inst, f"sync 1 / predict_frames 1 not acknowledged: {obs.plugin_stats()}"
        time.sleep(0.5)
        obs.reset_plugin_timings()
        # A mask is in time for sync 1 when it comes back within one frame interval: how many do depends on
        # the host (8 of 46 frames in 2 s on a slow CI host).  The claim is that they are chosen when they
        # come, so the window lasts until 10 have been shown, or 8 s.
        time.sleep(2.0)
        inst = obs.wait_plugin(lambda i: i["sync"]["own_mask"] >= 10, 6.0) or obs.plugin_stats()["instances"][0]
        sync = inst["sync"]
        report.append(f"sync 1: server runs with predict_frames {acked_predict(inst)}, mask made for the frame "
                      f"shown {sync['own_mask']}, other {sync['other_mask']}, mask age {sync['mask_age_frames']}, "
                      f"render ms {inst['timings_ms']['render']}")
        assert sync["own_mask"] >= 10, report  # the mask made for the frame shown: the previous frame's
        got = alpha_iou(obs, person)
        report.append(f"sync 1: transparent IoU {got:.3f}")
        assert got >= 0.9, report

        # sync 2: the server is told not to predict, the video goes through the ring
        obs.client.set_source_filter_settings("Person", "M2FP", {"sync_frames": 2}, True)
        inst = obs.wait_plugin(lambda i: i.get("sync_frames") == 2 and acked_predict(i) == 0, 5.0)
        assert inst, f"sync 2 / predict_frames 0 not acknowledged: {obs.plugin_stats()}"
        masks_before = inst["masks"]
        time.sleep(0.5)
        obs.reset_plugin_timings()
        counts = measure(obs, 3.0)
        inst = obs.plugin_stats()["instances"][0]
        sync = inst["sync"]
        shown = sync["own_mask"] + sync["other_mask"]
        own = sync["own_mask"] / max(1, shown)
        report.append(f"sync 2: {counts}, {inst['masks'] - masks_before} masks, {shown} frames composited, "
                      f"{own:.2f} with their own mask, mask age {sync['mask_age_frames']}, "
                      f"render ms {inst['timings_ms']['render']}")
        assert counts["render_total_frames"] >= FPS, report  # OBS kept rendering (a freeze check over 3 s)
        assert inst["masks"] - masks_before >= FPS // 2, report  # masks kept coming
        assert shown >= FPS, report  # and the filter composited through the ring
        # frames got the mask made from them (0.71-1.00 measured, depends on the machine's load; the
        # alignment itself is checked against per-frame truth in the next test)
        assert sync["own_mask"] >= 10, report
        got = alpha_iou(obs, person)
        report.append(f"sync 2: transparent IoU {got:.3f}")
        assert got >= 0.9, report
        fg_core = cv2.erode(person.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
        synced = obs.screenshot("Person")[fg_core][..., :3].astype(int)

        # sync off again: back to prediction, the ring is released
        obs.client.set_source_filter_settings("Person", "M2FP", {"sync_frames": 0}, True)
        inst = obs.wait_plugin(lambda i: i.get("sync_frames") == 0 and acked_predict(i) == 2, 5.0)
        assert inst, obs.plugin_stats()
        time.sleep(0.5)  # the server's stream restarts with the new CONFIG: judge the steady state
        got = alpha_iou(obs, person)
        report.append(f"sync off again: predict_frames 2, IoU {got:.3f}")
        assert got >= 0.9, report
        # the ring's own draw shows the same colours as OBS's filter path (the person stands still)
        direct = obs.screenshot("Person")[fg_core][..., :3].astype(int)
        diff = float(np.median(np.abs(synced - direct)))
        report.append(f"person's colours, sync vs direct: median abs difference {diff:.1f}")
        assert diff <= 6 and synced.mean() > 30, report

        # on again (3 frames) and OBS quits with the ring allocated: destroy must release it
        obs.client.set_source_filter_settings("Person", "M2FP", {"sync_frames": 3}, True)
        inst = obs.wait_plugin(lambda i: i.get("sync_frames") == 3 and i["sync"]["own_mask"] >= 5, 5.0)
        assert inst, obs.plugin_stats()
        time.sleep(0.5)  # the server's stream restarts with the new CONFIG: judge the steady state
        got = alpha_iou(obs, person)
        report.append(f"sync 3: transparent IoU {got:.3f}")
        assert got >= 0.9, report
    finally:
        print("\n[obs-sync] " + "\n[obs-sync] ".join(report))
        obs.stop()
        srv.stop()
    log = obs.log_text()
    assert "Traceback" not in log, log[-3000:]
    assert "Number of memory leaks: 0" in log, log[-3000:]


CODE_BLOCK = 16  # px per bit of the frame index in the coded clip
ALIGN_FPS = 10  # OBS's frame rate in the alignment test
CODED_FRAMES = 120


def sway(i: int) -> float:
    """±0.2 of the width, 2 s period: the person's centre at clip frame ``i``."""
    return 0.5 + 0.2 * math.sin(2 * math.pi * i / (2 * FPS))


def walk(i: int) -> float:
    """Back and forth at a steady 0.3 widths per second (±0.3 of the width, one way every 2 s)."""
    phase = (i % CODED_FRAMES) / CODED_FRAMES
    return 0.5 + 0.3 * (4 * abs(phase - 0.5) - 1)


def walk_apart(i: int) -> list[float]:
    """Two people walking apart and together again, mirrored, 0.12 widths per second each (never touching)."""
    d = 0.4 * (walk(i) - 0.5)
    return [0.24 - d, 0.76 + d]


def lean(i: int) -> float:
    """Leaning from side to side about the frame's bottom edge: ±15 degrees, 2 s period."""
    return 15.0 * math.sin(2 * math.pi * i / (2 * FPS))


def make_coded_clip(path: Path, centre: Callable[[int], float | list[float]] = sway,
                    height: float = 0.75, angle: Callable[[int], float] | None = None) -> list[np.ndarray]:
    """People moving sideways (``centre``: one centre, or one per person) and turning (``angle``, degrees
    counter-clockwise about their bottom centre) with the frame index coded top-left; truth per frame."""
    cut = Cutout.load("astronaut")
    bg = textured_background(W, H, seed=3)
    cmd = ["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}",
           "-r", str(FPS), "-i", "-", "-c:v", "libx264", "-preset", "veryfast", "-crf", "12",
           "-pix_fmt", "yuv420p", "-g", str(FPS), str(path)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    truths = []
    for i in range(CODED_FRAMES):
        cxs = centre(i)
        turn = angle(i) if angle else 0.0
        rgb, truth = compose(bg, [place(cut, Placement(cx=cx, bottom=1.0, height=height, angle=turn), (W, H))
                                  for cx in (cxs if isinstance(cxs, list) else [cxs])])
        rgb = rgb.copy()
        for b in range(8):
            rgb[:CODE_BLOCK, b * CODE_BLOCK:(b + 1) * CODE_BLOCK] = 255 if (i >> b) & 1 else 0
        truths.append(truth > 0)
        proc.stdin.write(rgb.tobytes())
    proc.stdin.close()
    assert proc.wait(60) == 0
    return truths


def frame_index(shot: np.ndarray) -> int:
    bits = [shot[4:CODE_BLOCK - 4, b * CODE_BLOCK + 4:(b + 1) * CODE_BLOCK - 4, :3].mean() > 127 for b in range(8)]
    return sum(1 << b for b, on in enumerate(bits) if on)


def test_frame_sync_shows_each_frame_with_its_own_mask(tmp_path):
    truths = make_coded_clip(tmp_path / "coded.mp4")
    srv = ServerProcess().start()
    inp = ffmpeg_input("Person", tmp_path / "coded.mp4").with_m2fp(server_address=srv.address, smoothing=0.0,
                                                                   background_mode="transparent", sync_frames=2)
    # 10 fps: two frames of delay leave 200 ms for readback and the round trip, so masks are back in
    # time even when other work loads the cores (at 30 fps a loaded machine makes them late, and a
    # late mask is, by design, the previous frame's); the clip still changes every OBS frame
    obs = ObsProcess(tmp_path, [inp], size=(W, H), fps=ALIGN_FPS)
    report: list[str] = []
    try:
        obs.start()
        inst = obs.wait_plugin(lambda i: i.get("sync", {}).get("own_mask", 0) >= 10, 20.0)
        assert inst, f"no synced masks: {obs.plugin_stats()}\n{obs.log_tail()}"
        assert inst["sync_frames"] == 2 and acked_predict(inst) == 0
        own, before, after = [], [], []
        for _ in range(20):
            shot = obs.screenshot("Person")
            k = frame_index(shot)
            assert k < CODED_FRAMES, "the frame index is readable"
            alpha = shot[..., 3] >= 128
            alpha[:CODE_BLOCK + 8, :8 * CODE_BLOCK + 8] = False  # the code, not the person
            own.append(iou(alpha, truths[k]))
            before.append(iou(alpha, truths[k - 1]))
            after.append(iou(alpha, truths[(k + 1) % CODED_FRAMES]))
            time.sleep(0.05)
        report.append(f"swaying person, sync 2: IoU with the frame shown {np.mean(own):.3f} "
                      f"(median {np.median(own):.3f}), with the frame before {np.mean(before):.3f}, "
                      f"after {np.mean(after):.3f}")
        assert np.median(own) >= 0.9, report
        assert np.mean(own) > max(np.mean(before), np.mean(after)) + 0.02, report
    finally:
        print("\n[obs-sync] " + "\n[obs-sync] ".join(report))
        obs.stop()
        srv.stop()
    assert "Number of memory leaks: 0" in obs.log_text()


def _shown_against_truth(obs: ObsProcess, source: str, truths: list[np.ndarray], step: int, shots: int = 20,
                         keep: Callable[[int], bool] | None = None) -> tuple[list[float], list[float]]:
    """``shots`` screenshots of ``source``: the alpha's IoU with the truth of the frame shown (read from its
    coded index), and with the truth one OBS frame (``step`` clip frames) before: where the mask's own frame
    had the people.  ``keep``: only the screenshots of the clip frames it passes."""
    own, behind = [], []
    for _ in range(shots):
        shot = obs.screenshot(source)
        k = frame_index(shot)
        assert k < CODED_FRAMES, "the frame index is readable"
        if keep is not None and not keep(k):
            time.sleep(0.05)
            continue
        alpha = shot[..., 3] >= 128
        alpha[:CODE_BLOCK + 8, :8 * CODE_BLOCK + 8] = False
        own.append(iou(alpha, truths[k]))
        behind.append(iou(alpha, truths[(k - step) % CODED_FRAMES]))
        time.sleep(0.05)
    return own, behind


def test_late_masks_are_carried_onto_the_frame_shown(tmp_path):
    """A server too slow for the frame rate (every answer 120 ms late at 10 fps): with two frames of sync
    every mask comes back after its frame is shown, so each frame is shown with an earlier frame's mask.
    The filter moves it on by the motion in its MASK header, in the shader: the alpha in the screenshot
    sits on the person of the frame shown (walking at a steady speed), not where the mask's own frame
    had her."""
    truths = make_coded_clip(tmp_path / "coded.mp4", walk)
    srv = ServerProcess(command=late_server_command(120)).start()
    inp = ffmpeg_input("Person", tmp_path / "coded.mp4").with_m2fp(server_address=srv.address, smoothing=0.0,
                                                                   background_mode="transparent", sync_frames=2)
    obs = ObsProcess(tmp_path, [inp], size=(W, H), fps=ALIGN_FPS)
    step = FPS // ALIGN_FPS  # clip frames per OBS frame
    report: list[str] = []
    try:
        obs.start()
        inst = obs.wait_plugin(lambda i: i.get("sync", {}).get("carried", 0) >= 10, 30.0)
        assert inst, f"no late mask carried on: {obs.plugin_stats()}\n{obs.log_tail()}"
        own, behind = _shown_against_truth(obs, "Person", truths, step)
        sync = obs.plugin_stats()["instances"][0]["sync"]
        report.append(f"answers 120 ms late, sync 2 at {ALIGN_FPS} fps: IoU with the frame shown {np.mean(own):.3f} "
                      f"(median {np.median(own):.3f}), with the frame one OBS frame before {np.mean(behind):.3f}; "
                      f"own masks {sync['own_mask']}, others {sync['other_mask']} of which carried "
                      f"{sync['carried']}, mask age {sync['mask_age_frames']}")
        assert sync["other_mask"] > sync["own_mask"], report  # the masks really were late
        assert np.mean(own) > np.mean(behind) + 0.03, report
        assert np.median(own) >= 0.8, report
    finally:
        print("\n[obs-carry] " + "\n[obs-carry] ".join(report))
        obs.stop()
        srv.stop()
    assert "Traceback" not in obs.log_text()


def _carried_true_masks(tmp_path: Path, source: str, truths: list[np.ndarray], shots: int = 20,
                        keep: Callable[[int], bool] | None = None) -> tuple[list[float], list[float], dict]:
    """The clip at ``tmp_path/coded.mp4`` in a real OBS with sync 2 at ``ALIGN_FPS``, answered 120 ms late
    with its true masks (``CodedTruth``: what is tested is how the masks travel and are shown, not a model):
    ``_shown_against_truth``'s two lists, and the filter's sync counts."""
    np.save(tmp_path / "truths.npy", np.stack(truths))
    srv = ServerProcess(command=late_server_command(120, tmp_path / "truths.npy", CODE_BLOCK)).start()
    inp = ffmpeg_input(source, tmp_path / "coded.mp4").with_m2fp(server_address=srv.address, smoothing=0.0,
                                                                 background_mode="transparent", sync_frames=2)
    obs = ObsProcess(tmp_path, [inp], size=(W, H), fps=ALIGN_FPS)
    try:
        obs.start()
        inst = obs.wait_plugin(lambda i: i.get("sync", {}).get("carried", 0) >= 10, 30.0)
        assert inst, f"no late mask carried on: {obs.plugin_stats()}\n{obs.log_tail()}"
        own, behind = _shown_against_truth(obs, source, truths, FPS // ALIGN_FPS, shots, keep)
        sync = obs.plugin_stats()["instances"][0]["sync"]
    finally:
        obs.stop()
        srv.stop()
    assert "Traceback" not in obs.log_text()
    return own, behind, sync


def _carried_report(tag: str, what: str, own: list[float], behind: list[float], sync: dict) -> str:
    """Printed, and checked as every carried test checks it: the masks were late, and shown on the frame shown
    rather than where their own frame had the people."""
    report = (f"{what}, answers 120 ms late, sync 2 at {ALIGN_FPS} fps: IoU with the frame shown {np.mean(own):.3f} "
              f"(median {np.median(own):.3f}), with the frame one OBS frame before {np.mean(behind):.3f}; own masks "
              f"{sync['own_mask']}, others {sync['other_mask']} of which carried {sync['carried']}")
    print(f"\n[{tag}] {report}")
    assert sync["other_mask"] > sync["own_mask"], report  # the masks really were late
    assert np.mean(own) > np.mean(behind) + 0.03, report
    return report


def test_late_masks_of_two_people_walking_apart_move_each_person_by_their_own_motion(tmp_path):
    """Two people walking apart (and back) move in opposite directions: one motion for the mask cannot carry
    both, so the MASK header has none (before PEOPLE, such masks were shown where they were made).  The
    server sends each person's box and motion (PEOPLE) and the filter's shader moves each person by their
    own, so with answers 120 ms late the alpha in the screenshot sits on both people of the frame shown,
    not where the mask's own frame had them.  The true masks answer: the selfie model splits two busts this
    small on this background into changing blobs."""
    truths = make_coded_clip(tmp_path / "coded.mp4", walk_apart, height=0.38)
    own, behind, sync = _carried_true_masks(tmp_path, "People", truths)
    report = _carried_report("obs-carry2", "two people walking apart", own, behind, sync)
    assert np.median(own) >= 0.8, report


def test_late_masks_of_a_leaning_person_turn_with_them(tmp_path):
    """A bust leaning from side to side turns about the bottom of the frame: moved in a straight line, a late
    mask's head trails by the turn.  The server sends the person's turn (PEOPLE with turns) and the filter's
    shader turns what lies in their box, so with answers 120 ms late the alpha in the screenshot sits on the
    bust of the frame shown.  Scored where the bust turns at least 3 degrees an OBS frame (at the ends of
    the sway it hardly moves, and every mask sits on it); the screenshots span more than one sway."""
    truths = make_coded_clip(tmp_path / "coded.mp4", lambda i: 0.5, angle=lean)
    step = FPS // ALIGN_FPS

    def turning(k: int) -> bool:
        return abs(lean(k) - lean(k - step)) >= 3.0
    own, behind, sync = _carried_true_masks(tmp_path, "Lean", truths, shots=60, keep=turning)
    report = _carried_report("obs-turn", f"a leaning bust ({len(own)} screenshots while it turns)", own, behind,
                             sync)
    assert len(own) >= 10 and np.median(own) >= 0.93, report
