"""Loopback by default; anything else needs CURVE keys, and strangers get nothing."""
from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
import zmq

import m2fp_protocol as proto
from m2fp_protocol import Header, MsgType
from m2fp_server.client import MaskClient, ServerTimeout
from m2fp_server.evaluation.groundtruth import still
from m2fp_server.security import ExposureError, generate_keys, is_local, load_client_keys
from m2fp_server.server import InferenceServer, ServerSettings

from conftest import free_port


@pytest.mark.parametrize("address,local", [
    ("tcp://127.0.0.1:5555", True), ("tcp://127.3.4.5:1", True), ("tcp://localhost:5555", True),
    ("tcp://[::1]:5555", True), ("ipc:///tmp/m2fp.sock", True), ("inproc://x", True),
    ("tcp://0.0.0.0:5555", False), ("tcp://*:5555", False), ("tcp://192.168.1.10:5555", False),
    ("tcp://eth0:5555", False), ("udp://127.0.0.1:1", False),
])
def test_loopback_detection(address, local):
    assert is_local(address) is local


def test_server_refuses_a_public_address_without_keys(selfie_engine):
    proc = subprocess.run([sys.executable, "-m", "m2fp_server.cli.serve", "--address", "tcp://0.0.0.0:0",
                           "--engine", "selfie"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "refusing to bind tcp://0.0.0.0:0" in proc.stderr and "m2fp keys" in proc.stderr
    with pytest.raises(ExposureError):
        InferenceServer(selfie_engine, ServerSettings(address="tcp://*:0")).bind()


@pytest.fixture()
def curve_server(selfie_engine, tmp_path):  # type: ignore[no-untyped-def]
    keys = tmp_path / "keys"
    generate_keys(keys, "obs")
    generate_keys(tmp_path / "other", "intruder")  # a valid pair the server never authorised
    ctx = zmq.Context()  # own context: the ZAP handler is per context
    srv = InferenceServer(selfie_engine, ServerSettings(address=f"tcp://0.0.0.0:{free_port()}",
                                                        curve_keys_dir=keys), context=ctx)
    srv.start()
    port = srv.endpoint.rsplit(":", 1)[1]
    yield srv, f"tcp://127.0.0.1:{port}", keys, tmp_path / "other"
    srv.stop()
    srv.join()
    ctx.term()


def _frame():
    rgb, truth = still("astronaut", (128, 96))
    return np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]), truth


def test_authorised_client_gets_masks_over_curve(curve_server):
    srv, address, keys, _ = curve_server
    frame, truth = _frame()
    with MaskClient(address, timeout_s=5, curve=load_client_keys(keys, "obs")) as c:
        assert c.hello()["engine"]["name"] == "selfie"
        mask, _ = c.mask(frame)
        assert ((mask.array >= 128) & (truth > 0)).sum() / ((mask.array >= 128) | (truth > 0)).sum() > 0.8


def test_unauthenticated_clients_get_nothing(curve_server):
    srv, address, keys, other = curve_server
    frame, _ = _frame()
    before = srv.stats["received"]
    intruder = load_client_keys(other, "intruder")
    intruder["server_public"] = load_client_keys(keys, "obs")["server_public"]  # knows the server key
    for curve in (None, intruder):  # plain ZeroMQ, and CURVE with an unlisted key
        with MaskClient(address, timeout_s=1.5, curve=curve) as c:
            c.sock.send_multipart(proto.encode_json(Header(MsgType.HELLO), {}), zmq.NOBLOCK)
            try:
                c.send_frame(frame)
            except zmq.Again:
                pass
            with pytest.raises(ServerTimeout):
                c.wait_for({MsgType.INFO, MsgType.MASK})
    time.sleep(0.2)
    assert srv.stats["received"] == before, "no message from a stranger reached the server"


def test_keys_command_prints_what_obs_needs(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "m2fp_server.cli.main", "keys", "--dir", str(tmp_path / "k")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "server public key" in proc.stdout and "--curve-keys" in proc.stdout
    assert (tmp_path / "k" / "authorized_clients" / "obs.key").is_file()
    assert oct((tmp_path / "k" / "server.key_secret").stat().st_mode & 0o777) == "0o600"
