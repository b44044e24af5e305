"""The codec round-trips every message type and rejects each kind of bad message with its code."""
from __future__ import annotations

import json
import math
import struct
from typing import Any

import pytest

import m2fp_protocol as proto
from m2fp_protocol import ErrorCode, Header, MsgType, PixelFormat, ProtocolError, StreamConfig
from m2fp_protocol.people import PERSON_STRUCT, TURN_STRUCT


def frame_header(**kw) -> Header:
    base: dict[str, Any] = dict(type=MsgType.FRAME, frame_id=7, timestamp_us=123456789, width=4, height=3,
                pixel_format=PixelFormat.RGBA, stride=16, generation=2, mask_width=2, mask_height=2)
    base.update(kw)
    return Header(**base)


def test_header_is_64_bytes_and_round_trips_every_field():
    h = Header(MsgType.MASK, frame_id=2**63 + 5, timestamp_us=-42, width=640, height=360,
               pixel_format=PixelFormat.GRAY8, stride=640, generation=9, flags=1, mask_width=3, mask_height=4,
               queue_ms=1.5, infer_ms=2.25, post_ms=0.125, motion_x=-1234, motion_y=32767)
    raw = proto.pack_header(h)
    assert len(raw) == proto.HEADER_SIZE == 64
    assert raw[:4] == b"M2FP"
    assert proto.unpack_header(raw) == h


def test_frame_round_trip_keeps_payload_without_copy():
    payload = bytearray(range(48))
    parts = proto.encode(frame_header(), payload)
    assert parts[1] is payload  # the codec never copies pixels
    msg = proto.decode(parts)
    assert msg.header == frame_header()
    assert bytes(msg.payload) == bytes(payload)


def test_json_messages_round_trip():
    info = {"engine": {"name": "selfie"}, "classes": [c.to_json() for c in proto.PERSON_CLASSES]}
    msg = proto.decode(proto.encode_json(Header(MsgType.INFO), info))
    assert proto.decode_json(msg) == info
    err = proto.decode(proto.error_message(ErrorCode.BAD_SIZE, "nope", frame_id=3))
    assert err.header.frame_id == 3
    assert proto.decode_json(err) == {"code": 6, "name": "BAD_SIZE", "message": "nope"}


def test_class_info_json_round_trip():
    for c in proto.CIHP_CLASSES:
        assert proto.ClassInfo.from_json(json.loads(json.dumps(c.to_json()))) == c
    assert len({c.color for c in proto.CIHP_CLASSES}) == 20  # every part has its own colour


def _raw_header(**kw) -> bytes:
    vals = dict(magic=b"M2FP", version=1, type=5, flags=0, fid=1, ts=0, w=4, h=3, fmt=1, r=0, stride=16, gen=0,
                mw=0, mh=0, q=0.0, i=0.0, p=0.0, r2=0)
    vals.update(kw)
    return struct.pack("<4sBBHQqIIHHIIHHfffI", *vals.values())


