"""``m2fp bench --engine m2fp``: seconds per frame, side by side in one process.

Rows per short side: ModelScope's pipeline at that size (its own preprocess,
forward and instance post-processing), our torch path, our exported runtime(s);
plus the pipeline as users call it (short side 640) once.  Each figure is the
median of ``repeats`` (>= 5) runs after one warm-up, on a 640x360 frame.  GFLOP
are counted by torch's FLOP counter on the network (convolutions and matrix
products; grid sampling and element-wise work are not counted) and compared
with the machine's measured matrix-multiply peak.

Without real weights the model folder is built with random weights: time does
not depend on the weight values.

Options (``-E key=value``): ``model_dir``, ``model`` multi|single, ``repeats``,
``runtimes`` (comma list: openvino,onnxruntime), ``bf16`` true|false (adds the
opt-in OpenVINO bf16 row), ``baseline`` true|false (the ModelScope pipeline rows),
``threads``, ``step_timeout_s`` (each measuring process is stopped after this
long and its row reported as skipped; default 600); ``--sizes 256,384,512``
picks the short sides.

The bf16 matrix-multiply peak is measured only on a CPU with bf16 instructions:
elsewhere torch emulates bf16 products so slowly that the step would seem to hang,
and the figure would describe the emulation, not the machine.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..cpu import has_bf16, usable_cores
from .system import cpu_model

log = logging.getLogger(__name__)

FRAME_SIZE = (640, 360)
PIPELINE_DEFAULT_SHORT_SIDE = 640


@dataclass
class Row:
    what: str
    short_side: int
    seconds: float
    gflop: float | None = None
    best: float | None = None
    precision: str = "f32"


def timed(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``repeats`` calls after one warm-up call."""
    return timings(fn, repeats)[0]


def timings(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """(median, best) wall time of ``repeats`` (>= 5) calls after one warm-up call.

    The best run shows what the code does when nothing else wants the cores; a
    median well above it means the machine was busy.
    """
    fn()
    times = []
    for _ in range(max(5, repeats)):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times)


def matmul_peak(dtype_name: str = "float32", sizes: tuple[int, ...] = (1024, 2048, 3072), repeats: int = 7) -> float:
    """Best achieved GFLOP/s of square matrix products (torch, current thread count).

    The best run of the best size: a peak, so background load shows up as a lower
    peak rather than as a model that looks more efficient than it is.
    """
    import torch
    dtype = getattr(torch, dtype_name)
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        torch.mm(a, b)
        for _ in range(repeats):
            t = time.perf_counter()
            torch.mm(a, b)
            best = max(best, 2 * n ** 3 / (time.perf_counter() - t) / 1e9)
    return best


def network_gflop(core: Any, canvas: Any) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    x = torch.full((1, 3, canvas.height, canvas.width), 128.0)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        core(x)
    return counter.get_total_flops() / 1e9


def install_torchvision_transforms_standin() -> bool:
    """Let ModelScope's pipeline module import when torchvision cannot be imported here.

    PyPI's torchvision wheels are CUDA builds that fail next to the CPU torch.
    The pipeline uses three transforms on a PIL image; for PIL input torchvision's
    Resize is PIL's bilinear resize and ToTensor is HWC uint8 -> CHW float / 255,
    so this stand-in does exactly that.  Benchmark process only.
    """
    try:
        import torchvision.transforms  # noqa: F401
        return False
    except Exception:  # noqa: BLE001 - missing or the CUDA-build failure
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
    import torch
    from PIL import Image

    class Compose:
        def __init__(self, transforms: list[Any]) -> None:
            self.transforms = transforms

        def __call__(self, img: Any) -> Any:
            for t in self.transforms:
                img = t(img)
            return img

    class Resize:
        def __init__(self, size: tuple[int, int]) -> None:
            self.size = size

        def __call__(self, img: Any) -> Any:
            h, w = self.size
            return img.resize((w, h), Image.BILINEAR)

    class ToTensor:
        def __call__(self, img: Any) -> Any:
            arr = np.asarray(img, dtype=np.uint8)
            return torch.from_numpy(arr.transpose(2, 0, 1).copy()).float().div_(255.0)

    tv = types.ModuleType("torchvision", "benchmark stand-in: transforms only")
    tr = types.ModuleType("torchvision.transforms")
    tr.Compose, tr.Resize, tr.ToTensor = Compose, Resize, ToTensor  # type: ignore[attr-defined]
    tv.transforms = tr  # type: ignore[attr-defined]
    tv.__spec__ = importlib.util.spec_from_loader("torchvision", loader=None, is_package=True)
    tv.__path__ = []
    tr.__spec__ = importlib.util.spec_from_loader("torchvision.transforms", loader=None)
    sys.modules["torchvision"], sys.modules["torchvision.transforms"] = tv, tr
    return True


