"""The ZeroMQ ROUTER server: decode → schedule → pipeline → encode.

Two threads, one socket owner:

* the **I/O thread** owns the ROUTER socket.  It answers HELLO/CONFIG at once,
  turns every bad message into an ERROR reply, and hands FRAMEs to the scheduler;
* the **worker thread** takes frames from the scheduler (round-robin over
  clients, newest frame per client), runs the pipeline, and queues the replies for
  the I/O thread (ZeroMQ sockets are not thread-safe, so only one thread sends).

So a slow engine never delays an ERROR, a HELLO, or the dropping of stale frames.
"""
from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq

import m2fp_protocol as proto
from m2fp_protocol import ErrorCode, Header, MsgType, PixelFormat, ProtocolError, StreamConfig

from . import __version__
from .engines.base import Engine
from .frames import to_rgb
from .pipeline import Pipeline
from .security import Authenticator, CurveKeys, check_exposure
from .streams import StreamState, StreamTable

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"


@dataclass
class ServerSettings:
    address: str = DEFAULT_ADDRESS
    max_frame_bytes: int = proto.MAX_FRAME_BYTES
    idle_s: float = 60.0  # forget a client's state after this long without messages
    curve_keys_dir: Path | None = None  # CURVE + authorised clients (see security); required off loopback

    @property
    def hard_limit(self) -> int:
        """ZMQ_MAXMSGSIZE: libzmq drops the peer above this, before Python allocates anything.

        Between ``max_frame_bytes`` and this limit a client gets a TOO_LARGE ERROR.
        """
        return int(self.max_frame_bytes * 1.25) + (1 << 20)


@dataclass
class _Job:
    identity: bytes
    message: proto.Message
    frame: Any  # keeps the zmq.Frame (and so the payload buffer) alive
    received: float
    stream: StreamState


@dataclass
class _Scheduler:
    """Latest frame wins per client; clients take turns (round-robin)."""

    pending: dict[bytes, _Job] = field(default_factory=dict)
    order: collections.deque = field(default_factory=collections.deque)
    cond: threading.Condition = field(default_factory=threading.Condition)
    closed: bool = False

    def submit(self, job: _Job) -> _Job | None:
        """Queue ``job``; return the job it replaced, if any."""
        with self.cond:
            old = self.pending.get(job.identity)
            self.pending[job.identity] = job
            if old is None:
                self.order.append(job.identity)
            self.cond.notify()
            return old

    def take(self, timeout: float = 0.2) -> _Job | None:
        with self.cond:
            if not self.order and not self.closed:
                self.cond.wait(timeout)
            if not self.order:
                return None
            ident = self.order.popleft()
            return self.pending.pop(ident)

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


