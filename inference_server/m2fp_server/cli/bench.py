"""``m2fp bench``: the benchmarks in ``m2fp_server.bench``, chosen by the options.

* default: masks/s and round trip through a real server process (``bench.server``);
* ``--engine m2fp``: seconds per frame of the M2FP model per runtime and size (``bench.m2fp``);
* ``--models``: ms per frame of each shipped embedded model (``bench.embedded``);
* ``--rvm``: ms per 640x360 frame of RVM as tuned here, against its whole graph (``bench.rvm``).
"""
from __future__ import annotations

import argparse

from .common import add_engine_arguments, engine_options


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_engine_arguments(p)
    p.set_defaults(engine="selfie")
    p.add_argument("--seconds", type=float, default=5.0, help="duration of each measurement (default 5)")
    p.add_argument("--sizes", default="256x144,640x360", help="frame sizes to send (default 256x144,640x360)")
    p.add_argument("--clients", default="1,2", help="client counts (default 1,2)")
    p.add_argument("--server", default=None, help="measure this running server instead of starting one")
    p.add_argument("--models", action="store_true",
                   help="time each shipped embedded model and the embedded engine in this process (ms/frame)")
    p.add_argument("--rvm", action="store_true",
                   help="time RVM (the tune-rvm choice) per 640x360 frame in this process, against its whole graph")
    from ..bench.triton import add_arguments as add_triton_arguments  # numpy only: keeps --help fast
    add_triton_arguments(p)


def run(args: argparse.Namespace) -> int:
    if args.triton:  # in-process M2FP against Triton
        from ..bench.triton import run_triton_bench
        return run_triton_bench(args)
    if args.models:
        from ..bench.embedded import run_models_bench
        return run_models_bench(args)
    if args.rvm:
        from ..bench.rvm import run_rvm_bench
        return run_rvm_bench(args)
    if args.engine == "m2fp":
        from ..bench.m2fp import run_model_bench
        return run_model_bench(args.sizes, engine_options(args.engine_option))
    from ..bench.server import run_server_bench
    return run_server_bench(args)
