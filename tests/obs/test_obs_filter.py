"""End to end in a real, headless OBS Studio: the script, the filter, a real m2fp-server.

One OBS run (starting OBS is the slow part) walks through what a user sees:

1. the same scene with the filter disabled, then enabled: GetStats' lagged and
   skipped frames stay within a sanity bound of the run without it (recording, so
   the encoder counts; the cost itself is measured by `m2fp obs-bench`);
2. transparent mode: the source's alpha matches the clip's ground truth (IoU ≥ 0.9);
3. colour mode: the background is the colour, the person is not; parsing view:
   the person in the engine's palette colour;
4. the script is reloaded (as Tools → Scripts → Reload does): the filter keeps working;
   kill -9 the server: OBS keeps rendering, the filter holds the last mask for
   ``hold_ms`` and then passes the frame through;
5. restart the server on the same port: masks are back (within 2 s as a sanity bound; the
   time is printed);
6. with "hide" as the fallback, a killed server hides the source after the hold.

The clip is a person (public-domain cutout) standing still over a moving
background, so the ground truth is the same on every frame.
"""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from m2fp_protocol import DISPLAY_LAG_FRAMES
from m2fp_server.evaluation.groundtruth import Cutout, Placement, compose, place, textured_background
from obs_harness import ObsProcess, ffmpeg_input, obs_available
from obs_harness_server import ServerProcess

W, H, FPS, SECONDS = 640, 360, 30, 6
HOLD_MS = 300
# Sanity bounds for events that happen on OBS's graphics thread: a loaded machine (other work, or
# tests/obs/obs_stress_loop.sh) can hold a frame back a few hundred ms, so an event lands at the first
# frame after its cause.  NOTICE_S stays below the transport's 0.5 s stall timeout, and the event's
# text ("connection dropped") names the socket monitor as the cause; the figures are printed.
NOTICE_S = 0.45
LATE_S = 0.45  # the fallback comes at the first frame after the hold
RECONNECT_S = 2.0  # first mask after the restarted server listens
# the "away" event is stamped just after the transport's own away time, which the hold counts from:
# the fallback can come up to a few ms less than the hold after the event's stamp
STAMP_S = 0.01
GREEN = (0, 255, 0)

pytestmark = pytest.mark.skipif(obs_available() is not None, reason=str(obs_available()))