class InferenceServer:
    def __init__(self, engine: Engine, settings: ServerSettings | None = None,
                 context: zmq.Context | None = None, pipeline: Pipeline | None = None) -> None:
        """``pipeline``: the per-frame stages for ``engine`` (default: a plain :class:`Pipeline`);
        the evaluation passes one that records what it sees."""
        self.engine = engine
        self.settings = settings or ServerSettings()
        self.pipeline = pipeline or Pipeline(engine)
        self.streams = StreamTable(engine.classes, self.settings.idle_s)
        self.ctx = context or zmq.Context.instance()
        self.endpoint: str | None = None
        self.stats = collections.Counter()
        self._stop = threading.Event()
        self._sched = _Scheduler()
        self._replies: queue.SimpleQueue = queue.SimpleQueue()
        self._router: zmq.Socket | None = None
        self._wake_addr = f"inproc://m2fp-wake-{id(self)}"
        self._threads: list[threading.Thread] = []
        #: Held around every engine call.  Other front ends in this process (the HTTP
        #: API) share the one engine instance and must take it too.
        self.engine_lock = threading.Lock()
        self._auth: Authenticator | None = None

    # ----------------------------------------------------------------- lifecycle
    def bind(self) -> str:
        """Bind the ROUTER; return the real endpoint (``tcp://127.0.0.1:*`` picks a port)."""
        s = self.settings
        check_exposure(s.address, s.curve_keys_dir)
        keys = CurveKeys.load(s.curve_keys_dir) if s.curve_keys_dir is not None else None
        router = self.ctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.MAXMSGSIZE, s.hard_limit)
        router.setsockopt(zmq.SNDHWM, 100)
        # report (rather than silently drop) sends to full or vanished peers, so they are counted
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        router.setsockopt(zmq.RCVHWM, 100)
        if keys is not None:
            self._auth = Authenticator(self.ctx, keys.authorized_dir)
            router.curve_server = True
            router.curve_secretkey = keys.server_secret
            router.curve_publickey = keys.server_public
        router.bind(s.address)
        self._router = router
        self.endpoint = router.getsockopt(zmq.LAST_ENDPOINT).decode()
        log.info("listening on %s (engine %s, frame limit %d bytes)", self.endpoint, self.engine.name,
                 s.max_frame_bytes)
        return self.endpoint

    def serve_forever(self) -> None:
        """Run until :meth:`stop` (or a signal handler calling it)."""
        if self._router is None:
            self.bind()
        wake_rx = self.ctx.socket(zmq.PAIR)
        wake_rx.setsockopt(zmq.LINGER, 0)
        wake_rx.bind(self._wake_addr)
        worker = threading.Thread(target=self._work, name="m2fp-worker", daemon=True)
        worker.start()
        self._threads.append(worker)
        try:
            self._io_loop(wake_rx)
        finally:
            self._sched.close()
            worker.join(timeout=5)
            wake_rx.close()
            assert self._router is not None
            self._router.close()
            self._router = None
            if self._auth is not None:
                self._auth.stop()
                self._auth = None
            log.info("server stopped (%s)", dict(self.stats))

    def start(self) -> str:
        """Bind and serve in a background thread (tests, embedding); returns the endpoint."""
        endpoint = self.bind()
        t = threading.Thread(target=self.serve_forever, name="m2fp-io", daemon=True)
        t.start()
        self._threads.append(t)
        return endpoint

    def stop(self) -> None:
        self._stop.set()
        self._sched.close()

    def join(self, timeout: float = 5.0) -> None:
        for t in self._threads:
            t.join(timeout)

    # ----------------------------------------------------------------- I/O thread
    def _io_loop(self, wake_rx: zmq.Socket) -> None:
        router = self._router
        assert router is not None
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(wake_rx, zmq.POLLIN)
        next_expiry = time.monotonic() + 5.0
        while not self._stop.is_set():
            events = dict(poller.poll(100))
            if wake_rx in events:
                while wake_rx.poll(0):
                    wake_rx.recv()
            self._flush_replies(router)
            if router in events:
                for _ in range(256):  # drain what is there, then go back to replies
                    try:
                        parts = router.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    self._handle(router, parts)
            if time.monotonic() > next_expiry:
                next_expiry = time.monotonic() + 5.0
                for key in self.streams.expire():  # the engine's state for it goes with it
                    log.info("client %s idle, state dropped", key.hex())

    def _flush_replies(self, router: zmq.Socket) -> None:
        while True:
            try:
                identity, frames = self._replies.get_nowait()
            except queue.Empty:
                return
            self._send(router, identity, frames)

    def _send(self, router: zmq.Socket, identity: bytes, frames: list[Any]) -> None:
        try:
            router.send_multipart([identity, *frames], zmq.NOBLOCK, copy=False)
        except zmq.Again:
            self.stats["send_dropped"] += 1  # client not reading: drop, never block
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH:
                raise
            self.stats["send_unroutable"] += 1  # the client went away

    def _handle(self, router: zmq.Socket, parts: list[zmq.Frame]) -> None:
        identity = parts[0].bytes
        body = parts[1:]
        self.stats["received"] += 1
        frame_id = ts = 0
        try:
            if len(body) >= 1 and len(body[0]) == proto.HEADER_SIZE:
                try:  # echo the id in errors when the header at least parses
                    h = proto.unpack_header(body[0].buffer)
                    frame_id, ts = h.frame_id, h.timestamp_us
                except ProtocolError:
                    pass
            msg = proto.decode(body, self.settings.max_frame_bytes, proto.SERVER_ACCEPTS)
            t = msg.header.type
            if t == MsgType.FRAME:
                self._on_frame(router, identity, msg, body[1] if len(body) > 1 else None)
            elif t == MsgType.HELLO:
                proto.decode_json(msg)  # must be valid JSON (may be empty)
                self._send(router, identity, proto.encode_json(
                    Header(MsgType.INFO, frame_id=msg.header.frame_id, timestamp_us=msg.header.timestamp_us,
                           generation=self.streams.get(identity).generation), self.info()))
            elif t == MsgType.CONFIG:
                self._on_config(router, identity, msg)
        except ProtocolError as exc:
            self.stats["errors"] += 1
            log.debug("client %s: %s", identity.hex(), exc)
            self._send(router, identity, proto.error_message(exc.code, exc.message, frame_id, ts))

    def _on_config(self, router: zmq.Socket, identity: bytes, msg: proto.Message) -> None:
        stream = self.streams.get(identity)
        cfg = StreamConfig.from_json(proto.decode_json(msg), base=stream.latest_config())
        gen = stream.request(cfg, self.engine.classes)  # raises BAD_CONFIG for unknown classes
        self._send(router, identity, proto.encode_json(
            Header(MsgType.CONFIG_ACK, frame_id=msg.header.frame_id, generation=gen),
            {"generation": gen, "config": cfg.to_json()}))

    def _on_frame(self, router: zmq.Socket, identity: bytes, msg: proto.Message, frame: Any) -> None:
        stream = self.streams.get(identity)
        old = self._sched.submit(_Job(identity, msg, frame, time.perf_counter(), stream))
        if old is not None:
            stream.dropped += 1
            self.stats["dropped"] += 1
            h = old.message.header
            self._send(router, identity, proto.encode(
                Header(MsgType.DROPPED, frame_id=h.frame_id, timestamp_us=h.timestamp_us)))

    # ----------------------------------------------------------------- worker
    def _work(self) -> None:
        wake = self.ctx.socket(zmq.PAIR)
        wake.setsockopt(zmq.LINGER, 0)
        wake.connect(self._wake_addr)
        try:
            while not self._stop.is_set():
                job = self._sched.take()
                if job is None:
                    continue
                for frames in self._run(job):
                    self._replies.put((job.identity, frames))
                wake.send(b"", zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # context terminated during shutdown
            log.debug("worker stopping: %s", exc)
        finally:
            wake.close()

    def _run(self, job: _Job) -> list[list[Any]]:
        h = job.message.header
        started = time.perf_counter()
        queue_ms = (started - job.received) * 1e3
        mask_size = (h.mask_width, h.mask_height) if h.mask_width else (h.width, h.height)
        want_labels = bool(h.flags & proto.Flags.WANT_PARSING)
        try:
            rgb = to_rgb(h, job.message.payload)
            gen = job.stream.settle()  # settings sent since the last frame take effect now
            with self.engine_lock:
                res = self.pipeline.process(rgb, job.stream, mask_size, want_labels)
        except ProtocolError as exc:
            return [proto.error_message(exc.code, exc.message, h.frame_id, h.timestamp_us)]
        except Exception as exc:  # the engine failed on this frame: say so, keep serving
            log.exception("engine failure on frame %d", h.frame_id)
            self.stats["engine_failures"] += 1
            return [proto.error_message(ErrorCode.ENGINE_FAILURE, f"{type(exc).__name__}: {exc}",
                                        h.frame_id, h.timestamp_us)]
        self.stats["masks"] += 1
        mw, mh = mask_size
        reply = Header(MsgType.MASK, frame_id=h.frame_id, timestamp_us=h.timestamp_us, width=mw, height=mh,
                       pixel_format=PixelFormat.GRAY8, stride=mw, generation=gen,
                       queue_ms=queue_ms, infer_ms=res.infer_ms, post_ms=res.post_ms)
        out = [proto.encode(reply, res.alpha)]
        if res.labels is not None:
            lab = Header(MsgType.PARSING, frame_id=h.frame_id, timestamp_us=h.timestamp_us, width=mw,
                         height=mh, pixel_format=PixelFormat.GRAY8, stride=mw, generation=gen)
            out.append(proto.encode(lab, res.labels))
        return out

    # ----------------------------------------------------------------- info
    def info(self) -> dict[str, Any]:
        return {
            "server_version": __version__,
            "protocol_version": proto.PROTOCOL_VERSION,
            "engine": self.engine.info(),
            "classes": [c.to_json() for c in self.engine.classes],
            "preferred_input": list(self.engine.preferred_input),
            "max_frame_bytes": self.settings.max_frame_bytes,
            "default_config": StreamConfig().to_json(),
        }
