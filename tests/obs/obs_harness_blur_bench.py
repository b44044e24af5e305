"""What the GPU blur costs in a real headless OBS: the filter in "Transparent" vs "Blurred background"
(strength 1.0), alternating windows in the same OBS run, one source at 1280x720.

    python tests/obs/obs_harness_blur_bench.py [--rounds 3] [--seconds 4]

Prints, per mode, the median over rounds of the filter's own p50 per phase (ms; the blur's two passes are
issued in the "capture" phase) and of OBS's average frame render time.  Under software OpenGL the GPU work
runs on the CPU cores, so figures depend on what else the machine runs.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))

from m2fp_server.evaluation.groundtruth import still  # noqa: E402
from obs_harness import ObsProcess, image_input  # noqa: E402
from obs_harness_server import ServerProcess  # noqa: E402

MODES = {"transparent": {"background_mode": "transparent"},
         "blur 1.0": {"background_mode": "blur", "blur_strength": 1.0}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4.0)
    args = ap.parse_args()
    results: dict[str, dict[str, list[float]]] = {m: {} for m in MODES}
    with tempfile.TemporaryDirectory(prefix="m2fp-blur-bench-") as tmp:
        d = Path(tmp)
        rgb, _ = still(size=(1280, 720))
        cv2.imwrite(str(d / "person.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        srv = ServerProcess().start()
        obs = ObsProcess(d, [image_input("Person", d / "person.png").with_m2fp(server_address=srv.address)])
        try:
            obs.start()
            if obs.wait_plugin(lambda i: i.get("masks", 0) >= 10, 30.0) is None:
                raise RuntimeError(f"no masks: {obs.plugin_stats()}")
            for _ in range(args.rounds):
                for mode, settings in MODES.items():
                    obs.client.set_source_filter_settings("Person", "M2FP", settings, True)
                    time.sleep(1.0)
                    obs.reset_plugin_timings()
                    time.sleep(args.seconds)
                    inst = obs.plugin_stats()["instances"][0]
                    for phase, t in inst["timings_ms"].items():
                        if t.get("n"):
                            results[mode].setdefault(phase, []).append(t["p50"])
                    results[mode].setdefault("OBS avg frame render", []).append(
                        float(obs.stats()["average_frame_render_time"]))
        finally:
            obs.stop()
            srv.stop()
    phases = list(results["transparent"])
    print("| mode | " + " | ".join(f"{p} ms" for p in phases) + " |")
    print("|---|" + "---|" * len(phases))
    for mode, r in results.items():
        print(f"| {mode} | " + " | ".join(f"{statistics.median(r[p]):.2f}" if r.get(p) else "–" for p in phases)
              + " |")
    print(f"\nmedians of {args.rounds} alternating {args.seconds:.0f}-s windows per mode, same OBS run, 1280x720")
    return 0


if __name__ == "__main__":
    sys.exit(main())
