"""Shared fixtures: real servers on random loopback ports, real engines, real images.

Fixtures here are used by many test files; add new ones at the end rather than
changing these.
"""
from __future__ import annotations

import ast
import contextlib

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
import zmq

import m2fp_protocol as proto
from m2fp_protocol import Header, MsgType

from m2fp_server.bench.server import free_port, wait_ready  # noqa: F401  (re-exported: tests import them from here)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def selfie_engine():  # type: ignore[no-untyped-def]
    from m2fp_server.engines.selfie import SelfieEngine
    eng = SelfieEngine()
    yield eng
    eng.close()


@pytest.fixture()
def server(selfie_engine):  # type: ignore[no-untyped-def]
    """An in-process InferenceServer (real ROUTER socket, own threads) on a random port."""
    from m2fp_server.server import InferenceServer, ServerSettings
    srv = InferenceServer(selfie_engine, ServerSettings(address="tcp://127.0.0.1:*"))
    srv.start()
    yield srv
    srv.stop()
    srv.join()


@pytest.fixture()
def client(server):  # type: ignore[no-untyped-def]
    from m2fp_server.client import MaskClient
    c = MaskClient(server.endpoint, timeout_s=10.0)
    yield c
    c.close()


def start_server_process(*args: str, port: int | None = None, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """``m2fp-server`` as its own process (own session so a test can signal exactly it)."""
    port = port or free_port()
    address = f"tcp://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "m2fp_server.cli.serve", "--address", address, *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, **(env or {})})
    return proc, address


@contextlib.contextmanager
def running_server(*args: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """``start_server_process(*args)``, ready to serve; stopped (only it) afterwards."""
    proc, address = start_server_process(*args)
    try:
        try:
            wait_ready(address, process=proc)
        except Exception:
            if proc.poll() is not None and proc.stdout is not None:  # say why it exited
                raise AssertionError("m2fp-server exited:\n" + proc.stdout.read().decode(errors="replace")[-3000:])
            raise
        yield proc, address
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def stopped_stats(proc: subprocess.Popen, timeout_s: float = 20) -> dict:
    """Stop a server process started by ``start_server_process`` cleanly; the counters it logged at exit."""
    proc.terminate()
    assert proc.wait(timeout_s) == 0
    log = proc.stdout.read().decode() if proc.stdout is not None else ""
    return ast.literal_eval(re.search(r"server stopped \((\{.*\})\)", log).group(1))


@pytest.fixture()
def server_process() -> Iterator[tuple[subprocess.Popen, str]]:
    """A real ``m2fp-server`` process on the selfie engine."""
    with running_server("--engine", "selfie") as served:
        yield served


@pytest.fixture(scope="session", autouse=True)
def _auto_bench_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """``--engine auto`` times engines once per session here, never into the user's cache (figures taken
    under a test run's load would be reused by their server), in this process and in servers it starts."""
    old = os.environ.get("M2FP_AUTO_BENCH")
    os.environ["M2FP_AUTO_BENCH"] = str(tmp_path_factory.mktemp("auto-bench") / "auto-bench.json")
    yield
    if old is None:
        os.environ.pop("M2FP_AUTO_BENCH", None)
    else:
        os.environ["M2FP_AUTO_BENCH"] = old


def hello_answered(sock: zmq.Socket, timeout_ms: int) -> bool:
    """Whether the server answers a HELLO on ``sock`` with INFO within ``timeout_ms``."""
    try:
        sock.send_multipart(proto.encode_json(Header(MsgType.HELLO), {}), zmq.NOBLOCK)
    except zmq.Again:  # no connection to queue it on (refused, not yet reconnected)
        time.sleep(timeout_ms / 1000)
        return False
    return bool(sock.poll(timeout_ms)) and proto.decode(sock.recv_multipart()).header.type == MsgType.INFO


def admitted_dealer(address: str, timeout_s: float = 10.0) -> zmq.Socket:
    """A DEALER the server has admitted (its HELLO answered), opening a fresh socket after a refusal as the
    product's clients do: a connection closed just before (``wait_ready``'s) may still be counted by the
    server's connection gate, which never counts below the truth, and libzmq never redials a refused one."""
    deadline = time.monotonic() + timeout_s
    while True:
        sock: zmq.Socket = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(address)
        if hello_answered(sock, 1000):
            return sock
        sock.close()
        assert time.monotonic() < deadline, f"no connection to {address} admitted within {timeout_s} s"


def nudge(clip, seed: int):  # type: ignore[no-untyped-def]
    """``clip`` with its frames moved by one grey level on a random fifth of their values, the same ones on
    every frame (still frames stay equal to each other): a change nobody can see, which decides a
    near-threshold case the other way, much as another CPU kind's rounding does."""
    import dataclasses

    import numpy as np
    rng = np.random.default_rng([seed, sum(map(ord, clip.name))])
    shape = clip.frames.shape[1:]
    frames = clip.frames.astype(np.int16)
    frames += (rng.random(shape) < 0.2) * rng.choice(np.array([-1, 1], np.int16), shape)
    return dataclasses.replace(clip, frames=np.clip(frames, 0, 255).astype(np.uint8))


@pytest.fixture(scope="session", autouse=True)
def nudged_clips() -> Iterator[None]:
    """``M2FP_NUDGE=<seed>``: every evaluation clip's frames are ``nudge``d.  A test bar that only holds on
    this CPU's exact numbers fails under a nudge too (docs/development.md, "Bars that hold on other CPUs")."""
    seed = os.environ.get("M2FP_NUDGE")
    if not seed:
        yield
        return
    import functools

    from m2fp_server.evaluation import clips
    built = clips._cached

    @functools.lru_cache(maxsize=None)
    def nudged(name, kw):  # type: ignore[no-untyped-def]
        return nudge(built(name, kw), int(seed))
    clips._cached = nudged  # type: ignore[assignment]
    try:
        yield
    finally:
        clips._cached = built  # type: ignore[assignment]
