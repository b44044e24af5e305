"""``m2fp replay``: what a viewer would see with each frame of a clip, through a real server."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from m2fp_protocol import DEFAULT_SYNC_FRAMES

from ..errors import BadInput
from .common import add_server_argument


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", type=Path)
    add_server_argument(p, required=True)
    p.add_argument("--fps", type=float, default=None, help="playback rate (default: the clip's own)")
    p.add_argument("-o", "--output", type=Path, required=True, help=".npz with alpha, mask_age, latency_ms")
    p.add_argument("--sync-frames", type=int, default=DEFAULT_SYNC_FRAMES,
                   help="delay the picture by N frames, as the OBS filter's Frame sync (default "
                        f"{DEFAULT_SYNC_FRAMES}, the filter's); 0 shows each mask as soon as it is back")
    p.add_argument("--readback-delay", type=int, default=1,
                   help="frames between capture and send, as the OBS filter's stage-surface ring (default 1)")
    p.add_argument("--max-inflight", type=int, default=2, help="unanswered frames allowed (default 2)")
    p.add_argument("--no-motion", action="store_true",
                   help="ask the server not to motion-compensate (hold each mask as computed)")
    p.add_argument("--predict-frames", type=float, default=None,
                   help="frames the server moves masks ahead (default: readback delay + 1 - sync frames, at least 0)")


def run(args: argparse.Namespace) -> int:
    from ..replay import replay
    from ..video import probe, read_frames
    _, _, clip_fps, _ = probe(args.video)
    frames = list(read_frames(args.video))
    if not frames:
        raise BadInput(f"{args.video} has no frames")
    fps = args.fps or clip_fps
    config: dict = {}
    if args.no_motion:
        config["motion"] = False
    if args.predict_frames is not None:
        config["predict_frames"] = args.predict_frames
    res = replay(frames, args.server, fps, sync_frames=args.sync_frames, readback_delay=args.readback_delay,
                 max_inflight=args.max_inflight, config=config or None)
    res.save(str(args.output))
    valid = res.mask_age[res.mask_age >= 0]
    print(f"{len(frames)} frames at {fps:.1f} fps: sent {res.sent}, masks {res.masks}, dropped {res.dropped}, "
          f"errors {res.errors}, player late ticks {res.late_ticks}")
    if len(valid):
        print(f"mask age: median {np.median(valid):.1f} frames, max {valid.max()}; "
              f"latency p50 {np.nanmedian(res.latency_ms):.1f} ms")
    print(f"wrote {args.output}")
    return 0
