"""One hostile message, or one hostile mix of clients, must never stop the server (issue 16).

Every case runs against a real ``m2fp-server`` process over real ZeroMQ sockets:
the message is answered (an ERROR with a code, never a crash), and a good frame
sent afterwards still gets a correct mask.
"""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
import zmq

import m2fp_protocol as proto
from m2fp_protocol import ErrorCode, Header, MsgType
from m2fp_server.client import MaskClient
from m2fp_server.evaluation.groundtruth import still

from conftest import running_server


@pytest.fixture(scope="module")
def server_process():
    """One real ``m2fp-server`` process for this module (each test checks it is still up); enough
    connections for the routing-id sequence's 200 clients (with 1 MB frames, their shares fit a 2 GiB
    budget; a reservation, not memory used)."""
    with running_server("--engine", "selfie", "--max-connections", "256", "--max-frame-bytes", "1000000",
                        "--frame-budget-mb", "2048") as served:
        yield served


def good_frame() -> tuple[np.ndarray, np.ndarray]:
    rgb, truth = still("astronaut", (128, 96))
    return np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]), truth


def assert_good_mask(address: str) -> None:
    """A fresh, well-behaved client still gets a correct mask."""
    rgba, truth = good_frame()
    with MaskClient(address, timeout_s=20) as c:
        mask, _ = c.mask(rgba)
    fg = mask.array >= 128
    assert (fg & (truth > 0)).sum() / (fg | (truth > 0)).sum() > 0.8


def ask(sock: zmq.Socket, parts: list[bytes], timeout_ms: int = 20_000) -> proto.Message:
    sock.send_multipart(parts)
    assert sock.poll(timeout_ms), "no reply: the server did not answer (or died)"
    return proto.decode(sock.recv_multipart(), accept=proto.CLIENT_ACCEPTS)


def json_msg(t: MsgType, body: bytes) -> list[bytes]:
    return [proto.pack_header(Header(t, frame_id=7)), body]


#: The messages of the issue's table, each of which stopped the server once.
TABLE = {
    "keep superscript two": json_msg(MsgType.CONFIG, '{"keep": ["²"]}'.encode()),
    "keep 5000 digits": json_msg(MsgType.CONFIG, b'{"keep": ["' + b"1" * 5000 + b'"]}'),
    "threshold 400 digits": json_msg(MsgType.CONFIG, b'{"threshold": 1' + b"0" * 400 + b"}"),
    "threshold 5000 digits": json_msg(MsgType.CONFIG, b'{"threshold": 1' + b"0" * 5000 + b"}"),
    "HELLO 100000 [": json_msg(MsgType.HELLO, b"[" * 100_000),
    "CONFIG 100000 [": json_msg(MsgType.CONFIG, b"[" * 100_000),
    "engine_options 500 deep": json_msg(
        MsgType.CONFIG, b'{"engine_options": ' + b'{"a": ' * 500 + b"1" + b"}" * 500 + b"}"),
}


def test_each_message_of_the_issue_table_gets_an_error_and_the_server_keeps_serving(server_process):
    proc, address = server_process
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    try:
        for name, parts in TABLE.items():
            reply = ask(sock, parts)
            assert proc.poll() is None, f"{name}: the server exited"
            assert reply.header.type == MsgType.ERROR, name
            err = proto.decode_json(reply)
            assert err["code"] in (ErrorCode.BAD_CONFIG, ErrorCode.TOO_LARGE, ErrorCode.MALFORMED), (name, err)
            assert reply.header.frame_id == 7
            assert_good_mask(address)
        # the same client's settings were left alone by all of that: a good CONFIG still works
        ack = ask(sock, json_msg(MsgType.CONFIG, b'{"keep": ["1"], "threshold": 0.4}'))
        assert ack.header.type == MsgType.CONFIG_ACK
        assert proto.decode_json(ack)["config"]["threshold"] == 0.4
    finally:
        sock.close()
    assert proc.poll() is None


def test_claimed_routing_ids_that_collide_with_automatic_ones_cannot_abort_the_server(server_process):
    """The issue's exact sequence: 200 DEALERs claiming libzmq's first automatic ids, then one default DEALER."""
    proc, address = server_process
    ctx = zmq.Context.instance()
    claimed = []
    try:
        for k in range(200):
            s = ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.ROUTING_ID, b"\x00" + (0x6B8B4567 + k).to_bytes(4, "big"))
            s.connect(address)
            claimed.append(s)
        for s in claimed:  # every claimed connection is established (one HELLO answered each)
            s.send_multipart(json_msg(MsgType.HELLO, b"{}"))
        for s in claimed:
            assert s.poll(20_000), "a claimed-id client got no INFO"
            assert proto.decode(s.recv_multipart()).header.type == MsgType.INFO
        for _ in range(3):  # then default DEALERs (automatic ids)
            assert_good_mask(address)
        assert proc.poll() is None, "the server exited"
    finally:
        for s in claimed:
            s.close()


def test_a_large_config_is_refused_before_any_copy_and_others_are_not_stalled(server_process):
    proc, address = server_process
    big = json.dumps({"engine_options": {f"k{i}": "x" * 1000 for i in range(1000)}}).encode()  # ~1 MiB
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    try:
        for _ in range(20):
            sock.send_multipart(json_msg(MsgType.CONFIG, big))
        codes = []
        for _ in range(20):
            assert sock.poll(20_000)
            reply = proto.decode(sock.recv_multipart())
            assert reply.header.type == MsgType.ERROR
            codes.append(proto.decode_json(reply)["code"])
        assert set(codes) == {ErrorCode.TOO_LARGE}
        t0 = time.perf_counter()
        assert_good_mask(address)
        assert time.perf_counter() - t0 < 10  # generous: one small frame, not a stall
    finally:
        sock.close()
    assert proc.poll() is None


@pytest.mark.parametrize("body, words", [
    (b'{"keep": ["\xef\xbc\x91"]}', "keep"),  # FULLWIDTH DIGIT ONE: not an ASCII id
    (b'{"keep": ["20"]}', "keep"),  # the selfie engine has 2 classes
    (b'{"threshold": NaN}', "NaN"),
    (b'{"smoothing": Infinity}', "Infinity"),
    (b'{"predict_frames": 1e999}', "1e999"),
    (b'{"threshold": 1.5}', "threshold"),
    (b'{"soft": 1}', "soft"),
    (b'{"wings": true}', "wings"),
    (b'{"engine_options": {"a": [1, 2]}}', "engine_options"),
    (b'{"keep": "Person"}', "keep"),
])
def test_config_values_are_checked_against_the_schema(server_process, body, words):
    proc, address = server_process
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    try:
        reply = ask(sock, json_msg(MsgType.CONFIG, body))
    finally:
        sock.close()
    assert reply.header.type == MsgType.ERROR
    err = proto.decode_json(reply)
    assert err["code"] == ErrorCode.BAD_CONFIG and words in err["message"], err
    assert proc.poll() is None
