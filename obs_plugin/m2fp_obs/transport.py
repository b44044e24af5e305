"""The filter's connection to m2fp-server: a DEALER that never blocks the caller.

OBS calls this from its graphics thread, once per frame, so every call here is
non-blocking (``NOBLOCK`` sends, ``poll(0)``) and bounded: a frame is sent only
while fewer than ``max_inflight`` are unanswered (one being processed, one
waiting; the server keeps the newest waiting frame and answers DROPPED for the
one it replaced), otherwise it is dropped here.

Faults, Lazy-Pirate style (the ZeroMQ guide's ``lpclient``):

* a dropped connection (server killed) is seen at once through the socket
  monitor: the state turns ``away`` and in-flight frames are forgotten; libzmq
  retries the connection every 100 ms, and each (re)connection starts again
  with HELLO → INFO → CONFIG → CONFIG_ACK;
* a silent server (stopped, hung) is seen by pings: while a frame or a request
  is outstanding and nothing has been heard for ``ping_s``, a HELLO goes out (the
  server's I/O thread answers at once even while its engine is busy).  Silence for
  ``stall_s`` means away; silence for ``reset_s`` closes the socket with
  ``LINGER 0`` and opens a fresh one, dropping whatever was queued for the dead peer.

Replies are parsed with :func:`m2fp_protocol.decode`; anything it rejects is
counted and reported in the status, never raised to OBS.

stdlib + pyzmq only (OBS's Python has no numpy), Python 3.8+.
"""
from __future__ import annotations

import collections
import enum
import itertools
import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

import zmq

import m2fp_protocol as proto
from m2fp_protocol import (
    DEFAULT_ADDRESS,
    DEFAULT_INPUT_BOX,
    MAX_INFLIGHT,
    Flags,
    Header,
    MsgType,
    PixelFormat,
    ProtocolError,
    may_send,
)
from m2fp_protocol import fit_inside as fit_inside  # the shared rule; re-exported for the filter

#: largest reply accepted from a server (a 8192x8192 mask is 64 MiB); libzmq drops bigger ones
MAX_REPLY_BYTES = 64 * 1024 * 1024 + 4096


class State(enum.Enum):
    CONNECTING = "connecting"  # no connection to the server (never had one, or it dropped)
    HANDSHAKE = "handshake"  # connected, waiting for INFO / CONFIG_ACK
    READY = "ready"  # frames may be sent
    CLOSED = "closed"


@dataclass
class TransportSettings:
    address: str = DEFAULT_ADDRESS
    max_inflight: int = MAX_INFLIGHT
    frame_lost_s: float = 1.0  # a frame unanswered this long no longer counts as in flight
    ping_s: float = 0.1  # silence (while waiting for something) after which a HELLO ping goes out
    stall_s: float = 0.5  # silence after which the server counts as away
    reset_s: float = 1.5  # silence after which the socket is closed (LINGER 0) and reopened
    hello_retry_s: float = 0.1
    #: libzmq never redials after a refused handshake (the server's connection limit, or a CURVE key it
    #: does not know); the transport opens a fresh socket this long after a refusal
    refused_retry_s: float = 2.0
    want_parsing: bool = False
    client_name: str = "obs"
    curve_server_key: str = ""  # Z85 text (40 chars); all three set → CURVE
    curve_public_key: str = ""
    curve_secret_key: str = ""

    def curve_keys(self) -> Optional[Tuple[bytes, bytes, bytes]]:
        keys = (self.curve_server_key.strip(), self.curve_public_key.strip(), self.curve_secret_key.strip())
        if not any(keys):
            return None
        if not all(keys):
            raise ValueError("CURVE needs all three keys: server public, client public and client secret")
        for k in keys:
            if len(k) != 40:
                raise ValueError("a CURVE key is 40 characters of Z85 text (see `m2fp keys`)")
        return keys[0].encode("ascii"), keys[1].encode("ascii"), keys[2].encode("ascii")


