"""Hostile client mixes against a real server, and a well-behaved client's latency meanwhile (issue 16).

Used at small scale by the default suite (test_memory_budget.py) and at full scale as an
opt-in measurement whose figures go in docs/security.md:

    python tests/server/hostile_load.py parked --clients 250          # 250 DEALERs parking one 4K frame each
    python tests/server/hostile_load.py churn --rate 1000 --seconds 30
    python tests/server/hostile_load.py http --connections 2000
    python tests/server/hostile_load.py parked --clients 250 --policy refuse
"""
from __future__ import annotations

import argparse
import socket
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # conftest.py (tests/), when run as a script

import m2fp_protocol as proto  # noqa: E402
from m2fp_protocol import Header, MsgType, PixelFormat  # noqa: E402
from m2fp_server.cli.soak import rss_kb  # noqa: E402
from m2fp_server.client import MaskClient  # noqa: E402
from m2fp_server.evaluation.groundtruth import still  # noqa: E402

FRAME_4K = (2160, 3840)
FRAME_4K_BYTES = FRAME_4K[0] * FRAME_4K[1] * 4


def p95(xs: list[float]) -> float:
    return float(np.percentile(xs, 95)) if xs else float("nan")


@dataclass
class RssSampler:
    """Peak resident memory of a process, sampled every ``period`` s in a thread."""

    pid: int
    period: float = 0.02
    peak_kb: int = 0
    samples: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> "RssSampler":
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            kb = rss_kb(self.pid)
            self.samples.append(kb)
            self.peak_kb = max(self.peak_kb, kb)
            time.sleep(self.period)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


class GoodClient:
    """A well-behaved client: one small frame, wait for its mask, repeat; latencies in seconds."""

    def __init__(self, address: str, size: tuple[int, int] = (160, 120)) -> None:
        rgb, _ = still("astronaut", size)
        self.frame = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
        # its own context (own I/O thread): the hostile sockets' gigabytes must not queue ahead of it here
        self._ctx = zmq.Context()
        self.client = MaskClient(address, context=self._ctx, timeout_s=60)
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self._stop = threading.Event()

    def run_for(self, seconds: float) -> list[float]:
        out: list[float] = []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end and not self._stop.is_set():
            t0 = time.perf_counter()
            try:
                self.client.mask(self.frame)
            except Exception as exc:  # noqa: BLE001 - recorded, the caller asserts on it
                self.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            out.append(time.perf_counter() - t0)
        self.latencies.extend(out)
        return out

    def background(self, seconds: float) -> threading.Thread:
        t = threading.Thread(target=self.run_for, args=(seconds,), daemon=True)
        t.start()
        return t

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self.client.close()
        self._ctx.term()


def frame_4k_parts(frame_id: int, buf: np.ndarray) -> list:
    h, w = buf.shape[:2]
    header = Header(MsgType.FRAME, frame_id=frame_id, width=w, height=h, pixel_format=PixelFormat.RGBA,
                    stride=w * 4)
    return [proto.pack_header(header), zmq.Frame(buf, copy=False)]


def park_4k_frames(address: str, clients: int, ctx: zmq.Context) -> list[zmq.Socket]:
    """``clients`` DEALERs each send one 3840x2160 RGBA frame and never read (they stay connected)."""
    buf = np.full((*FRAME_4K, 4), 128, np.uint8)  # one buffer shared by every send (no copy in this process)
    socks = []
    for i in range(clients):
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.RCVHWM, 1)
        s.connect(address)
        s.send_multipart(frame_4k_parts(i + 1, buf), copy=False)
        socks.append(s)
    return socks


def wait_arrived(socks: list[zmq.Socket], timeout_s: float = 120) -> None:
    """Return once the server has received everything these sockets sent: each sends a HELLO after
    its frame (one connection keeps order) and waits for the INFO, skipping the other replies."""
    hello = [proto.pack_header(Header(MsgType.HELLO)), b""]
    for s in socks:
        s.send_multipart(hello)
    deadline = time.monotonic() + timeout_s
    for s in socks:
        while True:
            if not s.poll(max(1, int((deadline - time.monotonic()) * 1000))):
                raise TimeoutError("the server did not answer a HELLO")
            if proto.unpack_header(s.recv_multipart(copy=False)[0].buffer).type == MsgType.INFO:
                break


