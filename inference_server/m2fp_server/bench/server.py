"""``m2fp bench`` (default): masks per second and round-trip latency through a real server process.

The server runs as its own process (as users run it); each client is a thread
with one frame in flight (closed loop), so masks/s is the server's throughput
and the round trip is what one OBS source would see.
"""
from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import numpy as np

from ..cpu import usable_cores
from .system import cpu_model


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(engine: str, options: list[str], address: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "m2fp_server.cli.serve", "--address", address, "--engine", engine,
           "--log-level", "WARNING"]
    for o in options:
        cmd += ["-E", o]
    return subprocess.Popen(cmd, start_new_session=True)


def wait_ready(address: str, timeout_s: float = 60.0,
               process: subprocess.Popen[bytes] | None = None) -> dict[str, Any]:
    """The server's INFO once it answers; fails at once if ``process`` (the server) has exited."""
    from ..client import MaskClient, ServerTimeout
    from ..errors import ToolFailed
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with MaskClient(address, timeout_s=1.0) as c:
                return c.hello("m2fp-bench")
        except ServerTimeout:
            if process is not None and process.poll() is not None:
                raise ToolFailed(f"the server exited with status {process.returncode} before answering")
            if time.monotonic() > deadline:
                raise


def _client_loop(address: str, frame: np.ndarray, seconds: float, out: list[float]) -> None:
    from ..client import MaskClient
    with MaskClient(address) as c:
        c.hello("m2fp-bench")
        c.mask(frame)  # warm-up
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t = time.perf_counter()
            c.mask(frame)
            out.append((time.perf_counter() - t) * 1e3)


def measure(address: str, size: tuple[int, int], clients: int, seconds: float) -> dict[str, float]:
    from ..samples import frame_of_size
    frame = np.dstack([frame_of_size(*size), np.full((size[1], size[0]), 255, np.uint8)])  # RGBA, as OBS sends
    results: list[list[float]] = [[] for _ in range(clients)]
    threads = [threading.Thread(target=_client_loop, args=(address, frame, seconds, results[i]))
               for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    rtts = np.concatenate([np.asarray(r) for r in results])
    per_client = [len(r) / seconds for r in results]
    return {"masks_per_s": len(rtts) / min(wall, seconds), "p50_ms": float(np.percentile(rtts, 50)),
            "p95_ms": float(np.percentile(rtts, 95)), "min_client_rate": min(per_client),
            "max_client_rate": max(per_client)}


def run_server_bench(args: argparse.Namespace) -> int:
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")]
    counts = [int(c) for c in args.clients.split(",")]
    proc = None
    address = args.server
    if address is None:
        address = f"tcp://127.0.0.1:{free_port()}"
        print(f"starting a {args.engine} server on {address} ...", flush=True)
        proc = start_server(args.engine, args.engine_option, address)
    try:
        info = wait_ready(address)
        print(f"server {address}: engine {info['engine']['name']}, {usable_cores()} CPUs ({cpu_model()})")
        print(f"{'frame':>9} {'clients':>7} {'masks/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'per-client masks/s':>20}")
        for size in sizes:
            for n in counts:
                r = measure(address, (size[0], size[1]), n, args.seconds)
                fair = f"{r['min_client_rate']:.0f}-{r['max_client_rate']:.0f}"
                print(f"{size[0]:>4}x{size[1]:<4} {n:>7} {r['masks_per_s']:>8.0f} {r['p50_ms']:>7.1f} "
                      f"{r['p95_ms']:>7.1f} {fair:>20}", flush=True)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
    return 0