BAD = {
    "no parts": ([], ErrorCode.MALFORMED),
    "three parts": ([_raw_header(), b"", b""], ErrorCode.MALFORMED),
    "short header": ([_raw_header()[:20], bytes(48)], ErrorCode.MALFORMED),
    "bad magic": ([_raw_header(magic=b"XXXX"), bytes(48)], ErrorCode.BAD_MAGIC),
    "wrong version": ([_raw_header(version=2), bytes(48)], ErrorCode.BAD_VERSION),
    "unknown type": ([_raw_header(type=99), bytes(48)], ErrorCode.BAD_TYPE),
    "unknown pixel format": ([_raw_header(fmt=77), bytes(48)], ErrorCode.BAD_PIXEL_FORMAT),
    "gray frame": ([_raw_header(fmt=5, stride=4), bytes(12)], ErrorCode.BAD_PIXEL_FORMAT),
    "truncated pixels": ([_raw_header(), bytes(40)], ErrorCode.BAD_SIZE),
    "extra pixels": ([_raw_header(), bytes(49)], ErrorCode.BAD_SIZE),
    "zero width": ([_raw_header(w=0, stride=0), b""], ErrorCode.BAD_SIZE),
    "absurd size": ([_raw_header(w=100000, h=100000, stride=400000), bytes(16)], ErrorCode.BAD_SIZE),
    "stride too small": ([_raw_header(stride=8), bytes(48)], ErrorCode.BAD_SIZE),
    "bad mask size": ([_raw_header(mw=9000, mh=5), bytes(48)], ErrorCode.BAD_SIZE),
    "mask too large": ([_raw_header(mw=8000, mh=8000), bytes(48)], ErrorCode.BAD_SIZE),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_messages_are_rejected_with_their_code(case):
    parts, code = BAD[case]
    with pytest.raises(ProtocolError) as exc:
        proto.decode(parts)
    assert exc.value.code == code


def test_oversize_frame_is_too_large():
    w, h = 2000, 2000
    parts = [_raw_header(w=w, h=h, stride=w * 4), bytes(w * h * 4)]
    with pytest.raises(ProtocolError) as exc:
        proto.decode(parts, max_frame_bytes=1_000_000)
    assert exc.value.code == ErrorCode.TOO_LARGE


def test_padded_stride_and_unpadded_last_row_are_accepted():
    # 3 rows of 16 bytes with 4 bytes padding each; the last row may omit its padding
    for n in (20 * 3, 20 * 2 + 16):
        msg = proto.decode([_raw_header(stride=20), bytes(n)])
        assert msg.header.stride == 20


def test_config_merges_validates_and_rejects_garbage():
    cfg = StreamConfig.from_json({"keep": ["Face", 2], "threshold": 0.3})
    assert cfg.keep == ["Face", "2"] and cfg.threshold == 0.3 and cfg.smoothing == 0.5
    cfg2 = StreamConfig.from_json({"smoothing": 0}, base=cfg)
    assert cfg2.keep == ["Face", "2"] and cfg2.smoothing == 0.0
    for bad in ([], {"threshold": 2}, {"threshold": "x"}, {"soft": 1}, {"nope": 1}, {"keep": "Face"},
                {"engine_options": []}, {"smoothing": True}):
        with pytest.raises(ProtocolError) as exc:
            StreamConfig.from_json(bad)
        assert exc.value.code == ErrorCode.BAD_CONFIG


def test_mask_motion_outside_sixteen_bits_is_clamped_by_the_sender():
    h = Header(MsgType.MASK, motion_x=10**9, motion_y=-10**9)
    got = proto.unpack_header(proto.pack_header(h))
    assert (got.motion_x, got.motion_y) == (proto.MOTION_LIMIT, -proto.MOTION_LIMIT)


def test_a_late_mask_is_carried_on_by_its_motion_for_at_most_three_frames():
    s = proto.MOTION_SCALE
    mx, my = round(0.02 * s), round(-0.01 * s)  # 2 % of the width right, 1 % of the height up, per frame
    assert proto.carry_offset(10, 10, mx, my) == (0.0, 0.0)  # its own frame: where it is
    assert proto.carry_offset(9, 10, mx, my) == (0.0, 0.0)  # a mask of a later frame is not moved back
    assert proto.carry_offset(None, 10, mx, my) == (0.0, 0.0)  # frame shown not known
    assert proto.carry_offset(12, -1, mx, my) == (0.0, 0.0)  # the mask's frame not known
    dx, dy = proto.carry_offset(12, 10, mx, my)
    assert abs(dx - 0.04) < 1e-3 and abs(dy + 0.02) < 1e-3
    far = proto.carry_offset(30, 10, mx, my)  # 20 frames late: no further than MAX_CARRY_FRAMES
    assert abs(far[0] - proto.MAX_CARRY_FRAMES * 0.02) < 1e-3


def test_hostile_motion_values_never_move_a_mask_out_of_reach():
    """Every 16-bit motion a broken or hostile server can send, for every age: a bounded move, and none at all
    beyond a person's plausible speed."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=2000, deadline=None, database=None, derandomize=True)
    @given(st.integers(-2**40, 2**40), st.integers(-2**40, 2**40), st.integers(-2**31, 2**31),
           st.integers(-2**31, 2**31))
    def check(mx: int, my: int, shown: int, made_for: int) -> None:
        h = proto.unpack_header(proto.pack_header(Header(MsgType.MASK, motion_x=mx, motion_y=my)))
        assert -proto.MOTION_LIMIT <= h.motion_x <= proto.MOTION_LIMIT
        dx, dy = proto.carry_offset(shown, made_for, h.motion_x, h.motion_y)
        bound = proto.MAX_CARRY_FRAMES * proto.MAX_MOTION
        assert abs(dx) <= bound and abs(dy) <= bound
        if abs(h.motion_x) > proto.MAX_MOTION * proto.MOTION_SCALE:
            assert (dx, dy) == (0.0, 0.0)

    check()


def test_people_round_trip_and_every_hostile_field_is_refused() -> None:
    """PEOPLE (each person's box and motion, before a MASK; with turns when its header says so): a valid one
    round-trips through the codec; for hostile values of every field (box corners, motions, turns, the
    reserved field, record count, payload length, the mask size and flags in the header) ``decode`` either
    refuses it with MALFORMED/BAD_SIZE or gives boxes inside the mask, none overlapping, and moves no larger
    than a MASK header's motion can give, turned at most ``MAX_TURN`` a frame."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    good = [proto.PersonBox(10, 20, 60, 90, 300, -40), proto.PersonBox(70, 20, 120, 90, -300, 0)]
    msg = proto.decode(proto.encode(Header(MsgType.PEOPLE, frame_id=4, width=160, height=90),
                                    proto.pack_people(good)), accept=proto.CLIENT_ACCEPTS)
    assert proto.unpack_people(msg.payload, 160, 90) == tuple(good)
    with pytest.raises(ProtocolError):  # a client never sends PEOPLE
        proto.decode(proto.encode(Header(MsgType.PEOPLE, width=160, height=90), proto.pack_people(good)),
                     accept=proto.SERVER_ACCEPTS)
    turning = [proto.PersonBox(10, 20, 60, 90, 300, -40, 700)]  # one person alone, with a turn
    msg = proto.decode(proto.encode(Header(MsgType.PEOPLE, width=160, height=90, flags=proto.Flags.WANT_TURNS),
                                    proto.pack_people(turning, turns=True)), accept=proto.CLIENT_ACCEPTS)
    assert proto.unpack_people(msg.payload, 160, 90, turns=True) == tuple(turning)
    with pytest.raises(ProtocolError):  # the same records without the header's flag: not whole records
        proto.decode(proto.encode(Header(MsgType.PEOPLE, width=160, height=90), proto.pack_people(turning, turns=True)),
                     accept=proto.CLIENT_ACCEPTS)

    u16, i16 = st.integers(0, 0xFFFF), st.integers(-0x8000, 0x7FFF)
    seen = {"valid": 0}

    @st.composite
    def case(draw: Any) -> tuple[list, int, int]:
        w, h = draw(st.integers(0, 9000)), draw(st.integers(0, 9000))
        w, h = draw(st.sampled_from([(w, h), (640, 360), (1, 1)]))
        records = []
        for k in range(draw(st.integers(0, 6))):
            if draw(st.booleans()):  # any corners at all
                x0, y0, x1, y1 = (draw(u16) for _ in range(4))
            else:  # a box in its own column of the mask (valid unless the mask is too small), edges jittered
                cw = max(1, w // 6)
                a, b = sorted((draw(st.integers(k * cw, (k + 1) * cw)), draw(st.integers(k * cw, (k + 1) * cw))))
                c, d = sorted((draw(st.integers(0, h)), draw(st.integers(0, h))))
                x0, x1, y0, y1 = a, b + draw(st.integers(0, 1)), c, d + draw(st.integers(0, 1))
            turn = draw(st.one_of(i16, st.integers(-round(proto.MAX_TURN * proto.TURN_SCALE),
                                                   round(proto.MAX_TURN * proto.TURN_SCALE))))
            reserved = draw(st.one_of(st.just(0), u16))
            records.append((min(x0, 0xFFFF), min(y0, 0xFFFF), min(x1, 0xFFFF), min(y1, 0xFFFF), draw(i16), draw(i16),
                            turn, reserved))
        return records, w, h

    def check(c: tuple[list, int, int], tail: bytes, shown: int, made_for: int, flags: int) -> None:
        records, w, h = c
        turns = bool(flags & proto.Flags.WANT_TURNS)
        record = TURN_STRUCT if turns else PERSON_STRUCT
        payload = b"".join(record.pack(*r[:record.size // 2]) for r in records) + tail
        try:
            m = proto.decode(proto.encode(Header(MsgType.PEOPLE, width=w, height=h, flags=flags), payload),
                             accept=proto.CLIENT_ACCEPTS)
        except ProtocolError as exc:
            assert exc.code in (proto.ErrorCode.MALFORMED, proto.ErrorCode.BAD_SIZE)
            return
        people = proto.unpack_people(m.payload, w, h, turns=turns)
        seen["valid"] += 1
        seen["turns"] = seen.get("turns", 0) + turns
        assert 1 <= len(people) <= proto.MAX_PEOPLE and len(tail) % record.size == 0
        for i, p in enumerate(people):
            assert 0 <= p.x0 < p.x1 <= w and 0 <= p.y0 < p.y1 <= h
            assert not any(p.overlaps(q) for q in people[:i])
            assert turns or p.turn == 0
        frames = proto.MAX_CARRY_FRAMES
        for move in proto.people_offsets(people, w, h, shown, made_for):
            dx, dy = move.offset
            assert all(0.0 <= v <= 1.0 for v in move.box) and math.isfinite(dx) and math.isfinite(dy)
            # at most the frames' worth of the largest motion a MASK header may give, in pixels (a turn
            # only changes its direction)
            assert math.hypot(dx * w, dy * h) <= frames * math.hypot(proto.MAX_MOTION * w, proto.MAX_MOTION * h) + 1e-6
            assert abs(move.turn) <= frames * proto.MAX_TURN and move.aspect == w / h

    stamps = st.integers(-2**31, 2**31)
    hostile = given(case(), st.one_of(st.just(b""), st.binary(max_size=17)), stamps, stamps,
                    st.one_of(st.sampled_from([0, int(proto.Flags.WANT_TURNS)]), u16))(check)
    settings(max_examples=3000, deadline=None, database=None, derandomize=True)(hostile)()
    # Hypothesis draws from constants found in the modules already imported, so how many of the hostile
    # cases decode depends on which tests ran before; the accepting side gets its own run, whole records
    # under both headers, so that it is exercised whatever ran first
    whole = given(case(), st.just(b""), stamps, stamps, st.sampled_from([0, int(proto.Flags.WANT_TURNS)]))(check)
    settings(max_examples=300, deadline=None, database=None, derandomize=True)(whole)()
    assert seen["valid"] >= 50 and seen.get("turns", 0) >= 20, seen  # the accepting side was exercised too
