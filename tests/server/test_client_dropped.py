"""A frame the server answers with DROPPED ends ``MaskClient.mask`` at once, not at the timeout."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import zmq

import m2fp_protocol as proto
from m2fp_protocol import Header, MsgType
from m2fp_server.client import FrameDropped, MaskClient


def test_a_dropped_frame_is_reported_at_once() -> None:
    router: zmq.Socket = zmq.Context.instance().socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")

    def answer() -> None:  # a server whose frame memory is full: every frame is dropped
        if router.poll(5000):
            ident, *parts = router.recv_multipart()
            h = proto.decode(parts).header
            router.send_multipart([ident, *proto.encode(Header(MsgType.DROPPED, frame_id=h.frame_id,
                                                               timestamp_us=h.timestamp_us))])
    t = threading.Thread(target=answer, daemon=True)
    t.start()
    try:
        with MaskClient(f"tcp://127.0.0.1:{port}", timeout_s=30) as client:
            t0 = time.monotonic()
            with pytest.raises(FrameDropped, match="dropped frame 1"):
                client.mask(np.zeros((48, 64, 3), np.uint8))
            assert time.monotonic() - t0 < 5  # answered, not timed out
    finally:
        t.join(5)
        router.close()