@dataclass
class MaskFrame:
    """One reply image (MASK alpha or PARSING class ids), tightly packed rows."""

    frame_id: int
    width: int
    height: int
    data: bytes
    generation: int
    received: float  # monotonic seconds
    latency_ms: float  # send → receive, NaN if the frame was no longer tracked
    #: the people's motion per frame (MASK header, ``m2fp_protocol.carry_offset``); (0, 0) for PARSING
    motion: Tuple[int, int] = (0, 0)
    #: each person's box and motion when they move differently (the PEOPLE message before the MASK)
    people: Tuple[proto.PersonBox, ...] = ()


@dataclass
class Status:
    state: State
    server_alive: bool
    away_since: Optional[float]
    engine: str
    mask_rate: float  # masks per second over the last 2 s
    latency_ms: float  # median round trip of the last masks
    last_error: str
    sent: int
    masks: int
    dropped_here: int  # frames not sent because max_inflight were unanswered
    dropped_by_server: int
    lost: int  # frames never answered (connection dropped, timeout)
    bad_replies: int
    reconnects: int

    def line(self) -> str:
        """The one-line status shown in the filter's properties."""
        if self.state is State.READY and self.server_alive:
            s = f"connected · {self.engine} · {self.mask_rate:.1f} masks/s"
            if self.latency_ms == self.latency_ms:  # not NaN
                s += f" · {self.latency_ms:.0f} ms"
        elif self.state is State.HANDSHAKE and self.server_alive:
            s = "connected, handshaking"
        elif self.state is State.CLOSED:
            s = "stopped"
        else:
            s = "server not reachable" if self.away_since is not None else "connecting"
        if self.last_error:
            s += f" · last error: {self.last_error}"
        return s


class ReplyError(Exception):
    """A reply that cannot be used (wraps ProtocolError and bad JSON)."""


def parse_reply(parts: List[Any]) -> Tuple[Header, Any]:
    """Decode one reply: (header, payload) where payload is bytes (images) or JSON (objects).

    Raises :class:`ReplyError` for anything malformed, including a request type a
    server must never send.
    """
    try:
        msg = proto.decode(parts, max_frame_bytes=MAX_REPLY_BYTES, accept=proto.CLIENT_ACCEPTS)
    except ProtocolError as exc:
        raise ReplyError(str(exc)) from exc
    h = msg.header
    if h.type in (MsgType.MASK, MsgType.PARSING):
        w, stride = h.width, h.stride or h.width
        buf = bytes(msg.payload)
        if stride != w:  # repack rows so the texture upload can use width as the row pitch
            buf = b"".join(buf[y * stride: y * stride + w] for y in range(h.height))
        return h, buf
    if h.type in (MsgType.INFO, MsgType.CONFIG_ACK, MsgType.ERROR):
        try:
            obj = proto.decode_json(msg)
        except ProtocolError as exc:
            raise ReplyError(str(exc)) from exc
        if not isinstance(obj, dict):
            raise ReplyError(f"{h.type.name} payload is not a JSON object")
        return h, obj
    if h.type == MsgType.DROPPED:
        return h, None
    if h.type == MsgType.PEOPLE:  # checked by decode: boxes inside the mask, not overlapping, motions in range
        return h, proto.unpack_people(msg.payload, h.width, h.height, turns=bool(h.flags & Flags.WANT_TURNS))
    raise ReplyError(f"a server does not send {h.type.name} messages")


