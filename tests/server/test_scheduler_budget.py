"""The scheduler's memory budget and fair share, on real decoded messages (no sockets needed)."""
from __future__ import annotations

import time

import pytest

import m2fp_protocol as proto
from m2fp_protocol import ErrorCode, Header, MsgType, PixelFormat, ProtocolError, StreamConfig
from m2fp_server.scheduler import Job as _Job, Scheduler as _Scheduler
from m2fp_server.streams import StreamState


def job(identity: bytes, w: int, h: int) -> _Job:
    payload = bytes(w * h * 4)
    msg = proto.decode([proto.pack_header(Header(MsgType.FRAME, width=w, height=h, pixel_format=PixelFormat.RGBA,
                                                 stride=w * 4)), payload], accept=proto.SERVER_ACCEPTS)
    return _Job(identity, msg, None, time.perf_counter(), StreamState(identity, StreamConfig()))


def test_refuse_policy_keeps_parked_bytes_under_the_budget():
    s = _Scheduler(budget=3 * 400 * 300 * 4, policy="refuse")
    for i in range(3):
        s.submit(job(b"c%d" % i, 400, 300))
    with pytest.raises(ProtocolError) as err:
        s.submit(job(b"c9", 400, 300))
    assert err.value.code == ErrorCode.SERVER_BUSY
    old, evicted = s.submit(job(b"c0", 400, 300))  # a client's own newer frame replaces its parked one
    assert old is not None and evicted == []
    assert s.parked == s.budget
    taken = s.take(0)
    assert taken is not None and s.parked == s.budget  # the running frame still counts...
    s.done(taken)
    assert s.parked == 2 * 400 * 300 * 4  # ...until the worker is done with it
    assert s.discard(b"c1") is not None and s.parked == 400 * 300 * 4


def test_drop_oldest_policy_drops_other_clients_oldest_frames():
    s = _Scheduler(budget=3 * 400 * 300 * 4, policy="drop-oldest")
    for i in range(3):
        s.submit(job(b"c%d" % i, 400, 300))
    old, evicted = s.submit(job(b"new", 400, 300))
    assert old is None and [j.identity for j in evicted] == [b"c0"]
    assert s.parked == s.budget
    with pytest.raises(ProtocolError):  # larger than the whole budget: refused either way
        s.submit(job(b"huge", 1200, 1000))


def test_drop_oldest_policy_drops_the_largest_frames_first_not_a_small_clients_frame():
    # a well-behaved client's small frame parked first; two large frames after it; a third large one comes
    s = _Scheduler(budget=160 * 120 * 4 + 2 * 1280 * 720 * 4, policy="drop-oldest")
    s.submit(job(b"small", 160, 120))
    s.submit(job(b"big0", 1280, 720))
    s.submit(job(b"big1", 1280, 720))
    _, evicted = s.submit(job(b"big2", 1280, 720))
    assert [j.identity for j in evicted] == [b"big0"]  # the oldest of the largest; the small frame stays
    assert b"small" in s.pending


def test_a_small_frame_client_is_not_kept_behind_4k_frames():
    s = _Scheduler(budget=1 << 30)
    for i in range(5):
        s.submit(job(b"big%d" % i, 3840, 2160))
    order = []
    for _ in range(5):  # the small client sends a frame each time the worker takes one
        s.submit(job(b"small", 160, 120))
        taken = s.take(0)
        assert taken is not None
        order.append(taken.identity)
        s.done(taken)
    assert order == [b"small"] * 5, order
    # ...and clients with equal frames still take turns
    s2 = _Scheduler(budget=1 << 30)
    for i in range(3):
        s2.submit(job(b"e%d" % i, 320, 240))
    got = []
    for _ in range(6):
        t = s2.take(0)
        assert t is not None
        got.append(t.identity)
        s2.done(t)
        s2.submit(job(t.identity, 320, 240))
    assert got == [b"e0", b"e1", b"e2", b"e0", b"e1", b"e2"]


def test_4k_frames_still_run_once_the_small_client_pauses():
    s = _Scheduler(budget=1 << 30)
    for i in range(3):
        s.submit(job(b"big%d" % i, 3840, 2160))
    s.submit(job(b"small", 160, 120))
    got = []
    while (t := s.take(0)) is not None:
        got.append(t.identity)
        s.done(t)
    assert got == [b"small", b"big0", b"big1", b"big2"]


def test_one_big_frame_at_a_time_leaves_a_worker_for_small_frames():
    s = _Scheduler(budget=1 << 30)
    for i in range(3):
        s.submit(job(b"big%d" % i, 3840, 2160))
    first = s.take(0)
    assert first is not None and first.identity == b"big0"
    assert s.take(0) is None  # the second worker does not start another 4K frame...
    s.submit(job(b"small", 160, 120))
    second = s.take(0)
    assert second is not None and second.identity == b"small"  # ...so it is free for this one
    s.done(first)
    third = s.take(0)
    assert third is not None and third.identity == b"big1"
