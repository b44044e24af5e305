"""Connections over the limit are refused at the handshake, so frames still arriving stay bounded (issue 16).

libzmq allocates each message's full size as soon as it reads its header; only the number of
connections that may send at once bounds that memory (inference_server/m2fp_server/admission.py).
"""
from __future__ import annotations

import ast
import re
import time

import numpy as np
import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

import m2fp_protocol as proto
from m2fp_protocol import Header, MsgType
from m2fp_server.admission import ConnectionGate
from m2fp_server.client import MaskClient
from m2fp_server.errors import BadInput
from m2fp_server.server import ServerSettings

from conftest import running_server
from hostile_load import FRAME_4K_BYTES, GoodClient, RssSampler, p95, park_4k_frames

SLACK_MB = 300  # the allowance above the budget


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_gate_counts_open_connections_and_frees_a_slot_on_disconnect():
    gate = ConnectionGate(2)
    gate.accepted(11)
    assert gate.admit(b"NULL", []) is None
    gate.accepted(12)
    assert gate.admit(b"NULL", []) is None
    gate.accepted(13)  # a third connection, itself counted while it is decided
    assert "limit 2" in (gate.admit(b"NULL", []) or "")
    gate.disconnected(13)  # the refused one closes
    gate.disconnected(11)
    gate.accepted(11)  # the fd is reused by the next connection
    assert gate.admit(b"NULL", []) is None
    assert gate.refused == 1 and gate.open_connections == 2
    assert gate.closed_fds() == [13, 11] and gate.closed_fds() == []


def hello_answered(sock: zmq.Socket, timeout_ms: int) -> bool:
    try:
        sock.send_multipart(proto.encode_json(Header(MsgType.HELLO), {}), zmq.NOBLOCK)
    except zmq.Again:  # no connection to queue it on (refused, not yet reconnected)
        time.sleep(timeout_ms / 1000)
        return False
    return bool(sock.poll(timeout_ms)) and proto.decode(sock.recv_multipart()).header.type == MsgType.INFO


def test_a_client_over_the_limit_is_refused_at_the_handshake_until_a_slot_frees():
    with running_server("--engine", "selfie", "--max-connections", "3") as (proc, address):
        ctx = zmq.Context.instance()
        socks = []
        try:
            for _ in range(3):
                s = ctx.socket(zmq.DEALER)
                s.setsockopt(zmq.LINGER, 0)
                s.connect(address)
                socks.append(s)
                assert hello_answered(s, 10_000)
            extra = ctx.socket(zmq.DEALER)
            extra.setsockopt(zmq.LINGER, 0)
            mon = extra.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH)
            extra.connect(address)
            socks.append(extra)
            assert mon.poll(10_000), "the fourth connection was not refused at its handshake"
            assert recv_monitor_message(mon)["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH
            assert not hello_answered(extra, 500)
            socks.pop(0).close()  # a slot frees: libzmq's reconnect gets the fourth client in
            deadline = time.monotonic() + 10
            while not hello_answered(extra, 200):  # what was sent while refused went with that connection
                assert time.monotonic() < deadline, "the fourth client never got in after a slot freed"
            extra.disable_monitor()
            mon.close()
        finally:
            for s in socks:
                s.close()
        proc.terminate()
        assert proc.wait(20) == 0
        stats = ast.literal_eval(re.search(r"server stopped \((\{.*\})\)", proc.stdout.read().decode()).group(1))
        assert stats.get("connections_refused", 0) >= 1, stats


def test_settings_that_cannot_hold_together_are_refused_with_the_options_to_change():
    s = ServerSettings(max_frame_bytes=FRAME_4K_BYTES, frame_budget_bytes=64 << 20, max_connections=8)
    with pytest.raises(BadInput, match="--max-connections"):
        s.check()
    auto = ServerSettings(max_frame_bytes=FRAME_4K_BYTES)
    auto.check()  # the default budget at 4K: fewer connections, each one's arriving frame reserved
    assert auto.connection_limit * auto.hard_limit + auto.parked_budget_bytes == auto.frame_budget_bytes
    assert ServerSettings().connection_limit > auto.connection_limit >= 1


def test_the_client_refuses_a_frame_over_the_servers_limit_before_sending_it():
    with running_server("--engine", "selfie", "--max-frame-bytes", "100000") as (_proc, address):
        with MaskClient(address, timeout_s=10) as c:
            c.hello()
            with pytest.raises(BadInput, match="max-frame-bytes"):
                c.send_frame(np.zeros((200, 200, 4), np.uint8))
            mask, _ = c.mask(np.full((120, 160, 4), 200, np.uint8))  # the connection is still good
            assert mask.array.shape == (120, 160)


def test_many_clients_uploading_4k_frames_at_once_stay_within_the_budget():
    """Sixty 33 MB frames offered at the same moment: 2 GB that libzmq would hold while they arrive."""
    budget_mb = 512
    with running_server("--engine", "selfie", "--max-frame-bytes", str(FRAME_4K_BYTES),
                        "--frame-budget-mb", str(budget_mb)) as (proc, address):
        ctx = zmq.Context.instance()
        good = GoodClient(address)
        try:
            unloaded = good.run_for(2)
            with RssSampler(proc.pid) as rss:
                t = good.background(8)
                socks = park_4k_frames(address, 60, ctx)
                t.join()
            loaded = good.latencies[len(unloaded):]
            for s in socks:
                s.close()
        finally:
            good.close()
        assert proc.poll() is None
        assert rss.peak_kb / 1024 < budget_mb + SLACK_MB, f"peak RSS {rss.peak_kb / 1024:.0f} MB"
        assert not good.errors, good.errors[:3]
        assert len(loaded) > 20
        assert p95(loaded) < 5, (p95(unloaded), p95(loaded))  # a sanity bound; figures in docs/security.md
        time.sleep(0.2)
        proc.terminate()
        assert proc.wait(20) == 0
        stats = ast.literal_eval(re.search(r"server stopped \((\{.*\})\)", proc.stdout.read().decode()).group(1))
        assert stats.get("connections_refused", 0) > 0, stats
