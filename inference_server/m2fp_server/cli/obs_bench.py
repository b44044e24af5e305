"""``m2fp obs-bench``: the OBS filter's per-frame cost inside a real (headless) OBS, against baselines
measured in the same OBS run.

For each canvas size, one OBS run plays a clip of a person over a moving
background through a media source and measures, one after the other, windows of
the same length with:

* no filter;
* a trivial built-in filter (OBS's Crop/Pad with nothing cropped: one render into
  a texture and one draw);
* the copy probe of the test harness: two full-size copy passes per frame, timed
  inside OBS the way the M2FP filter times itself (the yardstick of its target);
* the M2FP filter, fed by a real m2fp-server.

The windows run in ABBA order (``ORDER``) so a drift of the machine's load weighs on
every case alike.

It prints OBS's average frame render time and lagged (render-skipped) frames per
window, the differences and ratios against no filter and against the built-in
filter, and the filter's own video_render split (capture + draw against the two
copy passes, p50).  Needs a source checkout (the OBS script and the test harness
live there), OBS, Xvfb and obsws-python.  Under software OpenGL (llvmpipe) the GPU
work is CPU work, so the figures are an upper bound for a machine with a GPU.
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
HARNESS = REPO / "tests" / "obs" / "obs_harness.py"
PHASES = ("poll_upload", "capture", "draw", "capture_draw", "render", "readback", "send")
BUILTIN = {"id": "crop_filter", "versioned_id": "crop_filter", "name": "Builtin", "enabled": False,
           "settings": {}}
CASES = ("none", "builtin", "copy2", "m2fp")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sizes", default="640x360,1280x720,1920x1080", help="canvas sizes, comma separated")
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


def _window(obs: Any, seconds: float) -> dict[str, Any]:
    """Frames and lagged frames over the window; OBS's average render time is a one-second average, so it
    is sampled every second and averaged."""
    a = obs.stats()
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(min(1.0, max(0.0, end - time.monotonic())))
        samples.append(float(obs.stats()["average_frame_render_time"]))
    b = obs.stats()
    return {"frames": b["render_total_frames"] - a["render_total_frames"],
            "lagged": b["render_skipped_frames"] - a["render_skipped_frames"], "render_ms": samples}


def _merge(windows: list[dict[str, Any]]) -> dict[str, float]:
    samples = [v for w in windows for v in w["render_ms"]]
    return {"frames": sum(w["frames"] for w in windows), "lagged": sum(w["lagged"] for w in windows),
            "avg_render_ms": sum(samples) / len(samples) if samples else float("nan")}


def _p50(values: list[float]) -> float | None:
    v = sorted(values)
    return v[len(v) // 2] if v else None


#: ABBA order with the M2FP window in the middle: a slow drift of the machine's load (other work shares
#: the cores) weighs on every case alike; each case gets ``seconds`` in all
ORDER = (("none", 0.5), ("builtin", 0.5), ("copy2", 0.5), ("m2fp", 1.0), ("copy2", 0.5), ("builtin", 0.5),
         ("none", 0.5))


def bench_size(size: tuple[int, int], seconds: float, engine: str, work: Path) -> dict[str, Any]:
    """One OBS run: the four cases of the module docstring in ``ORDER``, in the same scene."""
    from obs_harness import ObsProcess, ffmpeg_input  # type: ignore[import-not-found]
    from obs_harness_server import ServerProcess  # type: ignore[import-not-found]
    clip = work / f"clip_{size[0]}x{size[1]}.mp4"
    _make_clip(clip, size)
    srv = ServerProcess(engine=engine).start()
    inp = ffmpeg_input("Person", clip).with_probe("Copy2", copy_passes=2).with_m2fp(server_address=srv.address)
    inp.filters.insert(1, dict(BUILTIN))
    for f in inp.filters:
        f["enabled"] = False
    obs = ObsProcess(work / f"obs_{size[0]}x{size[1]}", [inp], size=size, probe=True)
    obs.dir.mkdir(parents=True, exist_ok=True)
    names = {"builtin": "Builtin", "copy2": "Copy2", "m2fp": "M2FP"}
    windows: dict[str, list[dict[str, Any]]] = {c: [] for c in CASES}
    copies: list[float] = []
    inst: dict[str, Any] = {}
    try:
        obs.start()
        time.sleep(2.0)
        for case, share in ORDER:
            if case in names:
                obs.client.set_source_filter_enabled("Person", names[case], True)
            if case == "m2fp":
                if obs.wait_plugin(lambda i: i.get("masks", 0) >= 10, 30.0) is None:
                    raise RuntimeError(f"the filter got no masks: {obs.plugin_stats()}")
                obs.reset_plugin_timings()
            else:
                time.sleep(1.0)
            probes = obs.probe_stats()
            seen = len(probes[0]["copy_ms"]) if probes else 0
            windows[case].append(_window(obs, seconds * share))
            if case == "copy2":
                probes = obs.probe_stats()
                copies += probes[0]["copy_ms"][seen:] if probes else []
            if case == "m2fp":
                inst = obs.plugin_stats()["instances"][0]
            if case in names:
                obs.client.set_source_filter_enabled("Person", names[case], False)
    finally:
        obs.stop()
        srv.stop()
    out: dict[str, Any] = {"size": f"{size[0]}x{size[1]}", "engine": engine, "copy2_ms_p50": _p50(copies)}
    out.update({case: _merge(ws) for case, ws in windows.items()})
    out.update(timings_ms=inst["timings_ms"], mask_rate=inst.get("mask_rate"), latency_ms=inst.get("latency_ms"))
    return out


def _vs(a: float, b: float) -> str:
    return f"{a - b:+.2f} ({a / b:.2f}×)" if b else f"{a - b:+.2f}"


def _lag(w: dict[str, float]) -> str:
    return f"{w['lagged']:.0f}/{w['frames']:.0f} ({100 * w['lagged'] / max(1, w['frames']):.1f} %)"


def print_tables(results: list[dict[str, Any]]) -> None:
    print("| canvas | OBS avg render ms: none / built-in / M2FP | M2FP − none (ratio) | M2FP − built-in (ratio) "
          "| lagged frames: none / built-in / M2FP |")
    print("|---|---|---|---|---|")
    for r in results:
        n, b, m = (r[c]["avg_render_ms"] for c in ("none", "builtin", "m2fp"))
        print(f"| {r['size']} | {n:.2f} / {b:.2f} / {m:.2f} | {_vs(m, n)} | {_vs(m, b)} "
              f"| {_lag(r['none'])} / {_lag(r['builtin'])} / {_lag(r['m2fp'])} |")
    print()
    print("| canvas | M2FP capture + draw p50 ms | two full-size copy passes p50 ms | ratio "
          "| " + " | ".join(f"{p} p50 / p95" for p in PHASES) + " | masks/s |")
    print("|---|---|---|---|" + "---|" * len(PHASES) + "---|")
    for r in results:
        t = r["timings_ms"]
        own = t.get("capture_draw", {}).get("p50")
        copy = r.get("copy2_ms_p50")
        ratio = f"{own / copy:.2f}" if own is not None and copy else "–"
        cells = [f"{t[p]['p50']:.2f} / {t[p]['p95']:.2f}" if t.get(p, {}).get("n") else "–" for p in PHASES]
        print(f"| {r['size']} | {own if own is None else f'{own:.2f}'} | {copy if copy is None else f'{copy:.2f}'} "
              f"| {ratio} | " + " | ".join(cells) + f" | {r['mask_rate'] or 0:.1f} |")
    print(f"\nengine {results[0]['engine'] if results else '?'}; all cases in the same OBS run (ABBA order); "
          "render = poll_upload + capture + draw (video_render); readback + send run in the next video_tick.")


def run(args: argparse.Namespace) -> int:
    if not HARNESS.exists():
        print("m2fp obs-bench: needs a source checkout (tests/obs/obs_harness.py not found)", file=sys.stderr)
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
            print(f"benchmarking {size[0]}x{size[1]} ({args.seconds:.0f} s for each of {', '.join(CASES)})...",
                  file=sys.stderr, flush=True)
            results.append(bench_size(size, args.seconds, args.engine, Path(tmp)))  # type: ignore[arg-type]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_tables(results)
    return 0