def churn(address: str, rate: float, seconds: float, ctx: zmq.Context, size: tuple[int, int] = (640, 360)) -> int:
    """Connect, send one frame, disconnect, ``rate`` times a second; returns how many connections were made."""
    rgb = np.full((size[1], size[0], 4), 90, np.uint8)
    header = proto.pack_header(Header(MsgType.FRAME, width=size[0], height=size[1], pixel_format=PixelFormat.RGBA,
                                      stride=size[0] * 4))
    n = 0
    start = time.perf_counter()
    while (now := time.perf_counter()) - start < seconds:
        due = int((now - start) * rate)
        while n < due:
            s = ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.connect(address)
            s.send_multipart([header, rgb], copy=False)
            s.close(linger=50)
            n += 1
        time.sleep(0.002)
    return n


def http_herd(host: str, port: int, connections: int) -> int:
    """Open ``connections`` HTTP connections, each with a complete GET, then read them all at once."""
    socks = []
    for _ in range(connections):
        try:
            s = socket.create_connection((host, port), timeout=30)
        except OSError:
            break
        s.sendall(b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        socks.append(s)
    ok = 0
    for s in socks:
        try:
            if s.recv(12).startswith(b"HTTP/1.1"):
                ok += 1
        except OSError:
            pass
        s.close()
    return ok


# --------------------------------------------------------------------------- command line
def _server(args: argparse.Namespace, extra: list[str]):  # type: ignore[no-untyped-def]
    """The server process, its log drained by a thread (a full pipe would block its logging threads)."""
    from conftest import start_server_process, wait_ready
    proc, address = start_server_process("--engine", args.engine, *extra)

    def drain() -> None:
        for line in proc.stdout:
            if b"WARNING" in line or b"ERROR" in line or b"stopped" in line:
                sys.stderr.write("server: " + line.decode(errors="replace"))
    threading.Thread(target=drain, daemon=True).start()
    wait_ready(address)
    return proc, address


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mix", choices=["parked", "churn", "http"])
    p.add_argument("--engine", default="selfie")
    p.add_argument("--clients", type=int, default=250)
    p.add_argument("--rate", type=float, default=1000)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--connections", type=int, default=2000)
    p.add_argument("--policy", default="drop-oldest", choices=["refuse", "drop-oldest"])
    p.add_argument("--server-arg", dest="server_args", action="append", default=[],
                   help="one more m2fp-server argument (repeat), e.g. --server-arg=--max-connections=40")
    args = p.parse_args(argv)
    extra = ["--budget-policy", args.policy, *args.server_args]
    if args.mix == "parked":  # 4K frames must be within the frame limit (the default is 1080p)
        extra += ["--max-frame-bytes", str(FRAME_4K_BYTES)]
    http_port = None
    if args.mix == "http":
        from conftest import free_port
        http_port = free_port()
        extra += ["--http", f"127.0.0.1:{http_port}"]
    proc, address = _server(args, extra)
    ctx: zmq.Context = zmq.Context.instance()
    good = GoodClient(address)
    try:
        unloaded = good.run_for(5)
        base = rss_kb(proc.pid)
        with RssSampler(proc.pid) as rss:
            if args.mix == "parked":
                t = good.background(20)
                socks = park_4k_frames(address, args.clients, ctx)
                t.join()
                for s in socks:
                    s.close()
            elif args.mix == "churn":
                t = good.background(args.seconds + 5)
                n = churn(address, args.rate, args.seconds, ctx)
                print(f"churn: {n} connections in {args.seconds:g} s")
                t.join()
            else:
                t = good.background(30)
                assert http_port is not None
                ok = http_herd("127.0.0.1", http_port, args.connections)
                print(f"http: {ok}/{args.connections} connections answered")
                t.join()
        loaded = good.latencies[len(unloaded):]
        print(f"{args.mix} ({args.policy}): server RSS before {base / 1024:.0f} MB, peak {rss.peak_kb / 1024:.0f} MB; "
              f"good client p95 unloaded {p95(unloaded) * 1e3:.0f} ms, loaded {p95(loaded) * 1e3:.0f} ms "
              f"(median {statistics.median(loaded) * 1e3:.0f} ms, {len(loaded)} masks, {len(good.errors)} errors); "
              f"server alive: {proc.poll() is None}")
    finally:
        good.close()
        proc.terminate()
        proc.wait(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