class MaskTransport:
    """One filter's DEALER.  Call :meth:`poll` once per frame, then :meth:`can_send` / :meth:`send_frame`."""

    def __init__(self, settings: TransportSettings, config: Optional[Dict[str, Any]] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.ctx = zmq.Context()
        self.sock: Optional[zmq.Socket] = None
        self.monitor: Optional[zmq.Socket] = None
        self.state = State.CONNECTING
        self.info: Optional[Dict[str, Any]] = None
        self.config: Dict[str, Any] = dict(config or {})
        self.acked_config: Optional[Dict[str, Any]] = None  # the settings the server says it runs with
        self.generation = 0  # acknowledged generation of our config on this connection
        self._config_id = 0  # frame_id of the CONFIG waiting for its ACK (0 = none)
        self._ids = itertools.count(1)
        self._inflight: Dict[int, float] = {}
        self._connected = False  # libzmq reports a live connection
        self._last_heard = 0.0
        self._last_ping = 0.0
        self._last_hello = 0.0
        self.away_since: Optional[float] = None
        self.opened_at = 0.0
        self._mask: Optional[MaskFrame] = None
        self._parsing: Optional[MaskFrame] = None
        self._newest_mask_id = 0
        self._people: Tuple[int, Tuple[proto.PersonBox, ...]] = (0, ())  # frame id, its PEOPLE (before its MASK)
        self._mask_times: Deque[float] = collections.deque(maxlen=64)
        self._latencies: Deque[float] = collections.deque(maxlen=15)
        self.last_error = ""
        self.counts: Dict[str, int] = collections.Counter()
        self.events: Deque[Tuple[float, str]] = collections.deque(maxlen=200)  # (time, what) for tests/logs
        self._open()

    # ------------------------------------------------------------------ socket lifecycle
    def _open(self) -> None:
        s = self.settings
        sock = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.IMMEDIATE, 1)  # refuse to queue frames while no connection is up
        sock.setsockopt(zmq.SNDHWM, 4)
        sock.setsockopt(zmq.RCVHWM, 64)
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_REPLY_BYTES)
        keys = s.curve_keys()
        if keys is not None:
            sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = keys
        self.monitor = sock.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED
                                               | zmq.EVENT_HANDSHAKE_SUCCEEDED
                                               | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                                               | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                                               | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
        sock.connect(s.address)
        self.sock = sock
        self.opened_at = self._last_heard = self.clock()
        self._connected = False
        self._config_id = 0
        self.info = None
        self._fresh = True  # no mask yet on this connection
        self._refused_at: Optional[float] = None
        self._set_state(State.CONNECTING)

    def _close_socket(self) -> None:
        if self.sock is not None:
            try:
                self.sock.disable_monitor()
            except zmq.ZMQError:
                pass
            self.sock.close(0)
            self.sock = None
        if self.monitor is not None:
            self.monitor.close(0)
            self.monitor = None

    def reset(self, why: str) -> None:
        """Lazy Pirate: drop the socket and everything queued on it, connect afresh."""
        self._event(f"reset: {why}")
        self.counts["reconnects"] += 1
        self._lose_inflight()
        self._close_socket()
        self._open()

    def close(self) -> None:
        self._close_socket()
        self.ctx.term()
        self._set_state(State.CLOSED)

    # ------------------------------------------------------------------ per frame
    def poll(self) -> None:
        """Handle everything that has arrived and every timeout that has passed; never waits."""
        if self.state is State.CLOSED or self.sock is None:
            return
        now = self.clock()
        self._drain_monitor(now)
        self._drain_replies(now)
        self._check_timeouts(now)
        self._advance_handshake(now)

    def can_send(self) -> bool:
        if self.state is not State.READY:
            return False
        now = self.clock()
        self._expire_frames(now)
        return may_send(len(self._inflight), self.settings.max_inflight)

    def send_size(self, source_size: Tuple[int, int]) -> Optional[Tuple[int, int]]:
        """Size to scale the source to before sending (INFO's preferred_input as a box)."""
        if not self.info:
            return None
        box = self.info.get("preferred_input") or DEFAULT_INPUT_BOX
        return fit_inside(source_size, (int(box[0]), int(box[1])))

    def send_frame(self, pixels: Any, width: int, height: int, stride: int = 0,
                   pixel_format: PixelFormat = PixelFormat.RGBA, captured: Optional[float] = None) -> Optional[int]:
        """Send one frame (mask asked at the same size); returns its id, or None if it was dropped.

        ``captured``: the frame's own time in seconds (OBS's video frame time), stamped on the FRAME: the
        server counts the frames between two it runs from these stamps (the motion it sends with each mask
        is per frame), and the moment of sending varies with the render's length.  Default: now."""
        if not self.can_send() or self.sock is None:
            self.counts["dropped_here"] += 1
            return None
        fid = next(self._ids)
        now = self.clock()
        stamp = now if captured is None else captured
        header = Header(MsgType.FRAME, frame_id=fid, timestamp_us=int(stamp * 1e6), width=width, height=height,
                        pixel_format=pixel_format, stride=stride,
                        flags=(Flags.WANT_PARSING if self.settings.want_parsing else 0) | Flags.WANT_PEOPLE
                        | Flags.WANT_TURNS,
                        mask_width=width, mask_height=height, generation=self.generation)
        try:
            self.sock.send_multipart(proto.encode(header, pixels), zmq.NOBLOCK, copy=False)
        except zmq.Again:
            self.counts["dropped_here"] += 1
            return None
        self._inflight[fid] = now
        self.counts["sent"] += 1
        return fid

    def configure(self, config: Dict[str, Any]) -> None:
        """Replace the settings sent to the server; sent now if connected, else after the handshake."""
        self.config = dict(config)
        if self.state is State.READY:
            self._send_config(self.clock())

    def set_want_parsing(self, on: bool) -> None:
        self.settings.want_parsing = on

    def take_mask(self) -> Optional[MaskFrame]:
        """The newest mask not taken yet (older unread ones are skipped)."""
        m, self._mask = self._mask, None
        return m

    def take_parsing(self) -> Optional[MaskFrame]:
        p, self._parsing = self._parsing, None
        return p

    @property
    def server_alive(self) -> bool:
        return self.away_since is None and self._connected

    def status(self) -> Status:
        now = self.clock()
        recent = [t for t in self._mask_times if now - t <= 2.0]
        rate = len(recent) / 2.0 if recent else 0.0
        lat = sorted(self._latencies)
        engine = ""
        if self.info:
            eng = self.info.get("engine")
            engine = str(eng.get("name", "")) if isinstance(eng, dict) else ""
        c = self.counts
        return Status(self.state, self.server_alive, self.away_since, engine, rate,
                      lat[len(lat) // 2] if lat else float("nan"), self.last_error, c["sent"], c["masks"],
                      c["dropped_here"], c["dropped_by_server"], c["lost"], c["bad_replies"], c["reconnects"])

    # ------------------------------------------------------------------ internals
    def _event(self, what: str) -> None:
        self.events.append((self.clock(), what))

    def _set_state(self, state: State) -> None:
        if state is not self.state:
            self.state = state
            self._event(f"state {state.value}")

    def _set_away(self, now: float, why: str) -> None:
        if self.away_since is None:
            self.away_since = now
            self._event(f"away: {why}")

    def _set_alive(self) -> None:
        if self.away_since is not None:
            self.away_since = None
            self._event("alive")

    def _lose_inflight(self) -> None:
        self.counts["lost"] += len(self._inflight)
        self._inflight.clear()

    def _drain_monitor(self, now: float) -> None:
        assert self.monitor is not None
        while True:
            try:
                parts = self.monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                event = int.from_bytes(parts[0][:2], "little")
            except (IndexError, TypeError):
                continue
            if event == zmq.EVENT_CONNECTED:
                self._connected = True
                self._last_heard = now
                self._set_state(State.HANDSHAKE)
                self._event("connected")
            elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._event("handshake succeeded")
            elif event == zmq.EVENT_DISCONNECTED:
                self._connected = False
                self._lose_inflight()
                self._set_away(now, "connection dropped")
                self._set_state(State.CONNECTING)
                self.info = None
                self._config_id = 0
                self._fresh = True
            elif event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                self._refused_at = now
                self.last_error = ("the server refused the connection (its connection limit is reached, "
                                   "or it does not know this client's CURVE key); retrying")
                self._set_away(now, "refused at the handshake")
            elif event in (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL):
                self._refused_at = now
                self.last_error = "security handshake failed (check the CURVE keys)"
                self._set_away(now, "handshake failed")

    def _drain_replies(self, now: float) -> None:
        assert self.sock is not None
        for _ in range(256):  # bounded: a flood of replies cannot hold the frame
            try:
                parts = self.sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self._last_heard = now
            try:
                header, payload = parse_reply(parts)
            except ReplyError as exc:
                self.counts["bad_replies"] += 1
                self.last_error = f"bad reply: {exc}"
                continue
            if self._connected:
                self._set_alive()
            self._on_reply(now, header, payload)

    def _on_reply(self, now: float, h: Header, payload: Any) -> None:
        t = h.type
        if t == MsgType.INFO:
            first = self.info is None
            self.info = payload
            if first or self.state is State.HANDSHAKE:
                self._event("info")
        elif t == MsgType.CONFIG_ACK:
            if h.frame_id == self._config_id:
                self._config_id = 0
                self.generation = int(payload.get("generation", h.generation))
                cfg = payload.get("config")
                self.acked_config = cfg if isinstance(cfg, dict) else None
                self._set_state(State.READY)
        elif t == MsgType.MASK:
            sent = self._inflight.pop(h.frame_id, None)
            if h.generation < self.generation or h.frame_id < self._newest_mask_id:
                self.counts["stale_masks"] += 1  # made with old settings, or overtaken
                return
            lat = (now - sent) * 1000.0 if sent is not None else float("nan")
            if sent is not None:
                self._latencies.append(lat)
            self._newest_mask_id = h.frame_id
            if self._fresh:
                self._fresh = False
                self._event("first mask")
            people = self._people[1] if self._people[0] == h.frame_id else ()
            self._mask = MaskFrame(h.frame_id, h.width, h.height, payload, h.generation, now, lat,
                                   (h.motion_x, h.motion_y), people)
            self._mask_times.append(now)
            self.counts["masks"] += 1
        elif t == MsgType.PEOPLE:
            self._people = (h.frame_id, payload)
        elif t == MsgType.PARSING:
            if h.frame_id == self._newest_mask_id:
                self._parsing = MaskFrame(h.frame_id, h.width, h.height, payload, h.generation, now, float("nan"))
        elif t == MsgType.DROPPED:
            if self._inflight.pop(h.frame_id, None) is not None:
                self.counts["dropped_by_server"] += 1
        elif t == MsgType.ERROR:
            self._inflight.pop(h.frame_id, None)
            self.counts["errors"] += 1
            self.last_error = f"{payload.get('name', 'ERROR')}: {payload.get('message', '')}"
            if h.frame_id and h.frame_id == self._config_id:  # settings refused: run with the server's
                self._config_id = 0
                self._set_state(State.READY)

    def _expire_frames(self, now: float) -> None:
        lost = [fid for fid, t in self._inflight.items() if now - t > self.settings.frame_lost_s]
        for fid in lost:
            del self._inflight[fid]
            self.counts["lost"] += 1

    def _waiting(self) -> bool:
        return bool(self._inflight) or self._config_id != 0 or self.state is State.HANDSHAKE

    def _check_timeouts(self, now: float) -> None:
        if not self._connected:
            if self._refused_at is not None and now - self._refused_at > self.settings.refused_retry_s:
                self.reset("refused at the handshake")
                return
            # never connected (server absent at start): away after stall_s; libzmq keeps retrying
            if now - self.opened_at > self.settings.stall_s:
                self._set_away(now, "no connection")
            return
        if not self._waiting():
            self._last_heard = max(self._last_heard, now - self.settings.ping_s)  # idle is not silence
            return
        silent = now - self._last_heard
        if silent > self.settings.reset_s:
            self.reset(f"no reply for {silent:.2f} s")
            self._set_away(now, "server silent")
            return
        if silent > self.settings.stall_s:
            self._set_away(now, "server silent")
        if silent > self.settings.ping_s and now - self._last_ping > self.settings.ping_s:
            self._last_ping = now
            self._send_hello(now)

    def _advance_handshake(self, now: float) -> None:
        if self.state is not State.HANDSHAKE:
            return
        if self.info is None:
            if now - self._last_hello > self.settings.hello_retry_s:
                self._send_hello(now)
        elif not self._config_id:
            self._send_config(now)

    def _send_hello(self, now: float) -> None:
        assert self.sock is not None
        self._last_hello = now
        body = json.dumps({"client": self.settings.client_name}).encode()
        try:
            self.sock.send_multipart(proto.encode(Header(MsgType.HELLO, timestamp_us=int(now * 1e6)), body),
                                     zmq.NOBLOCK)
        except zmq.Again:
            pass  # handshake not finished yet; retried on a later frame

    def _send_config(self, now: float) -> None:
        assert self.sock is not None
        cid = next(self._ids)
        body = json.dumps(self.config, separators=(",", ":")).encode()
        try:
            self.sock.send_multipart(proto.encode(Header(MsgType.CONFIG, frame_id=cid), body), zmq.NOBLOCK)
        except zmq.Again:
            return
        self._config_id = cid
        if self.state is State.READY:
            self._set_state(State.HANDSHAKE)  # new settings: wait for their generation
