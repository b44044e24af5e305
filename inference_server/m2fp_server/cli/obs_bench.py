"""``m2fp obs-bench``: the OBS filter's per-frame cost inside a real (headless) OBS, against baselines
measured in the same OBS run.

For each canvas size, one OBS run plays a clip of a person over a moving
background through a media source and measures, one after the other, windows of
the same length with:

* no filter;
* a trivial built-in filter (OBS's Crop/Pad with nothing cropped: one render into
  a texture and one draw);
* the copy probe of the test harness: two full-size copy passes per frame and the
  draw of the copy, timed inside OBS the way the M2FP filter times its capture and
  draw (the yardstick of its target);
* the same probe while a client plays the clip through the server as the filter
  would ("copy2_busy"): the server's inference competes with the rasteriser of
  software OpenGL, so the yardstick is also measured under that load;
* the M2FP filter, fed by a real m2fp-server.

The windows run in ABBA order (``ORDER``) so a drift of the machine's load weighs on
every case alike.

It prints OBS's average frame render time and lagged (render-skipped) frames per
window, the differences and ratios against no filter and against the built-in
filter, CPU use, and the filter's own video_render split (capture + draw against
the copy probe, p50, with the server idle and busy).  Needs a source checkout (the OBS script and the test harness
live there), OBS, Xvfb and obsws-python.  Under software OpenGL (llvmpipe) the GPU
work is CPU work, so the figures are an upper bound for a machine with a GPU.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from m2fp_protocol import DISPLAY_LAG_FRAMES

REPO = Path(__file__).resolve().parents[3]
HARNESS = REPO / "tests" / "obs" / "obs_harness.py"
PHASES = ("poll_upload", "input", "capture", "draw", "capture_draw", "render", "readback", "send")
BUILTIN = {"id": "crop_filter", "versioned_id": "crop_filter", "name": "Builtin", "enabled": False,
           "settings": {}}
CASES = ("none", "builtin", "copy2", "copy2_busy", "m2fp")


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


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), 0 when unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _window(obs: Any, seconds: float, server_pid: int = 0) -> dict[str, Any]:
    """Frames and lagged frames over the window; OBS's average render time is a one-second average, so it
    is sampled every second and averaged.  CPU use (cores) of OBS, the server and this process (the load
    client of "copy2_busy") over the window."""
    obs_pid = obs.obs.pid if obs.obs is not None else 0
    cpu0, obs0, own0, t0 = _cpu_seconds(server_pid), _cpu_seconds(obs_pid), time.process_time(), time.monotonic()
    a = obs.stats()
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(min(1.0, max(0.0, end - time.monotonic())))
        samples.append(float(obs.stats()["average_frame_render_time"]))
    b = obs.stats()
    dt = max(1e-6, time.monotonic() - t0)
    return {"frames": b["render_total_frames"] - a["render_total_frames"],
            "lagged": b["render_skipped_frames"] - a["render_skipped_frames"], "render_ms": samples,
            "server_cpu": (_cpu_seconds(server_pid) - cpu0) / dt, "obs_cpu": (_cpu_seconds(obs_pid) - obs0) / dt,
            "bench_cpu": (time.process_time() - own0) / dt}


def _merge(windows: list[dict[str, Any]]) -> dict[str, float]:
    samples = [v for w in windows for v in w["render_ms"]]
    return {"frames": sum(w["frames"] for w in windows), "lagged": sum(w["lagged"] for w in windows),
            "avg_render_ms": sum(samples) / len(samples) if samples else float("nan"),
            **{k: sum(w[k] for w in windows) / max(1, len(windows)) for k in ("server_cpu", "obs_cpu", "bench_cpu")}}


def _p50(values: list[float]) -> float | None:
    v = sorted(values)
    return v[len(v) // 2] if v else None


#: ABBA order with the M2FP window in the middle: a slow drift of the machine's load (other work shares
#: the cores) weighs on every case alike; each case gets ``seconds`` in all.  "copy2_busy" is the copy
#: probe while a client keeps the server as busy as the filter does (``_ServerLoad``)
ORDER = (("none", 0.5), ("builtin", 0.5), ("copy2", 0.5), ("copy2_busy", 0.5), ("m2fp", 1.0),
         ("copy2_busy", 0.5), ("copy2", 0.5), ("builtin", 0.5), ("none", 0.5))
FILTER_OF = {"builtin": "Builtin", "copy2": "Copy2", "copy2_busy": "Copy2", "m2fp": "M2FP"}


class _ServerLoad:
    """Plays the clip through the server at 30 fps in a thread, as the filter would (``replay``: same send
    size, same in-flight limit), so that the copy probe can be timed with the server using the cores as it
    does while the filter runs: under software OpenGL the server's inference competes with the rasteriser."""

    def __init__(self, clip: Path, address: str, seconds: float, fps: float = 30.0) -> None:
        import cv2

        from m2fp_protocol import DEFAULT_INPUT_BOX, fit_inside
        cap = cv2.VideoCapture(str(clip))
        frames = []
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            size = fit_inside((bgr.shape[1], bgr.shape[0]), DEFAULT_INPUT_BOX)
            frames.append(cv2.cvtColor(cv2.resize(bgr, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))
        cap.release()
        n = max(1, int(seconds * fps))
        self.frames = [frames[i % len(frames)] for i in range(n)]
        self.address = address
        self.fps = fps
        self.thread: threading.Thread | None = None
        self.sent = 0

    def __enter__(self) -> "_ServerLoad":
        from ..replay import replay

        def run() -> None:
            self.sent = replay(self.frames, self.address, self.fps).sent

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.thread is not None:
            self.thread.join(60.0)


def bench_size(size: tuple[int, int], seconds: float, engine: str, work: Path) -> dict[str, Any]:
    """One OBS run: the cases of the module docstring in ``ORDER``, in the same scene."""
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
    windows: dict[str, list[dict[str, Any]]] = {c: [] for c in CASES}
    copies: dict[str, list[float]] = {"copy2": [], "copy2_busy": []}
    pass1: dict[str, list[float]] = {"copy2": [], "copy2_busy": []}
    with_draw: dict[str, list[float]] = {"copy2": [], "copy2_busy": []}
    inst: dict[str, Any] = {}
    pid = srv.proc.pid if srv.proc else 0
    try:
        obs.start()
        time.sleep(2.0)
        for case, share in ORDER:
            if case in FILTER_OF:
                obs.client.set_source_filter_enabled("Person", FILTER_OF[case], True)
            if case == "m2fp":
                if obs.wait_plugin(lambda i: i.get("masks", 0) >= 10, 30.0) is None:
                    raise RuntimeError(f"the filter got no masks: {obs.plugin_stats()}")
                obs.reset_plugin_timings()
            else:
                time.sleep(1.0)
            probes = obs.probe_stats()
            seen = len(probes[0]["copy_ms"]) if probes else 0
            if case == "copy2_busy":
                with _ServerLoad(clip, srv.address, seconds * share + 1.0):
                    time.sleep(0.5)  # the server is busy before the window starts
                    windows[case].append(_window(obs, seconds * share, pid))
            else:
                windows[case].append(_window(obs, seconds * share, pid))
            if case in copies:
                probes = obs.probe_stats()
                copies[case] += probes[0]["copy_ms"][seen:] if probes else []
                pass1[case] += probes[0]["pass1_ms"][seen:] if probes else []
                with_draw[case] += [c + d for c, d in zip(probes[0]["copy_ms"][seen:], probes[0]["draw_ms"][seen:])] \
                    if probes else []
            if case == "m2fp":
                inst = obs.plugin_stats()["instances"][0]
            if case in FILTER_OF:
                obs.client.set_source_filter_enabled("Person", FILTER_OF[case], False)
    finally:
        obs.stop()
        srv.stop()
    out: dict[str, Any] = {"size": f"{size[0]}x{size[1]}", "engine": engine}
    for case in copies:
        out[f"{case}_ms_p50"] = _p50(copies[case])
        out[f"{case}_pass1_ms_p50"] = _p50(pass1[case])
        out[f"{case}_with_draw_ms_p50"] = _p50(with_draw[case])
    out.update({case: _merge(ws) for case, ws in windows.items()})
    out.update(timings_ms=inst["timings_ms"], mask_rate=inst.get("mask_rate"), latency_ms=inst.get("latency_ms"),
               pacing=inst.get("pacing"))
    return out


def _vs(a: float, b: float) -> str:
    return f"{a - b:+.2f} ({a / b:.2f}×)" if b else f"{a - b:+.2f}"


def _lag(w: dict[str, float]) -> str:
    return f"{w['lagged']:.0f}/{w['frames']:.0f} ({100 * w['lagged'] / max(1, w['frames']):.1f} %)"


def _f(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a is not None and b else "–"


def print_tables(results: list[dict[str, Any]]) -> None:
    print("| canvas | OBS avg render ms: none / built-in / M2FP | M2FP − none (ratio) | M2FP − built-in (ratio) "
          "| lagged frames: none / built-in / M2FP | server CPU (cores): idle / M2FP |")
    print("|---|---|---|---|---|---|")
    for r in results:
        n, b, m = (r[c]["avg_render_ms"] for c in ("none", "builtin", "m2fp"))
        print(f"| {r['size']} | {n:.2f} / {b:.2f} / {m:.2f} | {_vs(m, n)} | {_vs(m, b)} "
              f"| {_lag(r['none'])} / {_lag(r['builtin'])} / {_lag(r['m2fp'])} "
              f"| {r['copy2']['server_cpu']:.2f} / {r['m2fp']['server_cpu']:.2f} |")
    print()
    print("| canvas | M2FP capture + draw p50 ms | copy probe p50 ms, server idle: 2 passes / + its draw "
          "| same, server busy | ratio to 2 passes + draw: idle / busy | input render p50: M2FP / probe idle / busy |")
    print("|---|---|---|---|---|---|")
    for r in results:
        own = r["timings_ms"].get("capture_draw", {}).get("p50")
        inp = r["timings_ms"].get("input", {}).get("p50")
        idle, busy = r.get("copy2_with_draw_ms_p50"), r.get("copy2_busy_with_draw_ms_p50")
        print(f"| {r['size']} | {_f(own)} | {_f(r.get('copy2_ms_p50'))} / {_f(idle)} "
              f"| {_f(r.get('copy2_busy_ms_p50'))} / {_f(busy)} | {_ratio(own, idle)} / {_ratio(own, busy)} "
              f"| {_f(inp)} / {_f(r.get('copy2_pass1_ms_p50'))} / {_f(r.get('copy2_busy_pass1_ms_p50'))} |")
    print()
    print("| canvas | " + " | ".join(f"{p} p50 / p95" for p in PHASES) + " | masks/s | frames shown with a mask "
          "2 / 3+ frames old | sent |")
    print("|---|" + "---|" * len(PHASES) + "---|---|---|")
    for r in results:
        t = r["timings_ms"]
        cells = [f"{t[p]['p50']:.2f} / {t[p]['p95']:.2f}" if t.get(p, {}).get("n") else "–" for p in PHASES]
        pacing = r.get("pacing") or {}
        print(f"| {r['size']} | " + " | ".join(cells) + f" | {r['mask_rate'] or 0:.1f} | {_ages(pacing)} "
              f"| {pacing.get('send', '–')} ({pacing.get('fallbacks', 0)} fallbacks) |")
    print(f"\nengine {results[0]['engine'] if results else '?'}; all cases in the same OBS run (ABBA order); "
          "render = poll_upload + capture + draw (video_render), capture includes input (the source rendered "
          "into the full-size texture); readback runs in the next video_tick, send after that frame's render "
          "(or in the tick when masks come late: obs_plugin/m2fp_obs/pacing.py).")


def _ages(pacing: dict[str, Any]) -> str:
    """Frames shown with a mask of the display lag (``DISPLAY_LAG_FRAMES``) and with an older one."""
    ages = {int(k): int(v) for k, v in (pacing.get("shown_mask_age_frames") or {}).items()}
    total = sum(ages.values())
    if not total:
        return "–"
    older = sum(n for a, n in ages.items() if a > DISPLAY_LAG_FRAMES)
    return f"{total - older} / {older} ({100 * older / total:.0f} % older)"


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
