"""Frame sync figures for the README (not a test): ``python tests/obs/obs_harness_sync_bench.py cost|align``.

cost: OBS avg render time, the filter's render time and the share of frames shown with their own mask,
frame sync 0 / 1 / 2 / 3 (640x360, selfie server, 6 s each).  align: a swaying person with each frame's index
coded in a corner, the screenshot's alpha against the truth of the frame shown and its neighbours.
"""
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from obs_harness import ObsProcess, ffmpeg_input  # noqa: E402
from obs_harness_server import ServerProcess  # noqa: E402
from test_obs_filter import FPS, H, W, frame_counts, make_clip  # noqa: E402
from test_obs_framesync import CODE_BLOCK, CODED_FRAMES, frame_index, make_coded_clip  # noqa: E402


def iou(a, b):  # type: ignore[no-untyped-def]
    return float((a & b).sum() / max(1, (a | b).sum()))


def run(clip: Path, work: Path, measure) -> None:  # type: ignore[no-untyped-def]
    srv = ServerProcess().start()
    obs = ObsProcess(work, [ffmpeg_input("Person", clip).with_m2fp(server_address=srv.address, smoothing=0.0)],
                     size=(W, H), fps=FPS)
    try:
        obs.start()
        obs.wait_plugin(lambda i: i.get("masks", 0) >= 10, 20)
        for n in (0, 1, 2, 3, 0, 1):
            obs.client.set_source_filter_settings("Person", "M2FP", {"sync_frames": n}, True)
            time.sleep(1.5)
            print(json.dumps({"sync": n, **measure(obs)}), flush=True)
    finally:
        obs.stop()
        srv.stop()
    print("no leaks:", "Number of memory leaks: 0" in obs.log_text())


def cost(obs: ObsProcess) -> dict:
    obs.reset_plugin_timings()
    fa = frame_counts(obs)
    time.sleep(6)
    b, fb = obs.stats(), frame_counts(obs)
    inst = obs.plugin_stats()["instances"][0]
    sy = inst["sync"]
    tot = sy["own_mask"] + sy["other_mask"]
    return {"obs_avg_render_ms": round(b["average_frame_render_time"], 2),
            "skipped": fb["render_skipped_frames"] - fa["render_skipped_frames"],
            "filter_render_p50": round(inst["timings_ms"]["render"]["p50"], 2),
            "filter_render_p95": round(inst["timings_ms"]["render"]["p95"], 2),
            "own_mask": round(sy["own_mask"] / tot, 3) if tot else None, "age": sy["mask_age_frames"],
            "latency_ms": inst.get("latency_ms"), "predict": (inst.get("server_config") or {}).get("predict_frames")}


def align(truths):  # type: ignore[no-untyped-def]
    def measure(obs: ObsProcess) -> dict:
        own, prev, nxt = [], [], []
        for _ in range(25):
            shot = obs.screenshot("Person")
            k = frame_index(shot)
            if k >= CODED_FRAMES:
                continue
            a = shot[..., 3] >= 128
            a[:CODE_BLOCK + 8, :8 * CODE_BLOCK + 8] = False
            own.append(iou(a, truths[k]))
            prev.append(iou(a, truths[k - 1]))
            nxt.append(iou(a, truths[(k + 1) % CODED_FRAMES]))
            time.sleep(0.07)
        return {"n": len(own), "iou_frame_shown": round(float(np.mean(own)), 4),
                "median": round(float(np.median(own)), 4), "iou_frame_before": round(float(np.mean(prev)), 4),
                "iou_frame_after": round(float(np.mean(nxt)), 4)}
    return measure


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "cost"
    work = Path(tempfile.mkdtemp(prefix="m2fp_sync_"))
    clip = work / "clip.mp4"
    if mode == "align":
        run(clip, work, align(make_coded_clip(clip)))
    else:
        make_clip(clip)
        run(clip, work, cost)


if __name__ == "__main__":
    main()
