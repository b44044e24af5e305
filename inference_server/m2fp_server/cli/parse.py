"""``m2fp parse``: segment an image or a video to an alpha, a composite or a parsing picture."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import BadInput, MissingFile
from .common import add_engine_arguments, add_server_argument, build_engine

if TYPE_CHECKING:
    from ..segmenters import Segmenter

log = logging.getLogger(__name__)

VIDEO_EXTS = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".y4m"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", type=Path, help="image (png, jpg, ...) or video file")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="output: .npz (key 'alpha'), an image (.png) or a video")
    p.add_argument("--mode", choices=["alpha", "composite", "parsing"], default="alpha")
    p.add_argument("--background", default="transparent",
                   help="for --mode composite: transparent | #RRGGBB | IMAGE | blur (default transparent)")
    p.add_argument("--keep", default=None, help="comma-separated classes to keep (default: all body parts)")
    p.add_argument("--hard", action="store_true", help="threshold the alpha instead of a soft edge")
    add_engine_arguments(p)
    add_server_argument(p)


def _segmenter(args: argparse.Namespace, is_video: bool) -> Segmenter:
    from m2fp_protocol import StreamConfig
    keep = [k.strip() for k in args.keep.split(",")] if args.keep else None
    settings: dict[str, Any] = {"keep": keep, "soft": not args.hard, "smoothing": 0.5 if is_video else 0.0}
    if args.server:
        from ..segmenters import RemoteSegmenter
        return RemoteSegmenter(args.server, settings)
    from ..segmenters import LocalSegmenter
    return LocalSegmenter(build_engine(args), StreamConfig(**settings).validate())


def run(args: argparse.Namespace) -> int:
    if not args.input.is_file():
        raise MissingFile(f"input {args.input} does not exist")
    from ..composite import parse_background
    background = parse_background(args.background) if args.mode == "composite" else None
    is_video = args.input.suffix.lower() in VIDEO_EXTS
    seg = _segmenter(args, is_video)
    try:
        if is_video:
            from ..video import process_video
            process_video(args.input, args.output, seg, args.mode, background)
        else:
            _process_image(args, seg, background)
    finally:
        seg.close()
    print(f"wrote {args.output}")
    return 0


def _process_image(args: argparse.Namespace, seg: Segmenter, background: Any) -> None:
    import cv2

    from ..composite import load_rgb
    rgb = load_rgb(args.input)
    alpha, labels = seg(rgb, want_labels=args.mode == "parsing")
    if args.output.suffix.lower() == ".npz":
        if labels is not None:
            np.savez_compressed(args.output, alpha=alpha, labels=labels)
        else:
            np.savez_compressed(args.output, alpha=alpha)
        return
    from ..composite import render
    out = render(args.mode, rgb, alpha, labels, seg.classes, background)
    if out.ndim == 3:
        out = cv2.cvtColor(out, cv2.COLOR_RGBA2BGRA if out.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(args.output), out):
        raise BadInput(f"cannot write {args.output} (unknown image extension?)")
