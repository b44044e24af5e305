"""``m2fp eval``: offline and live IoU, flicker, boundary error and mask age on ground-truth clips.

Live runs go through a real ZeroMQ server (in this process, own threads) at the
clip's frame rate, as the OBS filter would play them (``m2fp_server.replay``).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from ..errors import BadInput
from .common import engine_options

DEFAULT_VARIANTS = ["defaults", "motion", "sync1+motion"]  # the filter's default (sync 2), sync off, sync 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", action="append", default=None,
                   help="engine to evaluate (any registered name, or auto), repeatable (default: auto)")
    p.add_argument("--engine-option", "-E", action="append", default=[], metavar="KEY=VALUE",
                   help="option for every engine evaluated (e.g. -E delay_ms=300 -E rate_hz=3)")
    p.add_argument("--clip", action="append", default=None,
                   help="clip name, repeatable (default: all named clips); random-<seed> or random-<first>..<last>: "
                        "random scenes nobody tuned on (their seed sets their size)")
    p.add_argument("--variant", action="append", default=None,
                   help="live run: defaults | hold | motion | syncN | syncN+motion | motion+predictP, repeatable "
                        f"(default: {' '.join(DEFAULT_VARIANTS)}); 'none' = offline only")
    p.add_argument("--no-offline", action="store_true", help="skip the offline row")
    p.add_argument("--static", type=int, default=None, help="static frames per clip (default: the clip's)")
    p.add_argument("--moving", type=int, default=None, help="moving frames per clip (default: the clip's)")
    p.add_argument("--size", default=None, help="clip size WxH (default: the clip's)")
    p.add_argument("--camera", default=None, metavar="dim=F,noise=F,jpeg=N",
                   help="what a webcam does to the frames: darker (dim=0.8), sensor noise (noise=5 grey levels), "
                        "JPEG compression (jpeg=70); the truth is unchanged")
    p.add_argument("--config", default=None, help="stream settings as JSON, e.g. '{\"smoothing\": 0}'")
    p.add_argument("--json", type=Path, default=None, help="also write every row as JSON here")
    p.add_argument("--list", action="store_true", help="list the clips and exit")


def _clip_options(args: argparse.Namespace) -> dict[str, Any]:
    kw: dict[str, Any] = {"static": args.static, "moving": args.moving}
    if args.size:
        try:
            w, h = (int(x) for x in args.size.lower().split("x"))
        except ValueError:
            raise BadInput(f"--size must be WxH, got {args.size!r}") from None
        kw["size"] = (w, h)
    return {k: v for k, v in kw.items() if v is not None}


def run(args: argparse.Namespace) -> int:
    from ..evaluation.camera import Camera
    from ..evaluation.clips import CLIPS, get_clip
    from ..evaluation.random_scenes import expand_random, is_random
    from ..cpu import cpu_summary, cpu_times, steal_share
    from ..evaluation.evaluate import Variant, evaluate, summary, table
    from ..evaluation.slow_oracle import engine_factory
    if args.list:
        for name, builder in CLIPS.items():  # a tiny render is the quickest way to the description
            print(f"{name:18s} {builder(static=2, moving=2, size=(64, 48)).description}")
        return 0
    names = expand_random(args.clip or list(CLIPS))
    unknown = [n for n in names if n not in CLIPS and not is_random(n)]
    if unknown:
        raise BadInput(f"unknown clip(s) {', '.join(unknown)}; choose from: {', '.join(CLIPS)}, "
                       "random-<seed> or random-<first>..<last>")
    vtexts = args.variant or DEFAULT_VARIANTS
    variants = [] if vtexts == ["none"] else [Variant.parse(v) for v in vtexts]
    try:
        config = json.loads(args.config) if args.config else {}
    except json.JSONDecodeError as exc:
        raise BadInput(f"--config is not JSON: {exc}") from None
    if not isinstance(config, dict):
        raise BadInput("--config must be a JSON object")
    camera = Camera.parse(args.camera or "")
    opts = engine_options(args.engine_option)
    engines = args.engine or ["auto"]
    print(f"# m2fp eval: load {os.getloadavg()[0]:.2f}; {cpu_summary()}")
    start = cpu_times()
    rows = []
    for n, cname in enumerate(names):
        clip = camera.apply(get_clip(cname, **_clip_options(args)))
        clip_rows = []
        for ename in engines:
            clip_rows += evaluate(engine_factory(ename, opts), ename, clip, variants, config,
                                  offline=not args.no_offline)
        text = table(clip_rows)
        print(text if n == 0 else text.split("\n", 2)[2], flush=True)  # one header for the whole run
        rows += clip_rows
    print("\n## per clip (moving part)\n")
    print(summary(rows))
    stolen = steal_share(start, cpu_times())
    if stolen is not None:  # live figures need the cores they were measured with
        print(f"\n# CPU time taken by the host (steal) during this run: {100 * stolen:.1f} %")
    if args.json:
        args.json.write_text(json.dumps([r.to_json() for r in rows], indent=1))
        print(f"wrote {args.json}")
    return 0
