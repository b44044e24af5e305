"""Fuzzing: >= 10,000 generated messages against a real server process, and the client-side parser.

Every message must get exactly one reply (an ERROR for anything the codec
rejects), the server must stay up and answer a good frame afterwards, and its
resident memory must stay flat.
"""
from __future__ import annotations

import struct
import time

import numpy as np
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import m2fp_protocol as proto
from m2fp_protocol import MsgType, ProtocolError
from m2fp_server.client import MaskClient
from m2fp_server.cli.soak import rss_kb
from m2fp_server.evaluation.groundtruth import still

from conftest import stopped_stats

HEADER = struct.Struct("<4sBBHQqIIHHIIHHfffI")
N_SERVER_CASES = 10_000
N_CLIENT_CASES = 10_000

u8, u16, u32 = st.integers(0, 255), st.integers(0, 2**16 - 1), st.integers(0, 2**32 - 1)
small_dim = st.one_of(st.integers(0, 40), st.sampled_from([2**31, 2**32 - 1, 8193, 9000]))


@st.composite
def headers(draw: st.DrawFn) -> bytes:
    """Mostly plausible headers with one or more fields pushed out of range."""
    w, h = draw(small_dim), draw(small_dim)
    fmt = draw(st.one_of(st.integers(1, 5), u16))
    return HEADER.pack(
        draw(st.sampled_from([b"M2FP", b"M2FQ", b"\x00\x00\x00\x00"])) if draw(st.booleans()) else b"M2FP",
        draw(st.sampled_from([1, 1, 1, 0, 2, 255])),
        draw(st.one_of(st.integers(0, 10), u8)),
        draw(u16), draw(st.integers(0, 2**64 - 1)), draw(st.integers(-(2**63), 2**63 - 1)),
        w, h, fmt, draw(u16),
        draw(st.one_of(st.just(0), st.integers(0, 200), u32)), draw(u32),
        draw(st.one_of(st.just(0), u16)), draw(st.one_of(st.just(0), u16)),
        0.0, 0.0, 0.0, draw(u32))


@st.composite
def messages(draw: st.DrawFn) -> list[bytes]:
    kind = draw(st.integers(0, 5))
    if kind == 0:  # random blobs, any number of parts
        return draw(st.lists(st.binary(max_size=96), min_size=1, max_size=4))
    if kind == 1:  # JSON-ish payloads on HELLO/CONFIG
        t = draw(st.sampled_from([MsgType.HELLO, MsgType.CONFIG]))
        body = draw(st.one_of(
            st.binary(max_size=64),
            st.sampled_from([b"{", b"[]", b"null", b'{"threshold": 9}', b'{"keep": ["Wings"]}', b'{"keep": 3}',
                             b'{"smoothing": 0.3}', b'{"soft": "yes"}', b"\xff\xfe", b'{"nope": 1}'])))
        return [proto.pack_header(proto.Header(t)), body]
    header = draw(headers())
    fields = HEADER.unpack(header)
    w, h, fmt, stride = fields[6], fields[7], fields[8], fields[10]
    bpp = {1: 4, 2: 4, 3: 3, 4: 3, 5: 1}.get(fmt, 4)
    row = min(w, 64) * bpp
    nominal = (stride or row) * min(h, 64)
    size = draw(st.one_of(st.just(nominal), st.integers(0, min(nominal + 16, 70_000)).map(int)))
    parts = [header, bytes(min(size, 70_000))]
    if kind == 3:
        parts = parts[:1]
    elif kind == 4:
        parts = [header[: draw(st.integers(0, 63))], parts[1]]
    return parts


def predicted_error(parts: list[bytes]) -> bool:
    try:
        proto.decode(parts, accept=proto.SERVER_ACCEPTS)
    except ProtocolError:
        return True
    return False


def test_server_survives_10000_fuzzed_messages_with_flat_memory(server_process):
    proc, address = server_process
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.connect(address)
    counts = {"sent": 0, "expected_errors": 0, "replies": 0, "errors": 0}
    rss: list[int] = []

    def drain(wait_ms: int = 0) -> None:
        while sock.poll(wait_ms):
            reply = proto.decode(sock.recv_multipart(), accept=proto.CLIENT_ACCEPTS)
            if reply.header.type != MsgType.PARSING:  # PARSING comes in addition to a MASK
                counts["replies"] += 1
            counts["errors"] += reply.header.type == MsgType.ERROR

    @settings(max_examples=N_SERVER_CASES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(messages())
    def fuzz(parts: list[bytes]) -> None:
        counts["expected_errors"] += predicted_error(parts)
        sock.send_multipart(parts)
        counts["sent"] += 1
        if counts["sent"] in (2000, 6000):
            drain(50)
            rss.append(rss_kb(proc.pid))
        drain()

    try:
        fuzz()
        deadline = time.monotonic() + 20
        while counts["replies"] < counts["sent"] and time.monotonic() < deadline:
            drain(200)
        rss.append(rss_kb(proc.pid))
    finally:
        sock.close()
    assert counts["sent"] >= N_SERVER_CASES
    assert proc.poll() is None, "server died"
    rgb, truth = still("astronaut", (128, 96))
    with MaskClient(address, timeout_s=5) as c:
        mask, _ = c.mask(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]))
    assert ((mask.array >= 128) & (truth > 0)).sum() / ((mask.array >= 128) | (truth > 0)).sum() > 0.8
    stats = stopped_stats(proc, timeout_s=10)
    # exactly one answer per message; a reply is only ever dropped (never blocks) when this
    # client was too slow to read and the server's send queue was full
    assert counts["replies"] + stats.get("send_dropped", 0) == counts["sent"], (counts, stats)
    assert stats["received"] >= counts["sent"]
    assert counts["errors"] >= counts["expected_errors"] > N_SERVER_CASES // 2, counts
    # flat = no growth per message: the second half (6,000 -> 10,000) may not grow; allocator
    # warm-up (arenas sized by the biggest frame and mask seen so far) happens in the first half
    first_mb, second_mb = (rss[1] - rss[0]) / 1024, (rss[2] - rss[1]) / 1024
    assert second_mb < 4, f"RSS grew {second_mb:.1f} MB over the last 4,000 messages ({rss} kB)"
    assert first_mb + second_mb < 24, f"RSS grew {first_mb + second_mb:.1f} MB ({rss} kB)"


@settings(max_examples=N_CLIENT_CASES, deadline=None, database=None, derandomize=True)
@given(messages())
def test_reply_parser_rejects_garbage_cleanly(parts):
    """What a client (the OBS script uses the same codec) does with anything a server might send."""
    try:
        msg = proto.decode(parts, accept=proto.CLIENT_ACCEPTS)
    except ProtocolError as exc:
        assert exc.code in set(proto.ErrorCode) and str(exc)
        return
    assert msg.header.type in proto.CLIENT_ACCEPTS
    if msg.header.type in (MsgType.MASK, MsgType.PARSING):  # then the pixels really fit the header
        h = msg.header
        assert len(msg.payload) >= (h.stride or h.width) * (h.height - 1) + h.width
    if msg.header.type in (MsgType.INFO, MsgType.ERROR, MsgType.CONFIG_ACK):
        try:
            proto.decode_json(msg)
        except ProtocolError:
            pass
