"""Encode and decode messages as ZeroMQ multipart frames: [header, payload].

The header is a fixed 64-byte little-endian struct; the payload travels as its own
ZeroMQ frame so pixels are never copied into a bigger buffer or base64-encoded
(send it with ``copy=False``).  Decoding validates everything a hostile or buggy
peer could get wrong and raises :class:`ProtocolError` with a precise code.
"""
from __future__ import annotations

import json
import struct
from typing import Any, Sequence

from .errors import ProtocolError
from .people import unpack_people
from .validation import MAX_JSON_BYTES, MAX_REQUEST_JSON_BYTES, parse_json
from .messages import (
    FRAME_FORMATS,
    MAGIC,
    MAX_DIMENSION,
    MAX_MASK_PIXELS,
    MAX_FRAME_BYTES,
    MOTION_LIMIT,
    PROTOCOL_VERSION,
    ErrorCode,
    Flags,
    Header,
    Message,
    MsgType,
    PixelFormat,
)

#: magic, version, type, flags, frame_id, timestamp_us, width, height,
#: pixel_format, reserved, stride, generation, mask_width, mask_height,
#: queue_ms, infer_ms, post_ms, motion_x, motion_y
HEADER_STRUCT = struct.Struct("<4sBBHQqIIHHIIHHfffhh")
HEADER_SIZE = HEADER_STRUCT.size  # 64

_JSON_TYPES = frozenset({MsgType.HELLO, MsgType.INFO, MsgType.CONFIG, MsgType.CONFIG_ACK, MsgType.ERROR})
#: Requests (HELLO, CONFIG) are small; everything else a client may receive is capped at 1 MiB.
_REQUEST_TYPES = frozenset({MsgType.HELLO, MsgType.CONFIG})


def pack_header(h: Header) -> bytes:
    return HEADER_STRUCT.pack(
        MAGIC,
        h.version,
        int(h.type),
        int(h.flags),
        h.frame_id & 0xFFFFFFFFFFFFFFFF,
        h.timestamp_us,
        h.width,
        h.height,
        int(h.pixel_format),
        0,
        h.stride,
        h.generation & 0xFFFFFFFF,
        h.mask_width,
        h.mask_height,
        h.queue_ms,
        h.infer_ms,
        h.post_ms,
        max(-MOTION_LIMIT, min(MOTION_LIMIT, int(h.motion_x))),
        max(-MOTION_LIMIT, min(MOTION_LIMIT, int(h.motion_y))),
    )


def unpack_header(buf: bytes | memoryview) -> Header:
    """Parse and check the header alone (magic, version, type)."""
    if len(buf) != HEADER_SIZE:
        raise ProtocolError(ErrorCode.MALFORMED, f"header is {len(buf)} bytes, expected {HEADER_SIZE}")
    (magic, version, mtype, flags, frame_id, ts, w, h, fmt, _r, stride, gen, mw, mh, q, i, p, mx, my) = (
        HEADER_STRUCT.unpack(buf)
    )
    if magic != MAGIC:
        raise ProtocolError(ErrorCode.BAD_MAGIC, f"bad magic {magic!r}, expected {MAGIC!r}")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            ErrorCode.BAD_VERSION,
            f"protocol version {version} is not supported (this side speaks {PROTOCOL_VERSION})",
        )
    try:
        mtype = MsgType(mtype)
    except ValueError:
        raise ProtocolError(ErrorCode.BAD_TYPE, f"unknown message type {mtype}") from None
    return Header(
        type=mtype,
        frame_id=frame_id,
        timestamp_us=ts,
        width=w,
        height=h,
        pixel_format=fmt,
        stride=stride,
        generation=gen,
        flags=flags,
        mask_width=mw,
        mask_height=mh,
        queue_ms=q,
        infer_ms=i,
        post_ms=p,
        motion_x=mx,
        motion_y=my,
        version=version,
    )


def encode(header: Header, payload: bytes | memoryview | Any = b"") -> list[Any]:
    """Return the multipart frames for one message (payload left as given, no copy)."""
    return [pack_header(header), payload]


def encode_json(header: Header, obj: Any) -> list[Any]:
    return encode(header, json.dumps(obj, separators=(",", ":")).encode("utf-8"))


def error_message(code: ErrorCode, text: str, frame_id: int = 0, timestamp_us: int = 0) -> list[Any]:
    body = {"code": int(code), "name": ErrorCode(code).name, "message": text}
    return encode_json(Header(MsgType.ERROR, frame_id=frame_id, timestamp_us=timestamp_us), body)


#: What each side may receive.
SERVER_ACCEPTS = frozenset({MsgType.HELLO, MsgType.CONFIG, MsgType.FRAME})
CLIENT_ACCEPTS = frozenset(MsgType) - SERVER_ACCEPTS


