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


def late_server_command(delay_ms: float) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--delay-ms", str(delay_ms)]


def main() -> int:
    from m2fp_server.engines.registry import create
    from m2fp_server.server import InferenceServer, ServerSettings
    p = argparse.ArgumentParser()
    p.add_argument("--address", required=True)
    p.add_argument("--delay-ms", type=float, required=True)
    p.add_argument("--engine", default="selfie")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args()
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    engine = LateEngine(create(args.engine), args.delay_ms / 1e3)
    server = InferenceServer(engine, ServerSettings(address=args.address))  # type: ignore[arg-type]
    server.bind()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
