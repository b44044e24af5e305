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
``threads``; ``--sizes 256,384,512`` picks the short sides.
"""
from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import statistics
import sys
import tempfile
import time
import types
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

log = logging.getLogger(__name__)

FRAME_SIZE = (640, 360)
PIPELINE_DEFAULT_SHORT_SIDE = 640


@dataclass
class Row:
    what: str
    short_side: int
    seconds: float
    gflop: float | None = None
    precision: str = "f32"


def timed(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(max(5, repeats)):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def matmul_peak(dtype_name: str = "float32", n: int = 2048, repeats: int = 7) -> float:
    """Achieved GFLOP/s of an n x n matrix product (torch, current thread count)."""
    import torch
    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    s = timed(lambda: torch.mm(a, b), repeats)
    return 2 * n ** 3 / s / 1e9


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
    tv.__path__ = []  # type: ignore[attr-defined]
    tr.__spec__ = importlib.util.spec_from_loader("torchvision.transforms", loader=None)
    sys.modules["torchvision"], sys.modules["torchvision.transforms"] = tv, tr
    return True


def build_pipeline(model_dir: Path) -> Any:
    from .m2fp.modelscope_compat import install_import_shims
    install_import_shims()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from modelscope.pipelines import pipeline
        from modelscope.utils.constant import Tasks
        return pipeline(Tasks.image_segmentation, model=str(model_dir))


def _options(args: argparse.Namespace) -> dict[str, Any]:
    from ..cli.common import engine_options
    return engine_options(getattr(args, "engine_option", []) or [])


def _short_sides(args: argparse.Namespace) -> list[int]:
    raw = str(getattr(args, "sizes", "") or "")
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if parts and all(p.isdigit() for p in parts):
        return [int(p) for p in parts]
    return [256, 384, 512]


def _model_dir(opts: dict[str, Any], workdir: Path) -> tuple[Path, str]:
    from ..weights import WeightsMissing, locate
    from .m2fp.random_model import write_random_model_dir
    try:
        found = locate(str(opts.get("model", "multi")), opts.get("model_dir"))
        return found, ("the folder given" if opts.get("model_dir") else "the fetched weights")
    except WeightsMissing as exc:
        if opts.get("model_dir"):
            raise
        print(f"({exc})")
        print("-> benchmarking the same architecture with random weights (speed does not depend on them)")
        return write_random_model_dir(workdir / "m2fp-random", str(opts.get("model", "multi"))), "random weights"


def run_model_bench(args: argparse.Namespace) -> int:
    opts = _options(args)
    threads = int(opts.get("threads") or len(os.sched_getaffinity(0)))
    repeats = max(5, int(opts.get("repeats", 5)))
    runtimes = [r for r in str(opts.get("runtimes", "openvino")).split(",") if r]
    want_bf16 = bool(opts.get("bf16", True))
    want_baseline = bool(opts.get("baseline", True))
    sides = _short_sides(args)

    import cv2
    import torch
    from PIL import Image

    from ..cli.bench import _cpu_model
    from ..samples import frame_of_size
    from .m2fp.engine import M2FPEngine
    from .m2fp.exported import export, find_export
    from .m2fp.frames import Canvas
    from .m2fp.network import load_core

    torch.set_num_threads(threads)
    logging.getLogger("modelscope").setLevel(logging.ERROR)
    frame = frame_of_size(*FRAME_SIZE)
    with tempfile.TemporaryDirectory(prefix="m2fp-bench-") as tmp:
        model_dir, weights_kind = _model_dir(opts, Path(tmp))
        print(f"CPU: {_cpu_model()}, {threads} threads; torch {torch.__version__}; model {model_dir} "
              f"({weights_kind}); frame {FRAME_SIZE[0]}x{FRAME_SIZE[1]}; median of {repeats} after warm-up")
        peak32 = matmul_peak("float32")
        peak16 = matmul_peak("bfloat16") if want_bf16 else None
        print(f"matrix-multiply peak (torch, 2048^3): f32 {peak32:.0f} GFLOP/s"
              + (f", bf16 {peak16:.0f} GFLOP/s" if peak16 else ""), flush=True)

        core, cfg = load_core(model_dir, threads)
        rows: list[Row] = []
        standin = False
        pipe = None
        if want_baseline:
            standin = install_torchvision_transforms_standin()
            pipe = build_pipeline(model_dir)
            pil = Image.fromarray(frame)
            s = timed(lambda: pipe(pil), max(5, repeats))
            rows.append(Row("ModelScope pipeline as users call it", PIPELINE_DEFAULT_SHORT_SIDE, s))
            print(f"  pipeline at its default short side {PIPELINE_DEFAULT_SHORT_SIDE}: {s:.2f} s", flush=True)
        for side in sides:
            canvas = Canvas.for_short_side(side)
            gflop = network_gflop(core, canvas)
            if pipe is not None:
                pil = Image.fromarray(frame)
                s = timed(lambda: pipe._process_single(pil, preprocess_params={"min_size": side}), repeats)
                rows.append(Row("ModelScope pipeline at our size", side, s))
            torch_engine = M2FPEngine(model_dir=str(model_dir), size=side, runtime="torch", threads=threads)
            rows.append(Row("ours, torch", side, timed(lambda: torch_engine.infer(frame), repeats), gflop))
            del torch_engine
            for rt in runtimes:
                precisions = ["f32"] + (["bf16"] if want_bf16 and rt == "openvino" else [])
                for prec in precisions:
                    if find_export(model_dir, canvas, rt, prec) is None:
                        print(f"  exporting {rt} {prec} {canvas.key} (once) ...", flush=True)
                        export(model_dir, side, rt, cv2.cvtColor(cv2.imread(str(_sample())), cv2.COLOR_BGR2RGB),
                               _sample().name, prec, threads=threads, core=core, num_classes=len(cfg.class_names))
                    eng = M2FPEngine(model_dir=str(model_dir), size=side, runtime=rt, precision=prec,
                                     threads=threads)
                    label = f"ours, {rt} {prec}" + (" (opt-in)" if prec != "f32" else "")
                    rows.append(Row(label, side, timed(lambda: eng.infer(frame), repeats), gflop, prec))
                    del eng
            for r in rows:
                if r.short_side == side:
                    print(f"  {side}: {r.what}: {r.seconds:.3f} s", flush=True)
        print_table(rows, peak32, peak16, standin)
    return 0


def _sample() -> Path:
    from ..samples import PORTRAITS
    return PORTRAITS["astronaut"]


def print_table(rows: list[Row], peak32: float, peak16: float | None, standin: bool) -> None:
    print()
    print(f"| short side | what | s/frame | GFLOP | GFLOP/s | % of matmul peak | pipeline@size / this | "
          f"pipeline@640 / this |")
    print("|---|---|---|---|---|---|---|---|")
    default = next((r.seconds for r in rows if r.short_side == PIPELINE_DEFAULT_SHORT_SIDE
                    and r.what.startswith("ModelScope pipeline as")), None)
    for r in rows:
        same = next((p.seconds for p in rows if p.short_side == r.short_side
                     and p.what == "ModelScope pipeline at our size"), None)
        rate = f"{r.gflop / r.seconds:.0f}" if r.gflop else ""
        peak = peak16 if r.precision == "bf16" and peak16 else peak32
        share = f"{100 * r.gflop / r.seconds / peak:.0f} %" if r.gflop else ""
        vs_same = f"{same / r.seconds:.1f}x" if same and not r.what.startswith("ModelScope") else ""
        vs_default = f"{default / r.seconds:.1f}x" if default and not r.what.startswith("ModelScope") else ""
        gflop = f"{r.gflop:.1f}" if r.gflop else ""
        print(f"| {r.short_side} | {r.what} | {r.seconds:.3f} | {gflop} | {rate} | {share} | {vs_same} | "
              f"{vs_default} |")
    floor = [(r.short_side, r.gflop / peak32) for r in rows if r.gflop and r.what == "ours, torch"]
    if floor:
        print("compute floor at the f32 matmul peak: "
              + ", ".join(f"{s}: {f:.2f} s" for s, f in floor))
    if standin:
        print("note: torchvision cannot be imported next to the CPU torch here; the pipeline ran with a "
              "stand-in for its three PIL transforms (same operations), see m2fp_bench.py")
