"""Server-side faults: clients that vanish mid-message, speak garbage TCP, or never read."""
from __future__ import annotations

import socket
import time

import numpy as np
import zmq

from m2fp_server.client import MaskClient
from m2fp_server.evaluation.groundtruth import still


def _check_serving(address: str) -> None:
    rgb, truth = still("grace_hopper", (128, 96))
    with MaskClient(address, timeout_s=5) as c:
        mask, _ = c.mask(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]))
    inter = ((mask.array >= 128) & (truth > 0)).sum()
    assert inter / ((mask.array >= 128) | (truth > 0)).sum() > 0.8


def test_server_survives_clients_vanishing_mid_message(server_process):
    proc, address = server_process
    host, port = address.replace("tcp://", "").split(":")
    # 1. raw TCP: half a ZMTP greeting, then gone
    with socket.create_connection((host, int(port))) as s:
        s.sendall(b"\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7f\x03")
    # 2. raw TCP: garbage only
    with socket.create_connection((host, int(port))) as s:
        s.sendall(b"GET / HTTP/1.1\r\n\r\n" * 10)
    # 3. a full greeting and handshake, then a frame header announcing 1 MB and only 10 bytes of it
    with socket.create_connection((host, int(port))) as s:
        s.sendall(b"\xff" + bytes(8) + b"\x7f" + b"\x03\x00" + b"NULL" + bytes(16) + b"\x00" + bytes(31))
        time.sleep(0.1)
        s.sendall(b"\x02\x00\x00\x00\x00\x00\x10\x00\x00" + b"0123456789")
    # 4. a DEALER that sends the first part of a multipart message and closes at once
    ctx = zmq.Context.instance()
    d = ctx.socket(zmq.DEALER)
    d.setsockopt(zmq.LINGER, 0)
    d.connect(address)
    d.send(b"M2FP" + bytes(60), zmq.SNDMORE)
    d.close()
    # 5. a client that streams frames and never reads a reply, then disappears
    rgb, _ = still("astronaut", (320, 240))
    with MaskClient(address, timeout_s=5) as c:
        for i in range(50):
            try:
                c.send_frame(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]), frame_id=i + 1)
            except zmq.Again:
                break
    time.sleep(0.3)
    assert proc.poll() is None, "server died"
    _check_serving(address)
