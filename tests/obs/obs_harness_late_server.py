"""A real m2fp-server process whose selfie engine answers every frame ``--delay-ms`` late: a host too slow
for OBS's frame rate, made on purpose so the filter's handling of late masks can be seen in a real OBS.

Run as a script (``ServerProcess(command=late_server_command(ms))``); only the engine's time is
stretched, the server, its sockets and its masks are the product's own.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


class LateEngine:
    """``engine``, sleeping ``delay_s`` before each frame's answer; everything else is the engine's own."""

    def __init__(self, engine: Any, delay_s: float) -> None:
        self.inner, self.delay_s = engine, delay_s

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def infer(self, rgb: np.ndarray, stream: Any = None) -> Any:
        time.sleep(self.delay_s)
        return self.inner.infer(rgb, stream)


class CodedTruth(LateEngine):
    """For a clip with its frame index coded in the top-left corner (``test_obs_framesync.make_coded_clip``):
    answers each frame with that frame's true mask, read from ``truths`` (T, H, W bool), late as
    ``LateEngine``.  The model is not under test where this is used (the way masks travel and are shown
    is): its masks are exact, so what the filter does with them is all that moves the figures."""

    def __init__(self, engine: Any, delay_s: float, truths: np.ndarray, block: int) -> None:
        super().__init__(engine, delay_s)
        self.truths, self.block = truths, block

    def infer(self, rgb: np.ndarray, stream: Any = None) -> Any:
        import cv2

        from m2fp_server.engines.base import person_output
        time.sleep(self.delay_s)
        h, w = rgb.shape[:2]
        k = rgb.shape[1] / self.truths.shape[2]  # the frame may arrive reduced
        b = self.block * k
        bits = [rgb[int(0.25 * b):int(0.75 * b), int((i + 0.25) * b):int((i + 0.75) * b)].mean() > 127
                for i in range(8)]
        index = sum(1 << i for i, on in enumerate(bits) if on) % len(self.truths)
        truth = cv2.resize(self.truths[index].astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
        return person_output(truth, self.inner.classes)


def late_server_command(delay_ms: float, truths: Path | None = None, block: int = 16) -> list[str]:
    """``truths``: answer with these true masks (``CodedTruth``) instead of the selfie model's."""
    extra = ["--truths", str(truths), "--block", str(block)] if truths is not None else []
    return [sys.executable, str(Path(__file__).resolve()), "--delay-ms", str(delay_ms), *extra]


def main() -> int:
    from m2fp_server.engines.registry import create
    from m2fp_server.server import InferenceServer, ServerSettings
    p = argparse.ArgumentParser()
    p.add_argument("--address", required=True)
    p.add_argument("--delay-ms", type=float, required=True)
    p.add_argument("--engine", default="selfie")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--truths", type=Path, help="a .npy of true masks: answer with them (CodedTruth)")
    p.add_argument("--block", type=int, default=16, help="pixels per bit of the coded frame index")
    args = p.parse_args()
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    engine = LateEngine(create(args.engine), args.delay_ms / 1e3) if args.truths is None else \
        CodedTruth(create(args.engine), args.delay_ms / 1e3, np.load(args.truths), args.block)
    server = InferenceServer(engine, ServerSettings(address=args.address))  # type: ignore[arg-type]
    server.bind()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
