"""Frame sync in a real, headless OBS with a real m2fp-server (one short OBS run).

With sync off the filter asks the server to move masks ahead by its display lag
(CONFIG ``predict_frames`` 2, as the server acknowledges it); with "Frame sync" = 2
the video is delayed through the texture ring, the server is asked for no
prediction, the source still renders, its alpha matches the ground truth, and most
frames are shown with the mask made from that very frame.  Turning sync off again
releases the ring; OBS then quits with sync on (its leak count at exit covers every texture).
"""
from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from obs_harness import ObsProcess, ffmpeg_input, obs_available
from obs_harness_server import ServerProcess
from test_obs_filter import FPS, H, W, alpha_iou, clip, measure  # noqa: F401  (clip is a fixture)

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
        # sync off (default): masks as they arrive, the server predicts 2 frames ahead
        inst = obs.wait_plugin(lambda i: i.get("masks", 0) >= 5 and acked_predict(i) == 2, 20.0)
        assert inst, f"no masks / no predict_frames 2 acknowledged: {obs.plugin_stats()}\n{obs.log_tail()}"
        assert inst["sync_frames"] == 0 and "sync_frames" in (inst.get("properties") or ["sync_frames"])
        obs.reset_plugin_timings()
        time.sleep(2.0)
        inst = obs.plugin_stats()["instances"][0]
        report.append(f"sync off: server runs with predict_frames {acked_predict(inst)}, "
                      f"render ms {inst['timings_ms']['render']}")

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
        assert counts["render_total_frames"] >= 2 * FPS, report  # OBS kept rendering
        assert inst["masks"] - masks_before >= FPS, report  # masks kept coming
        assert shown >= 2 * FPS, report  # and the filter composited through the ring
        assert own >= 0.5, report  # most frames have their own mask (selfie engine: a few ms)
        got = alpha_iou(obs, person)
        report.append(f"sync 2: transparent IoU {got:.3f}")
        assert got >= 0.9, report
        fg_core = cv2.erode(person.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
        synced = obs.screenshot("Person")[fg_core][..., :3].astype(int)

        # sync off again: back to prediction, the ring is released
        obs.client.set_source_filter_settings("Person", "M2FP", {"sync_frames": 0}, True)
        inst = obs.wait_plugin(lambda i: i.get("sync_frames") == 0 and acked_predict(i) == 2, 5.0)
        assert inst, obs.plugin_stats()
        got = alpha_iou(obs, person, shots=1)
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
        assert alpha_iou(obs, person, shots=1) >= 0.9
    finally:
        print("\n[obs-sync] " + "\n[obs-sync] ".join(report))
        obs.stop()
        srv.stop()
    log = obs.log_text()
    assert "Traceback" not in log, log[-3000:]
    assert "Number of memory leaks: 0" in log, log[-3000:]
