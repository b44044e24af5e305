"""``m2fp soak``: hours of streaming in minutes of reading.

Two clients stream at 30 fps (as two OBS sources would: at most two frames in
flight each) against a real server process, while the server's resident memory
and open descriptors are sampled.  Memory is compared with the first sample
taken after the warm-up, so allocator warm-up is not counted as a leak.
"""
from __future__ import annotations

import argparse
import os
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from ..bench.server import free_port, start_server, wait_ready
from ..errors import ToolFailed
from .common import add_engine_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--minutes", type=float, default=30.0, help="duration (default 30)")
    p.add_argument("--clients", type=int, default=2)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--size", default="640x360", help="frame size sent (default 640x360)")
    p.add_argument("--sample-s", type=float, default=None, help="sampling period (default: duration/20)")
    p.add_argument("--warmup-s", type=float, default=None, help="ignored for memory growth (default: 10%%)")
    add_engine_arguments(p)
    p.set_defaults(engine="selfie")


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@dataclass
class ClientStats:
    sent: int = 0
    masks: int = 0
    dropped_server: int = 0  # replaced in the server's queue (latest frame wins)
    skipped_client: int = 0  # not sent: two frames already in flight
    errors: int = 0
    rtt_ms: list[float] = field(default_factory=list)


def stream(address: str, frame: np.ndarray, fps: float, stop: threading.Event, st: ClientStats) -> None:
    from m2fp_protocol import MsgType

    from ..client import MaskClient
    with MaskClient(address, timeout_s=5) as c:
        c.hello("m2fp-soak")
        inflight: dict[int, float] = {}
        period, t0, k = 1.0 / fps, time.perf_counter(), 0
        while not stop.is_set():
            deadline = t0 + k * period
            for r in c.replies_until(deadline):
                sent_at = inflight.pop(r.header.frame_id, None)
                if r.type == MsgType.MASK:
                    st.masks += 1
                    if sent_at is not None:
                        st.rtt_ms.append((time.perf_counter() - sent_at) * 1e3)
                elif r.type == MsgType.DROPPED:
                    st.dropped_server += 1
                elif r.type == MsgType.ERROR:
                    st.errors += 1
            now = time.perf_counter()
            for fid in [f for f, t in inflight.items() if now - t > 1.0]:  # lost: stop waiting
                del inflight[fid]
            k += 1
            if len(inflight) < 2:
                inflight[c.send_frame(frame)] = time.perf_counter()
                st.sent += 1
            else:
                st.skipped_client += 1


def run(args: argparse.Namespace) -> int:
    from ..samples import frame_of_size
    w, h = (int(v) for v in args.size.lower().split("x"))
    frame = np.dstack([frame_of_size(w, h), np.full((h, w), 255, np.uint8)])
    duration = args.minutes * 60.0
    sample_s = args.sample_s or max(1.0, duration / 20)
    warmup_s = args.warmup_s if args.warmup_s is not None else duration * 0.1
    address = f"tcp://127.0.0.1:{free_port()}"
    proc = start_server(args.engine, args.engine_option, address)
    stop = threading.Event()
    stats = [ClientStats() for _ in range(args.clients)]
    threads = [threading.Thread(target=stream, args=(address, frame, args.fps, stop, s), daemon=True)
               for s in stats]
    samples: list[tuple[float, int, int]] = []
    try:
        wait_ready(address)
        t0 = time.monotonic()
        for t in threads:
            t.start()
        print(f"soak: {args.clients} clients x {args.fps:g} fps, {w}x{h}, engine {args.engine}, "
              f"{args.minutes:g} min, server pid {proc.pid}")
        print(f"{'t (s)':>8} {'RSS (MB)':>9} {'fds':>5} {'masks':>8}")
        while (elapsed := time.monotonic() - t0) < duration:
            if proc.poll() is not None:
                raise ToolFailed(f"server exited with {proc.returncode} during the soak")
            samples.append((elapsed, rss_kb(proc.pid), open_fds(proc.pid)))
            print(f"{elapsed:>8.0f} {samples[-1][1] / 1024:>9.1f} {samples[-1][2]:>5} "
                  f"{sum(s.masks for s in stats):>8}", flush=True)
            time.sleep(min(sample_s, max(0.0, duration - elapsed)))
        samples.append((time.monotonic() - t0, rss_kb(proc.pid), open_fds(proc.pid)))
    finally:
        stop.set()
        for t in threads:
            t.join(5)
        proc.terminate()
        proc.wait(10)
    base = next((s for s in samples if s[0] >= warmup_s), samples[0])
    end = samples[-1]
    growth = 100.0 * (end[1] - base[1]) / max(1, base[1])
    sent = sum(s.sent for s in stats)
    rtts = np.concatenate([np.asarray(s.rtt_ms) for s in stats]) if sent else np.zeros(1)
    print(f"RSS after warm-up {base[1] / 1024:.1f} MB -> end {end[1] / 1024:.1f} MB: growth {growth:+.2f} %")
    print(f"open descriptors: {base[2]} -> {end[2]}")
    print(f"frames sent {sent}, masks {sum(s.masks for s in stats)}, "
          f"dropped by the server (newer frame won) {sum(s.dropped_server for s in stats)}, "
          f"skipped by clients (2 in flight) {sum(s.skipped_client for s in stats)}, "
          f"errors {sum(s.errors for s in stats)}")
    print(f"round trip p50 {np.percentile(rtts, 50):.1f} ms, p95 {np.percentile(rtts, 95):.1f} ms")
    print(f"SOAK_RESULT rss_growth_pct={growth:.3f} fds_start={base[2]} fds_end={end[2]} "
          f"errors={sum(s.errors for s in stats)} masks={sum(s.masks for s in stats)}")
    return 0