def build_pipeline(model_dir: Path) -> Any:
    from ..engines.m2fp.modelscope_compat import install_import_shims
    install_import_shims()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from modelscope.pipelines import pipeline
        from modelscope.utils.constant import Tasks
        return pipeline(Tasks.image_segmentation, model=str(model_dir))


def _short_sides(raw: str) -> list[int]:
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if parts and all(p.isdigit() for p in parts):
        return [int(p) for p in parts]
    return [256, 384, 512]


def _model_dir(opts: dict[str, Any], workdir: Path) -> tuple[Path, str]:
    from ..weights import WeightsMissing, locate
    from ..engines.m2fp.random_model import write_random_model_dir
    try:
        found = locate(str(opts.get("model", "multi")), opts.get("model_dir"))
        return found, ("the folder given" if opts.get("model_dir") else "the fetched weights")
    except WeightsMissing as exc:
        if opts.get("model_dir"):
            raise
        print(f"({exc})")
        print("-> benchmarking the same architecture with random weights (speed does not depend on them)")
        return write_random_model_dir(workdir / "m2fp-random", str(opts.get("model", "multi"))), "random weights"


def run_model_bench(sizes: str, opts: dict[str, Any]) -> int:
    """Orchestrate: every figure is measured in its own process.

    Runtimes keep thread pools alive (OpenVINO's, ONNX Runtime's spinning workers),
    so timing several runtimes in one process lets the idle ones slow the one being
    measured; a fresh process per row keeps each figure clean.
    """
    threads = int(opts.get("threads") or usable_cores())
    repeats = max(5, int(opts.get("repeats", 5)))
    runtimes = [r for r in str(opts.get("runtimes", "openvino")).split(",") if r]
    want_bf16 = bool(opts.get("bf16", True))
    want_baseline = bool(opts.get("baseline", True))
    step_timeout = float(opts.get("step_timeout_s", 600.0))
    sides = _short_sides(sizes)
    bf16_peak = want_bf16 and has_bf16()

    from ..engines.m2fp.exported import find_export
    from ..engines.m2fp.frames import Canvas

    steps = _Steps(step_timeout)
    with tempfile.TemporaryDirectory(prefix="m2fp-bench-") as tmp:
        model_dir, weights_kind = _model_dir(opts, Path(tmp))
        common = {"model_dir": str(model_dir), "threads": threads, "repeats": repeats}
        print(f"CPU: {cpu_model()}, {threads} threads; model {model_dir} ({weights_kind}); frame "
              f"{FRAME_SIZE[0]}x{FRAME_SIZE[1]}; median of {repeats} after warm-up, one process per row "
              f"(each stopped after {step_timeout:.0f} s); load average at start {os.getloadavg()[0]:.1f}",
              flush=True)
        if want_bf16 and not bf16_peak:
            print("bf16 matrix-multiply peak: skipped (this CPU has no bf16 instructions; torch would emulate "
                  "them, far slower than f32)", flush=True)
        peaks = steps.run("matrix-multiply peak", {"kind": "peak", **common, "bf16": bf16_peak}) or {}
        if peaks:
            print(f"matrix-multiply peak (torch {peaks['torch']}, best of 1024-3072): "
                  f"f32 {peaks['f32']:.0f} GFLOP/s" + (f", bf16 {peaks['bf16']:.0f} GFLOP/s" if peaks.get("bf16")
                                                       else ""), flush=True)
        counted = steps.run("GFLOP count", {"kind": "gflop", **common, "sides": sides})
        gflop = {int(k): v for k, v in counted["gflop"].items()} if counted else {}
        rows: list[Row] = []
        standin = False
        if want_baseline:
            r = steps.run(f"ModelScope pipeline at its default short side {PIPELINE_DEFAULT_SHORT_SIDE}",
                          {"kind": "pipeline", **common, "side": None})
            if r:
                standin = r["standin"]
                rows.append(Row("ModelScope pipeline as users call it", PIPELINE_DEFAULT_SHORT_SIDE, r["seconds"],
                                best=r["best"]))
        for side in sides:
            canvas = Canvas.for_short_side(side)
            if want_baseline:
                r = steps.run(f"{side}: ModelScope pipeline", {"kind": "pipeline", **common, "side": side})
                if r:
                    rows.append(Row("ModelScope pipeline at our size", side, r["seconds"], best=r["best"]))
            r = steps.run(f"{side}: ours, torch",
                          {"kind": "engine", **common, "side": side, "runtime": "torch", "precision": "f32"})
            if r:
                rows.append(Row("ours, torch", side, r["seconds"], gflop.get(side), r["best"]))
            for rt in runtimes:
                for prec in ["f32"] + (["bf16"] if want_bf16 and rt == "openvino" else []):
                    if find_export(model_dir, canvas, rt, prec) is None:
                        print(f"  exporting {rt} {prec} {canvas.key} (once) ...", flush=True)
                        try:
                            _export(model_dir, side, rt, prec, threads, step_timeout)
                        except RuntimeError as exc:
                            print(f"  skipping {rt} {prec} at {side}: {str(exc)[:200]}", flush=True)
                            continue
                    r = steps.run(f"{side}: ours, {rt} {prec}",
                                  {"kind": "engine", **common, "side": side, "runtime": rt, "precision": prec})
                    if r:
                        label = f"ours, {rt} {prec}" + (" (opt-in)" if prec != "f32" else "")
                        rows.append(Row(label, side, r["seconds"], gflop.get(side), r["best"], prec))
        again = steps.run("matrix-multiply peak again", {"kind": "peak", **common, "bf16": bf16_peak})
        if again:  # the best of two tries: a peak
            peaks = {k: max(v, again[k]) if isinstance(v, float) else v for k, v in (peaks or again).items()}
        if peaks:
            print(f"matrix-multiply peak, best of the start and the end: f32 {peaks['f32']:.0f} GFLOP/s"
                  + (f", bf16 {peaks['bf16']:.0f} GFLOP/s" if peaks.get("bf16") else ""), flush=True)
        print_table(rows, peaks.get("f32"), peaks.get("bf16"), standin)
        if steps.skipped:
            print(f"skipped (over {step_timeout:.0f} s or failed): {', '.join(steps.skipped)}")
        print(f"load average at the end {os.getloadavg()[0]:.1f} (other work on the machine slows every row)")
    return 0


