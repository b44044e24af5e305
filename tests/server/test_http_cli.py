"""``m2fp-server --http``: loopback by default, refused elsewhere without the explicit flag, one engine."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests
from conftest import free_port, wait_ready
from m2fp_server.samples import PORTRAITS
from m2fp_server.web.settings import HttpAddressError, check_bind_address, parse_http_address


@pytest.mark.parametrize("text,expected", [
    ("127.0.0.1:5000", ("127.0.0.1", 5000)),
    ("localhost:8080", ("localhost", 8080)),
    ("[::1]:5001", ("::1", 5001)),
    (":5002", ("127.0.0.1", 5002)),
    ("5003", ("127.0.0.1", 5003)),
])
def test_address_forms(text, expected):
    assert parse_http_address(text) == expected


@pytest.mark.parametrize("text", ["127.0.0.1:http", "127.0.0.1:70000", "host:"])
def test_bad_addresses(text):
    with pytest.raises(HttpAddressError, match="--http"):
        parse_http_address(text)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_is_allowed(host):
    check_bind_address(host, allow_remote=False)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10"])
def test_other_addresses_need_the_explicit_flag(host):
    with pytest.raises(HttpAddressError, match="--http-allow-remote"):
        check_bind_address(host, allow_remote=False)
    check_bind_address(host, allow_remote=True)


def test_server_refuses_a_public_http_address_before_loading_a_model():
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "m2fp_server.cli.serve", "--engine", "selfie",
                           "--address", f"tcp://127.0.0.1:{free_port()}", "--http", f"0.0.0.0:{free_port()}"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 1
    assert "refusing to serve HTTP on 0.0.0.0" in proc.stderr and "--http-allow-remote" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "engine selfie" not in proc.stderr  # no model was loaded
    assert time.perf_counter() - t0 < 15


def test_one_process_serves_zeromq_and_http_on_one_engine():
    zport, hport = free_port(), free_port()
    address, url = f"tcp://127.0.0.1:{zport}", f"http://127.0.0.1:{hport}"
    proc = subprocess.Popen([sys.executable, "-m", "m2fp_server.cli.serve", "--engine", "selfie",
                             "--address", address, "--http", f"127.0.0.1:{hport}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        info = wait_ready(address)
        deadline = time.monotonic() + 20
        while True:
            try:
                web_info = requests.get(f"{url}/api/info", timeout=2).json()["data"]
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        assert web_info["engine"] == info["engine"]
        assert [c["name"] for c in web_info["classes"]] == [c["name"] for c in info["classes"]]
        r = requests.post(f"{url}/api/parse", files={"image": PORTRAITS["astronaut"].open("rb")}, timeout=20)
        assert r.status_code == 200 and r.json()["data"]["classes"] == ["Background", "Person"]
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out
    assert f"WebUI and REST API on {url}" in out
    assert out.count("m2fp_server.engines.registry: engine selfie") == 1  # one model for both front ends
    assert out.count("Created TensorFlow Lite") == 1
    assert "HTTP front end stopped" in out


def test_a_port_in_use_is_a_clear_error(selfie_engine):
    import socket
    import threading

    from m2fp_server.web.frontend import HttpFrontEnd
    from m2fp_server.web.settings import HttpSettings
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        fe = HttpFrontEnd(selfie_engine, threading.Lock(), HttpSettings(port=port))
        with pytest.raises(HttpAddressError, match=f"cannot listen for HTTP on 127.0.0.1:{port}: .*in use"):
            fe.start()
