"""``m2fp obs-bench``: the OBS filter's own per-frame cost inside a real (headless) OBS.

For each canvas size, one OBS run plays a clip of a person over a moving
background through a media source, first with the filter disabled, then
enabled and fed by a real m2fp-server.  It prints, per size:

* the filter's video_render split (poll + mask upload, capture = input render +
  small render, draw = the full-size composite) and the next tick's readback
  and send, p50 / p95 in ms, measured inside OBS by the script itself;
* OBS's own average frame render time and lagged (render-skipped) frames, with
  and without the filter, in the same run.

Needs a source checkout (the OBS script and the test harness live there), OBS,
Xvfb and obsws-python.  Under software OpenGL (llvmpipe) the GPU work is CPU
work, so the figures are an upper bound for a machine with a GPU.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
HARNESS = REPO / "tests" / "obs_harness.py"
PHASES = ("poll_upload", "capture", "draw", "render", "readback", "send")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sizes", default="1280x720,1920x1080", help="canvas sizes, comma separated")
    p.add_argument("--seconds", type=float, default=8.0, help="measuring window per case (default 8)")
    p.add_argument("--engine", default="selfie", help="server engine (default selfie)")
    p.add_argument("--json", action="store_true", help="print the raw figures as JSON")


def _make_clip(path: Path, size: tuple[int, int], fps: int = 30, seconds: int = 4) -> None:
    import numpy as np

    from ..evaluation.groundtruth import Cutout, Placement, compose, place, textured_background
    W, H = size
    layer = place(Cutout.load("grace_hopper"), Placement(cx=0.5, bottom=1.0, height=0.9), (W, H))
    big = textured_background(W * 2, H, seed=3)
    cmd = ["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}",
           "-r", str(fps), "-i", "-", "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
           str(path)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    n = fps * seconds
    for i in range(n):
        x = int(W * i / n)
        rgb, _ = compose(np.ascontiguousarray(big[:, x:x + W]), [layer])
        proc.stdin.write(rgb.tobytes())
    proc.stdin.close()
    if proc.wait(300) != 0:
        raise RuntimeError("ffmpeg failed to write the benchmark clip")


def _window(obs: Any, seconds: float) -> dict[str, float]:
    a = obs.stats()
    time.sleep(seconds)
    b = obs.stats()
    frames = b["render_total_frames"] - a["render_total_frames"]
    return {"frames": frames, "lagged": b["render_skipped_frames"] - a["render_skipped_frames"],
            "avg_render_ms": float(b["average_frame_render_time"]), "fps": float(b["active_fps"])}


def bench_size(size: tuple[int, int], seconds: float, engine: str, work: Path) -> dict[str, Any]:
    from obs_harness import ObsProcess, ffmpeg_input  # type: ignore[import-not-found]
    from obs_harness_server import ServerProcess  # type: ignore[import-not-found]
    clip = work / f"clip_{size[0]}x{size[1]}.mp4"
    _make_clip(clip, size)
    srv = ServerProcess(engine=engine).start()
    inp = ffmpeg_input("Person", clip).with_m2fp(server_address=srv.address)
    inp.filters[0]["enabled"] = False
    obs = ObsProcess(work / f"obs_{size[0]}x{size[1]}", [inp], size=size)
    obs.dir.mkdir(parents=True, exist_ok=True)
    try:
        obs.start()
        time.sleep(2.0)
        without = _window(obs, seconds)
        obs.client.set_source_filter_enabled("Person", "M2FP", True)
        if obs.wait_plugin(lambda i: i.get("masks", 0) >= 10, 30.0) is None:
            raise RuntimeError(f"the filter got no masks: {obs.plugin_stats()}")
        obs.reset_plugin_timings()
        with_filter = _window(obs, seconds)
        inst = obs.plugin_stats()["instances"][0]
    finally:
        obs.stop()
        srv.stop()
    return {"size": f"{size[0]}x{size[1]}", "without": without, "with": with_filter,
            "timings_ms": inst["timings_ms"], "mask_rate": inst.get("mask_rate"),
            "latency_ms": inst.get("latency_ms"), "engine": engine}


def run(args: argparse.Namespace) -> int:
    if not HARNESS.exists():
        print("m2fp obs-bench: needs a source checkout (tests/obs_harness.py not found)", file=sys.stderr)
        return 1
    sys.path.insert(0, str(HARNESS.parent))
    from obs_harness import obs_available  # type: ignore[import-not-found]
    missing = obs_available()
    if missing:
        print(f"m2fp obs-bench: {missing}", file=sys.stderr)
        return 1
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",") if s.strip()]
    results = []
    with tempfile.TemporaryDirectory(prefix="m2fp-obs-bench-") as tmp:
        for size in sizes:
            print(f"benchmarking {size[0]}x{size[1]} ({args.seconds:.0f} s without, {args.seconds:.0f} s with "
                  "the filter)...", file=sys.stderr)
            results.append(bench_size(size, args.seconds, args.engine, Path(tmp)))  # type: ignore[arg-type]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print("| canvas | " + " | ".join(f"{p} p50 / p95 ms" for p in PHASES)
          + " | OBS avg render ms without → with | lagged frames without → with | masks/s |")
    print("|---|" + "---|" * len(PHASES) + "---|---|---|")
    for r in results:
        t = r["timings_ms"]
        cells = [f"{t[p]['p50']:.2f} / {t[p]['p95']:.2f}" if t.get(p, {}).get("n") else "–" for p in PHASES]
        w, f = r["without"], r["with"]
        print(f"| {r['size']} | " + " | ".join(cells)
              + f" | {w['avg_render_ms']:.2f} → {f['avg_render_ms']:.2f}"
              + f" | {w['lagged']:.0f}/{w['frames']:.0f} → {f['lagged']:.0f}/{f['frames']:.0f}"
              + f" | {r['mask_rate'] or 0:.1f} |")
    print(f"\nengine {results[0]['engine'] if results else args.engine}; render = poll_upload + capture + draw "
          "(video_render); readback + send run in the next video_tick.")
    return 0