class _Steps:
    """Runs each measuring step in its own process, printing as it goes, each bounded in time."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.skipped: list[str] = []

    def run(self, label: str, job: dict[str, Any]) -> dict[str, Any] | None:
        print(f"  {label} ...", end="", flush=True)
        t0 = time.perf_counter()
        try:
            r = _child(job, self.timeout_s)
        except subprocess.TimeoutExpired:
            print(f" stopped after {self.timeout_s:g} s: skipped", flush=True)
            self.skipped.append(label)
            return None
        except RuntimeError as exc:
            print(f" failed: skipped\n{str(exc)[-600:]}", flush=True)
            self.skipped.append(label)
            return None
        took = time.perf_counter() - t0
        print(f" {r['seconds']:.3f} s/frame ({took:.0f} s)" if "seconds" in r else f" done ({took:.0f} s)",
              flush=True)
        return r


def _export(model_dir: Path, side: int, runtime: str, precision: str, threads: int, timeout_s: float) -> None:
    """``m2fp export`` in its own process, checked on the shipped portraits (the second if the first fails)."""
    from ..samples import PORTRAITS
    errors = []
    for image in (PORTRAITS["astronaut"], PORTRAITS["grace_hopper"]):
        cmd = [sys.executable, "-m", "m2fp_server.cli.main", "--log-level", "WARNING", "export", "--size", str(side),
               "--runtime", runtime, "--precision", precision, "--model-dir", str(model_dir),
               "--threads", str(threads), "--image", str(image)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                                  env={**os.environ, "PYTHONWARNINGS": "ignore"})
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"export took over {timeout_s:.0f} s") from None
        if done.returncode == 0:
            return
        errors.append(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}")
        print(f"    export check failed on {image.name}: {errors[-1]}", flush=True)
    raise RuntimeError(f"{runtime} {precision} export at {side} failed its check: {'; '.join(errors)}")


def _child(job: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """One step in a fresh process; ``subprocess.run`` kills it at the time bound."""
    env = {**os.environ, "MODELSCOPE_LOG_LEVEL": str(logging.WARNING), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-m", __name__, json.dumps(job)], capture_output=True, text=True,
                          env=env, timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark step {job['kind']} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(job: dict[str, Any]) -> dict[str, Any]:
    """One benchmark step, in this (fresh) process; returns JSON-able figures."""
    import torch
    threads, repeats = int(job["threads"]), int(job["repeats"])
    torch.set_num_threads(threads)
    kind = job["kind"]
    if kind == "peak":
        return {"torch": torch.__version__, "f32": matmul_peak("float32"),
                "bf16": matmul_peak("bfloat16") if job.get("bf16") else None}
    from ..samples import frame_of_size
    from ..engines.m2fp.frames import Canvas
    from ..engines.m2fp.network import load_core
    frame = frame_of_size(*FRAME_SIZE)
    if kind == "gflop":
        core, _ = load_core(job["model_dir"], threads)
        return {"gflop": {str(s): network_gflop(core, Canvas.for_short_side(s)) for s in job["sides"]}}
    if kind == "pipeline":
        from PIL import Image
        standin = install_torchvision_transforms_standin()
        pipe = build_pipeline(Path(job["model_dir"]))
        pil = Image.fromarray(frame)
        side = job.get("side")
        if side is None:  # as users call it: the pipeline's own defaults
            seconds, best = timings(lambda: pipe(pil), repeats)
        else:  # the pipeline's own per-input step with its min_size argument
            seconds, best = timings(lambda: pipe._process_single(pil, preprocess_params={"min_size": side}),
                                    repeats)
        return {"seconds": seconds, "best": best, "standin": standin}
    if kind == "engine":
        from ..engines.m2fp.engine import M2FPEngine
        eng = M2FPEngine(model_dir=job["model_dir"], size=job["side"], runtime=job["runtime"],
                         precision=job["precision"], threads=threads)
        seconds, best = timings(lambda: eng.infer(frame), repeats)
        return {"seconds": seconds, "best": best, "runtime": eng.runtime}
    raise ValueError(f"unknown benchmark step {kind!r}")


def print_table(rows: list[Row], peak32: float | None, peak16: float | None, standin: bool) -> None:
    print()
    print("| short side | what | s/frame (median) | best | GFLOP | GFLOP/s | % of matmul peak | "
          "pipeline@size / this | pipeline@640 / this |")
    print("|---|---|---|---|---|---|---|---|---|")
    default = next((r.seconds for r in rows if r.short_side == PIPELINE_DEFAULT_SHORT_SIDE
                    and r.what.startswith("ModelScope pipeline as")), None)
    for r in rows:
        same = next((p.seconds for p in rows if p.short_side == r.short_side
                     and p.what == "ModelScope pipeline at our size"), None)
        rate = f"{r.gflop / r.seconds:.0f}" if r.gflop else ""
        peak = peak16 if r.precision == "bf16" and peak16 else peak32
        share = f"{100 * r.gflop / r.seconds / peak:.0f} %" if r.gflop and peak else ""
        vs_same = f"{same / r.seconds:.1f}x" if same and not r.what.startswith("ModelScope") else ""
        vs_default = f"{default / r.seconds:.1f}x" if default and not r.what.startswith("ModelScope") else ""
        gflop = f"{r.gflop:.1f}" if r.gflop else ""
        best = f"{r.best:.3f}" if r.best else ""
        print(f"| {r.short_side} | {r.what} | {r.seconds:.3f} | {best} | {gflop} | {rate} | {share} | {vs_same} | "
              f"{vs_default} |")
    floor = [(r.short_side, r.gflop / peak32) for r in rows if r.gflop and peak32 and r.what == "ours, torch"]
    if floor:
        print("compute floor at the f32 matmul peak: "
              + ", ".join(f"{s}: {f:.2f} s" for s, f in floor))
    if standin:
        print("note: torchvision cannot be imported next to the CPU torch here; the pipeline ran with a "
              "stand-in for its three PIL transforms (same operations), see bench/m2fp.py")


if __name__ == "__main__":  # one benchmark step (see _child)
    logging.basicConfig(level=logging.WARNING)
    print(json.dumps(measure(json.loads(sys.argv[1]))))
