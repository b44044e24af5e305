"""``m2fp tune-rvm``: measure every way to run RVM here, keep the fastest that loses no accuracy.

Prints the table (ms p50/p95 per runtime/precision/size on 640x360 frames, IoU
per evaluation clip) with the CPU flags it was measured on, and saves the choice
where ``--engine rvm`` finds it.  Run it again after changing CPU or runtimes.
"""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runtimes", default="onnxruntime,openvino", help="runtimes to try (default: both)")
    p.add_argument("--precisions", default="fp32,bf16,int8",
                   help="precisions to try (default fp32,bf16,int8; bf16 only where the CPU has it)")
    p.add_argument("--sizes", default=None,
                   help="WIDTH:DOWNSAMPLE,... to try (default: 640:0.4,512:0.5,512:0.375,384:0.5,384:0.667,320:0.6)")
    p.add_argument("--clips", default=None, help="evaluation clips for the IoU check (default: all)")
    p.add_argument("--frames", type=int, default=60, help="timed frames per candidate (default 60)")
    p.add_argument("--threads", type=int, default=2, help="threads per model (default 2)")
    p.add_argument("--tolerance", type=float, default=0.01,
                   help="largest IoU loss against the fp32 reference on any clip (default 0.01)")
    p.add_argument("--model-dir", default=None, help="folder holding rvm_mobilenetv3_fp32.onnx (default: the cache)")
    p.add_argument("--full", action="store_true",
                   help="score every candidate (default: stop at the fastest one that qualifies)")
    p.add_argument("--no-save", action="store_true", help="print only; keep the current choice")


def run(args: argparse.Namespace) -> int:
    from ..bench.rvm_tune import SIZES, candidates, environment_line, table, tune
    sizes = SIZES
    if args.sizes:
        try:
            sizes = tuple((int(w), float(d)) for w, d in (s.split(":") for s in args.sizes.split(",")))
        except ValueError:
            raise ValueError(f"bad --sizes {args.sizes!r}: use WIDTH:DOWNSAMPLE,... e.g. 384:0.5") from None
    settings = candidates(args.runtimes.split(","), args.precisions.split(","), sizes)
    clips = args.clips.split(",") if args.clips else None
    best, rows, ref = tune(settings, clips, args.frames, args.threads, args.tolerance, args.model_dir,
                           save=not args.no_save, full=args.full)
    print(environment_line(args.threads))
    print(f"reference: {ref.setting.label}; qualifies: IoU >= reference - {args.tolerance:g} on every clip; "
          f"time: resize + model per 640x360 frame, {args.frames} frames, candidates in turn")
    print(table(rows, ref, best, args.tolerance))
    print(f"chosen: {best.setting.label} ({best.p50:.1f} ms p50, {best.p95:.1f} ms p95)"
          + ("" if args.no_save else "; --engine rvm uses it from now on"))
    return 0