def decode(parts: Sequence[bytes | memoryview | Any], max_frame_bytes: int = MAX_FRAME_BYTES,
           accept: frozenset[MsgType] | None = None) -> Message:
    """Decode and validate a multipart message.

    ``parts`` may hold bytes, memoryviews or pyzmq ``Frame`` objects (their
    ``.buffer`` is used, so pixels are not copied).  ``accept`` limits the types
    this side takes (:data:`SERVER_ACCEPTS` / :data:`CLIENT_ACCEPTS`).
    """
    bufs = [_as_buffer(p) for p in parts]
    if len(bufs) not in (1, 2):
        raise ProtocolError(ErrorCode.MALFORMED, f"expected 1 or 2 message parts, got {len(bufs)}")
    header = unpack_header(bufs[0])
    payload = bufs[1] if len(bufs) == 2 else memoryview(b"")
    t = header.type
    if accept is not None and t not in accept:
        raise ProtocolError(ErrorCode.BAD_TYPE, f"{t.name} messages are not accepted on this side")
    limit = MAX_REQUEST_JSON_BYTES if t in _REQUEST_TYPES else MAX_JSON_BYTES
    if t in _JSON_TYPES and len(payload) > limit:  # before any copy or parse
        raise ProtocolError(ErrorCode.TOO_LARGE, f"{t.name} payload of {len(payload)} bytes is larger than "
                                                 f"the {limit}-byte limit")
    if t == MsgType.FRAME:
        _check_image(header, payload, FRAME_FORMATS, max_frame_bytes)
        _check_dims(header.mask_width, header.mask_height, allow_zero=True, what="mask size")
        if header.mask_width * header.mask_height > MAX_MASK_PIXELS:
            raise ProtocolError(ErrorCode.BAD_SIZE, f"mask size {header.mask_width}x{header.mask_height} is larger "
                                f"than {MAX_MASK_PIXELS} pixels (3840x2160)")
    elif t in (MsgType.MASK, MsgType.PARSING):
        _check_image(header, payload, frozenset({PixelFormat.GRAY8}), max_frame_bytes)
    elif t == MsgType.PEOPLE:
        _check_dims(header.width, header.height, allow_zero=False, what="mask size")
        unpack_people(payload, header.width, header.height, turns=bool(header.flags & Flags.WANT_TURNS))
    return Message(header, payload)


def decode_json(msg: Message) -> Any:
    """Parse a JSON payload with size, depth and number limits; an empty payload is an empty object."""
    code = ErrorCode.BAD_CONFIG if msg.header.type == MsgType.CONFIG else ErrorCode.MALFORMED
    limit = MAX_REQUEST_JSON_BYTES if msg.header.type in _REQUEST_TYPES else MAX_JSON_BYTES
    return parse_json(msg.payload, msg.header.type.name, code, limit)


def _as_buffer(part: Any) -> memoryview:
    if isinstance(part, memoryview):
        return part
    if isinstance(part, (bytes, bytearray)):
        return memoryview(part)
    buf = getattr(part, "buffer", None)  # zmq.Frame
    if buf is not None:
        return memoryview(buf)
    raise ProtocolError(ErrorCode.MALFORMED, f"cannot read a message part of type {type(part).__name__}")


def _check_dims(w: int, h: int, *, allow_zero: bool, what: str) -> None:
    if allow_zero and w == 0 and h == 0:
        return
    if not (1 <= w <= MAX_DIMENSION and 1 <= h <= MAX_DIMENSION):
        raise ProtocolError(ErrorCode.BAD_SIZE, f"{what} {w}x{h} is outside 1..{MAX_DIMENSION}")


def _check_image(h: Header, payload: memoryview, formats: frozenset, max_bytes: int) -> None:
    try:
        fmt = PixelFormat(h.pixel_format)
    except ValueError:
        raise ProtocolError(ErrorCode.BAD_PIXEL_FORMAT, f"unknown pixel format {h.pixel_format}") from None
    if fmt not in formats:
        names = ", ".join(sorted(f.name for f in formats))
        raise ProtocolError(ErrorCode.BAD_PIXEL_FORMAT, f"pixel format {fmt.name} not allowed here ({names})")
    _check_dims(h.width, h.height, allow_zero=False, what="image size")
    row = h.width * fmt.bytes_per_pixel
    stride = h.stride or row
    if stride < row or stride > row + 4096:
        raise ProtocolError(ErrorCode.BAD_SIZE, f"row stride {stride} does not fit width {h.width} ({row} bytes)")
    need = stride * (h.height - 1) + row
    if need > max_bytes:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"{h.width}x{h.height} image needs {need} bytes, limit {max_bytes}")
    if len(payload) < need or len(payload) > stride * h.height:
        raise ProtocolError(
            ErrorCode.BAD_SIZE,
            f"payload is {len(payload)} bytes, a {h.width}x{h.height} {fmt.name} image with stride {stride} "
            f"needs {need}..{stride * h.height}",
        )
