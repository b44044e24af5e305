"""A numpy-friendly DEALER client for the CLI, benchmarks and tests.

The OBS script has its own stdlib-only client (``obs_plugin``); this one may use
numpy.  It never uses REQ: frames go out without waiting for replies, and replies
are matched by frame id, so a caller can stream at a fixed rate (``m2fp replay``).
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any, Iterator

import m2fp_protocol as proto
import numpy as np
import zmq
from m2fp_protocol import ErrorCode, Flags, Header, MsgType, PixelFormat, ProtocolError

from .errors import BadInput, M2fpError


class ServerError(M2fpError, RuntimeError):
    """The server answered with an ERROR message."""

    def __init__(self, code: int, name: str, message: str, frame_id: int = 0) -> None:
        super().__init__(f"{name}: {message}")
        self.code, self.name, self.message, self.frame_id = code, name, message, frame_id


class ServerTimeout(M2fpError, TimeoutError):
    pass


class FrameDropped(M2fpError):
    """The server answered a frame with DROPPED instead of a mask."""


@dataclass
class Reply:
    header: Header
    array: np.ndarray | None = None  # MASK / PARSING
    json: Any = None  # INFO / CONFIG_ACK / ERROR
    people: tuple[proto.PersonBox, ...] = ()  # PEOPLE

    @property
    def type(self) -> MsgType:
        return self.header.type


def now_us() -> int:
    return time.monotonic_ns() // 1000


class MaskClient:
    def __init__(self, address: str, context: zmq.Context | None = None, timeout_s: float = 10.0,
                 curve: dict[str, bytes] | None = None) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self.ctx = context or zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, 64)
        self.sock.setsockopt(zmq.RCVHWM, 1000)
        # a server at its connection limit refuses the handshake; retry, but back off up to 2 s
        self.sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        if curve:
            self.sock.curve_serverkey = curve["server_public"]
            self.sock.curve_publickey = curve["public"]
            self.sock.curve_secretkey = curve["secret"]
        self.sock.connect(address)
        self._ids = itertools.count(1)
        self.info: dict[str, Any] | None = None

    def close(self) -> None:
        self.sock.close(0)

    def __enter__(self) -> "MaskClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ sending
    def send_frame(self, image: np.ndarray, frame_id: int | None = None, *,
                   mask_size: tuple[int, int] | None = None, want_parsing: bool = False,
                   pixel_format: PixelFormat | None = None, timestamp_us: int | None = None,
                   want_people: bool = False, want_turns: bool = False) -> int:
        """Send one frame without waiting; returns its id.  Raises zmq.Again if the pipe is full.
        ``want_turns``: PEOPLE with each person's turn (with ``want_people``)."""
        if image.ndim != 3 or image.dtype != np.uint8:
            raise BadInput("image must be HxWxC uint8")
        h, w, c = image.shape
        fmt = pixel_format or (PixelFormat.RGBA if c == 4 else PixelFormat.RGB)
        image = np.ascontiguousarray(image)
        limit = (self.info or {}).get("max_frame_bytes")
        if isinstance(limit, int) and image.nbytes > limit:  # the server would drop the connection
            raise BadInput(f"a {w}x{h} frame is {image.nbytes} bytes, over the server's limit of {limit} "
                           "(m2fp-server --max-frame-bytes)")
        fid = next(self._ids) if frame_id is None else frame_id
        mw, mh = mask_size or (0, 0)
        flags = ((Flags.WANT_PARSING if want_parsing else 0) | (Flags.WANT_PEOPLE if want_people else 0)
                 | (Flags.WANT_TURNS if want_turns else 0))
        header = Header(MsgType.FRAME, frame_id=fid, timestamp_us=timestamp_us or now_us(), width=w, height=h,
                        pixel_format=fmt, stride=w * c, flags=flags, mask_width=mw, mask_height=mh)
        self.sock.send_multipart(proto.encode(header, image), zmq.NOBLOCK, copy=False)
        return fid

    def send_raw(self, parts: list[bytes]) -> None:
        self.sock.send_multipart(parts)

    # ------------------------------------------------------------------ receiving
    def recv(self, timeout_s: float | None = None) -> Reply | None:
        """The next reply, or None after ``timeout_s`` (0 = poll)."""
        t = self.timeout_s if timeout_s is None else timeout_s
        if not self.sock.poll(int(t * 1000)):
            return None
        parts = self.sock.recv_multipart(copy=False)
        msg = proto.decode(parts, accept=proto.CLIENT_ACCEPTS)
        h = msg.header
        if h.type in (MsgType.MASK, MsgType.PARSING):
            arr = np.frombuffer(msg.payload, np.uint8).reshape(h.height, h.stride or h.width)[:, : h.width]
            return Reply(h, array=arr.copy())
        if h.type in (MsgType.INFO, MsgType.CONFIG_ACK, MsgType.ERROR):
            return Reply(h, json=proto.decode_json(msg))
        if h.type == MsgType.PEOPLE:
            return Reply(h, people=proto.unpack_people(msg.payload, h.width, h.height,
                                                       turns=bool(h.flags & Flags.WANT_TURNS)))
        return Reply(h)

    def replies_until(self, deadline: float) -> Iterator[Reply]:
        """Every reply that arrives before ``deadline`` (``time.perf_counter()``), as it arrives.

        For clients that stream at a fixed rate: they wait for the next tick here and still
        see each reply the moment it comes (so latencies are exact, not rounded to ticks).
        """
        while True:
            r = self.recv(max(0.0, deadline - time.perf_counter()))
            if r is not None:
                yield r
            elif time.perf_counter() >= deadline:
                return

    def wait_for(self, types: set[MsgType], frame_id: int | None = None,
                 timeout_s: float | None = None) -> Reply:
        """Wait for a reply of one of ``types`` (for ``frame_id`` if given); ERRORs raise."""
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ServerTimeout(f"no reply from {self.address} within {self.timeout_s:.1f} s")
            r = self.recv(left)
            if r is None:
                continue
            if r.type == MsgType.ERROR and (frame_id is None or r.header.frame_id in (0, frame_id)):
                j = r.json or {}
                raise ServerError(j.get("code", 0), j.get("name", "ERROR"), j.get("message", ""), r.header.frame_id)
            if r.type in types and (frame_id is None or r.header.frame_id == frame_id):
                return r

    # ------------------------------------------------------------------ requests
    def hello(self, name: str = "m2fp-cli") -> dict[str, Any]:
        self.sock.send_multipart(proto.encode_json(Header(MsgType.HELLO, timestamp_us=now_us()), {"client": name}))
        self.info = self.wait_for({MsgType.INFO}).json
        return self.info

    def configure(self, **settings: Any) -> dict[str, Any]:
        self.sock.send_multipart(proto.encode_json(Header(MsgType.CONFIG), settings))
        return self.wait_for({MsgType.CONFIG_ACK}).json

    def mask(self, image: np.ndarray, *, mask_size: tuple[int, int] | None = None,
             want_parsing: bool = False) -> tuple[Reply, Reply | None]:
        """Send one frame and wait for its MASK (and PARSING when asked)."""
        fid = self.send_frame(image, mask_size=mask_size, want_parsing=want_parsing)
        m = self.wait_for({MsgType.MASK, MsgType.DROPPED}, fid)
        if m.type == MsgType.DROPPED:  # the server answered without a mask: say so now, not at the timeout
            raise FrameDropped(f"the server dropped frame {fid} (a newer frame, or its frame memory budget)")
        p = self.wait_for({MsgType.PARSING}, fid) if want_parsing else None
        return m, p


__all__ = ["FrameDropped", "MaskClient", "Reply", "ServerError", "ServerTimeout", "ErrorCode", "ProtocolError"]