def make_clip(path: Path) -> np.ndarray:
    """Write a looping H.264 clip; return its (constant) ground truth, 0/1."""
    cut = Cutout.load("astronaut")
    layer = place(cut, Placement(cx=0.5, bottom=1.0, height=0.92), (W, H))
    big = textured_background(W * 2, H, seed=7)
    cmd = ["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}",
           "-r", str(FPS), "-i", "-", "-c:v", "libx264", "-preset", "veryfast", "-crf", "16",
           "-pix_fmt", "yuv420p", "-g", str(FPS), str(path)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    truth = None
    n = FPS * SECONDS
    for i in range(n):
        x = int(W * i / n)  # the background pans across one frame width
        rgb, truth = compose(np.ascontiguousarray(big[:, x:x + W]), [layer])
        proc.stdin.write(rgb.tobytes())
    proc.stdin.close()
    assert proc.wait(60) == 0
    assert truth is not None
    return truth


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def alpha_iou(obs: ObsProcess, person: np.ndarray, shots: int = 3) -> float:
    """Median IoU of the source's alpha with the truth over a few screenshots ~0.1 s apart (one screenshot can
    catch a single late or fresh-after-a-CONFIG-change mask on a loaded machine)."""
    values = []
    for _ in range(shots):
        shot = obs.screenshot("Person")
        assert shot.shape[:2] == person.shape
        values.append(iou(shot[..., 3] >= 128, person))
        time.sleep(0.1)
    return float(np.median(values))


def wait_for(fn, timeout_s: float, poll_s: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(poll_s)
    return None


def frame_counts(obs: ObsProcess) -> dict[str, int]:
    s = obs.stats()
    return {k: int(s[k]) for k in ("render_total_frames", "render_skipped_frames", "output_total_frames",
                                   "output_skipped_frames")}


def measure(obs: ObsProcess, seconds: float) -> dict[str, int]:
    a = frame_counts(obs)
    time.sleep(seconds)
    b = frame_counts(obs)
    return {k: b[k] - a[k] for k in a}


def timing_text(obs: ObsProcess) -> str:
    timings = obs.plugin_stats()["instances"][0]["timings_ms"]
    return ", ".join(f"{k} {v.get('p50', 0):.2f}/{v.get('p95', 0):.2f}/{v.get('max', 0):.1f}"
                     for k, v in timings.items())


def event_time(inst: dict, text: str, after: float) -> float | None:
    for t, what in inst.get("events", []):
        if t >= after and what == text:
            return float(t)
    return None


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    d = tmp_path_factory.mktemp("clip")
    path = d / "person.mp4"
    return path, make_clip(path)


def test_filter_in_real_obs(clip, tmp_path):  # one OBS run, several phases (see module docstring)
    path, truth = clip
    person = truth > 0
    srv = ServerProcess().start()
    inp = ffmpeg_input("Person", path).with_m2fp(server_address=srv.address, background_mode="transparent",
                                                 hold_ms=HOLD_MS, after_hold="pass", smoothing=0.0)
    inp.filters[0]["enabled"] = False
    obs = ObsProcess(tmp_path, [inp], size=(W, H), fps=FPS, reload_helper=True)
    report: list[str] = []
    try:
        obs.start()
        assert obs.wait_log("registered filter 'm2fp_obs_filter'"), obs.log_tail()

        # 1. lagged / skipped frames without and with the filter, same scene, recording both times
        obs.client.start_record()
        time.sleep(1.5)
        without = measure(obs, 5.0)
        obs.client.set_source_filter_enabled("Person", "M2FP", True)
        inst = obs.wait_plugin(lambda i: i.get("masks", 0) >= 10, 20.0)
        assert inst, f"no masks in OBS: {obs.plugin_stats()}\n{obs.log_tail()}"
        obs.reset_plugin_timings()
        with_filter = measure(obs, 5.0)
        obs.client.stop_record()
        report.append(f"without filter {without}; with filter {with_filter}")
        report.append("filter ms p50/p95/max: " + timing_text(obs))
        pacing = obs.plugin_stats()["instances"][0]["pacing"]
        report.append(f"pacing {pacing}")
        ages = {int(k): n for k, n in pacing["shown_mask_age_frames"].items()}
        # a frame's mask can be taken no sooner than the render after the tick that follows its readback
        assert ages and min(ages) >= DISPLAY_LAG_FRAMES, report
        # A sanity bound, not the figure: the windows run one after the other on a shared 2-core machine
        # (and under stress-ng in tests/obs/obs_stress_loop.sh), so lagged frames move with the load.  A filter
        # that waited on the server would lag most frames; the cost itself is `m2fp obs-bench`'s job.  The
        # bound is a share of the frames OBS rendered in time without the filter: where OBS alone already
        # lags (a slow or shared host: 27 of 151 frames once, the filter's software-rendered passes then
        # lagged 39 more), a fixed share of all frames says more about the host than about the filter.
        for key, total in (("render_skipped_frames", "render_total_frames"),
                           ("output_skipped_frames", "output_total_frames")):
            in_time = max(0, without[total] - without[key])
            assert with_filter[key] <= without[key] + max(3, in_time // 2), report

        # the properties dialog as libobs builds it, with the server's parts as checkboxes
        names = inst.get("properties") or obs.wait_plugin(lambda i: i.get("properties"), 5.0)["properties"]
        for name in ("server_address", "status", "background_mode", "background_color", "background_image",
                     "blur_strength", "threshold", "feather", "smoothing", "view_mode", "hold_ms", "after_hold",
                     "curve_server_key", "curve_public_key", "curve_secret_key", "keep_person", "parts_all"):
            assert name in names, names

        # 2. transparent: the alpha channel is the person
        got = alpha_iou(obs, person)
        report.append(f"transparent IoU {got:.3f} (median of 3 screenshots)")
        assert got >= 0.9, report

        # 3. colour mode, then the parsing view
        obs.client.set_source_filter_settings("Person", "M2FP", {"background_mode": "color",
                                                                 "background_color": 0xFF00FF00}, True)
        time.sleep(0.5)
        shot = obs.screenshot("Person")
        rgb = shot[..., :3].astype(int)
        bg_core = cv2.erode((~person).astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
        fg_core = cv2.erode(person.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
        green_bg = (np.abs(rgb[bg_core] - GREEN).max(axis=1) < 40).mean()
        green_fg = (np.abs(rgb[fg_core] - GREEN).max(axis=1) < 40).mean()
        report.append(f"colour mode: {green_bg:.3f} of the background and {green_fg:.3f} of the person green")
        assert green_bg > 0.95 and green_fg < 0.05 and (shot[..., 3] == 255).all(), report

        obs.client.set_source_filter_settings("Person", "M2FP", {"view_mode": "parsing"}, True)
        classes = obs.wait_plugin(lambda i: i.get("masks", 0) > 0, 5.0)
        assert classes
        time.sleep(0.5)
        shot = obs.screenshot("Person")[..., :3].astype(int)
        person_color = (255, 85, 0)  # the selfie engine's "Person" class colour (INFO palette)
        painted = (np.abs(shot[fg_core] - person_color).max(axis=1) < 40).mean()
        black_bg = (shot[bg_core].max(axis=1) < 40).mean()
        report.append(f"parsing view: {painted:.3f} of the person in its class colour, {black_bg:.3f} bg black")
        assert painted > 0.9 and black_bg > 0.9, report
        obs.client.set_source_filter_settings("Person", "M2FP", {"view_mode": "composite",
                                                                 "background_mode": "transparent"}, True)
        # unticking the only part (a CONFIG with keep = []) leaves nothing; ticking it brings the person back
        obs.client.set_source_filter_settings("Person", "M2FP", {"choose_parts": True, "keep_person": False}, True)
        time.sleep(0.5)
        kept = (obs.screenshot("Person")[..., 3] >= 128).mean()
        report.append(f"'Person' unticked: {kept:.4f} of the frame kept")
        assert kept < 0.01, report
        obs.client.set_source_filter_settings("Person", "M2FP", {"keep_person": True}, True)
        time.sleep(0.5)
        assert alpha_iou(obs, person) >= 0.9

        # script reload (Tools > Scripts > Reload): the filter keeps working with the reloaded code
        t_reload = time.monotonic()
        assert obs.reload_script() == "ok"
        inst = obs.wait_plugin(lambda i: event_time(i, "first mask", t_reload) is not None, 10.0)
        assert inst, f"no masks after the reload: {obs.plugin_stats()}"
        got = alpha_iou(obs, person)
        report.append(f"script reloaded: masks again {1000 * (event_time(inst, 'first mask', t_reload) - t_reload):.0f}"
                      f" ms later, IoU {got:.3f}")
        assert got >= 0.9, report
        assert obs.log_text().count("registered filter 'm2fp_obs_filter'") == 1, "registered once, reused after"

        # 4. kill -9 the server: OBS keeps rendering, the filter holds, then passes through
        before = frame_counts(obs)
        t_kill = time.monotonic()
        srv.kill()
        inst = obs.wait_plugin(lambda i: event_time(i, "action pass", t_kill) is not None, 5.0)
        assert inst, obs.plugin_stats()
        away = event_time(inst, "away: connection dropped", t_kill)
        hold = event_time(inst, "action hold", t_kill)
        passed = event_time(inst, "action pass", t_kill)
        assert away is not None and hold is not None and passed is not None, inst["events"]
        report.append(f"kill -9: noticed {1000 * (away - t_kill):.0f} ms, held the mask, pass-through "
                      f"{1000 * (passed - t_kill):.0f} ms after the kill (hold {HOLD_MS} ms)")
        assert away - t_kill < NOTICE_S, report  # noticed at once (socket monitor), not by the stall timeout
        assert HOLD_MS / 1000 - STAMP_S <= passed - away < HOLD_MS / 1000 + LATE_S, report  # held, then the fallback
        shot = obs.screenshot("Person")
        assert (shot[..., 3] == 255).mean() > 0.99, "pass-through shows the whole frame"
        assert "server not reachable" in inst["status"]
        time.sleep(1.0)
        after = frame_counts(obs)
        # a freeze check (load may lag frames): OBS kept rendering
        assert after["render_total_frames"] - before["render_total_frames"] >= FPS // 2, "OBS kept rendering"

        # 5. restart: masks again within a second of the server listening
        srv.start()
        assert srv.listening_at is not None
        inst = obs.wait_plugin(lambda i: event_time(i, "first mask", srv.listening_at) is not None, 10.0)
        assert inst, obs.plugin_stats()
        first = event_time(inst, "first mask", srv.listening_at)
        assert first is not None
        report.append(f"restart: first mask {1000 * (first - srv.listening_at):.0f} ms after the server listened")
        assert first - srv.listening_at < RECONNECT_S, report
        time.sleep(0.5)
        got = alpha_iou(obs, person)
        report.append(f"after restart IoU {got:.3f}")
        assert got >= 0.9, report

        # 6. the other fallback: hide the source once the hold is over
        obs.client.set_source_filter_settings("Person", "M2FP", {"after_hold": "hide"}, True)
        time.sleep(0.2)
        t_kill = time.monotonic()
        srv.kill()
        inst = obs.wait_plugin(lambda i: event_time(i, "action hide", t_kill) is not None, 5.0)
        assert inst, obs.plugin_stats()
        hidden = event_time(inst, "action hide", t_kill)
        away = event_time(inst, "away: connection dropped", t_kill)
        assert hidden is not None and away is not None and away - t_kill < NOTICE_S
        assert HOLD_MS / 1000 - STAMP_S <= hidden - away < HOLD_MS / 1000 + LATE_S
        time.sleep(0.2)
        shot = obs.screenshot("Person")
        report.append(f"hide: after {1000 * (hidden - t_kill):.0f} ms, {(shot[..., 3] == 0).mean():.3f} of the "
                      "frame transparent")
        assert (shot[..., 3] == 0).all(), report
    finally:
        print("\n[obs] " + "\n[obs] ".join(report))
        obs.stop()
        srv.stop()
    log = obs.log_text()
    assert "Traceback" not in log, log[-3000:]
    # unload and destroy released every texture, stage surface and buffer libobs allocated for us
    assert "Number of memory leaks: 0" in log, log[-3000:]
