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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

import m2fp_protocol as proto
from m2fp_protocol import ErrorCode, Header, MsgType, PixelFormat, ProtocolError, StreamConfig

from . import __version__
from .admission import MONITOR_EVENTS, Check, ConnectionGate, ZapDispatcher
from .engine_calls import LockedEngineCalls
from .engines.base import Engine
from .errors import BadInput
from .frames import to_rgb
from .pipeline import Pipeline
from .postprocess.mask_motion import people_boxes
from .routing_ids import seed_automatic_ids
from .peers import PeerTracker
from .security import CurveKeyCheck, CurveKeys, check_exposure
from .scheduler import Job, Scheduler
from .streams import StreamTable

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = proto.DEFAULT_ADDRESS


#: the largest FRAME by default: 1920x1080 RGBA.  The OBS filter sends model-sized frames (far
#: smaller); a larger limit costs connections (see ServerSettings.connection_limit).
DEFAULT_MAX_FRAME_BYTES = 1920 * 1080 * 4
MiB = 1 << 20
#: large replies (masks, parsings) libzmq may hold for one peer; a client has at most MAX_INFLIGHT frames
#: out, each answered by a MASK (+ PARSING), so only a client that does not read meets this limit: its
#: further large replies are dropped.  Counted by pyzmq's MessageTrackers (libzmq done with the buffer).
REPLY_HWM = 2 * proto.MAX_INFLIGHT
LARGE_REPLY = 16 * 1024  # smaller replies (ERROR, ACK, INFO, small masks) count in SNDHWM messages only
SNDHWM = 100


@dataclass
class ServerSettings:
    address: str = DEFAULT_ADDRESS
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    idle_s: float = 60.0  # forget a client's state after this long without messages
    curve_keys_dir: Path | None = None  # CURVE + authorised clients (see security); required off loopback
    #: memory for frames, all clients together: frames arriving (one per open connection, see
    #: admission.py) and frames received but not yet run (parked); see docs/security.md
    frame_budget_bytes: int = 512 * MiB
    #: what happens to a frame that does not fit the budget: "drop-oldest" (the oldest parked frames of
    #: other clients are dropped, their senders get DROPPED: a live client's next frame replaces it anyway)
    #: or "refuse" (ERROR SERVER_BUSY to its sender); measured in docs/security.md
    budget_policy: str = "drop-oldest"
    max_streams: int = 256  # live clients (connections with state); more get ERROR SERVER_BUSY
    #: connections open at once; 0: as many as half the frame budget can receive at once
    max_connections: int = 0
    #: frames processed at once (never two of one client); the engine itself runs one call at a time
    workers: int = 2

    @property
    def hard_limit(self) -> int:
        """ZMQ_MAXMSGSIZE: libzmq drops the peer above this, before Python allocates anything.

        Between ``max_frame_bytes`` and this limit a client gets a TOO_LARGE ERROR.
        """
        return self.max_frame_bytes + MiB

    @property
    def max_mask_pixels(self) -> int:
        """Masks (and parsings) no larger than the largest RGBA frame: what one reply may hold."""
        return min(proto.MAX_MASK_PIXELS, self.max_frame_bytes // 4)

    @property
    def connection_bytes(self) -> int:
        """What one open connection may hold outside the parked frames: the message it is receiving (libzmq
        allocates all of it at the header) and the replies queued for it."""
        return self.hard_limit + REPLY_HWM * self.max_mask_pixels + SNDHWM * LARGE_REPLY

    @property
    def connection_limit(self) -> int:
        if self.max_connections > 0:
            return self.max_connections
        return max(1, self.frame_budget_bytes // 2 // self.connection_bytes)

    @property
    def parked_budget_bytes(self) -> int:
        """What the budget leaves for parked frames once every connection's share is reserved."""
        return self.frame_budget_bytes - self.connection_limit * self.connection_bytes

    def check(self) -> None:
        """Refuse limits that cannot hold together, naming the options to change."""
        if self.max_frame_bytes < 1:
            raise BadInput("--max-frame-bytes must be positive")
        if self.parked_budget_bytes < self.hard_limit:
            raise BadInput(
                f"the frame budget ({self.frame_budget_bytes / MiB:g} MiB) cannot hold {self.connection_limit} "
                f"connections' arriving frames and replies ({self.connection_bytes / MiB:.1f} MiB each) and still "
                "park one frame: raise --frame-budget-mb, or lower --max-connections or --max-frame-bytes")


class InferenceServer:
    def __init__(self, engine: Engine, settings: ServerSettings | None = None,
                 context: zmq.Context | None = None, pipeline: Pipeline | None = None) -> None:
        """``pipeline``: the per-frame stages for ``engine`` (default: a plain :class:`Pipeline`);
        the evaluation passes one that records what it sees."""
        self.engine = engine
        self.settings = settings or ServerSettings()
        self.pipeline = pipeline or Pipeline(engine)
        self.streams = StreamTable(engine.classes, self.settings.idle_s, self.settings.max_streams)
        self.ctx = context or zmq.Context.instance()
        self.endpoint: str | None = None
        self.stats: collections.Counter[str] = collections.Counter()
        self._stop = threading.Event()
        self.settings.check()
        self._sched = Scheduler(budget=self.settings.parked_budget_bytes, policy=self.settings.budget_policy)
        self._peers = PeerTracker()
        self._replies: queue.SimpleQueue = queue.SimpleQueue()
        self._router: zmq.Socket | None = None
        self._wake_addr = f"inproc://m2fp-wake-{id(self)}"
        self._threads: list[threading.Thread] = []
        #: Held around every engine call.  Other front ends in this process (the HTTP
        #: API) share the one engine instance and must take it too.
        self.engine_lock = threading.Lock()
        self.pipeline.engine = LockedEngineCalls(self.pipeline.engine, self.engine_lock)  # type: ignore[assignment]
        self.gate = ConnectionGate(self.settings.connection_limit)
        self._zap_domain: bytes | None = None
        self._gone: queue.SimpleQueue = queue.SimpleQueue()  # (key, StreamState) of disconnected clients
        self._held: dict[bytes, list[zmq.MessageTracker]] = {}  # large replies libzmq still holds, per client

    # ----------------------------------------------------------------- lifecycle
    def bind(self) -> str:
        """Bind the ROUTER; return the real endpoint (``tcp://127.0.0.1:*`` picks a port)."""
        s = self.settings
        check_exposure(s.address, s.curve_keys_dir)
        keys = CurveKeys.load(s.curve_keys_dir) if s.curve_keys_dir is not None else None
        seed_automatic_ids()  # before the ROUTER exists: libzmq reads rand() in its constructor
        router = self.ctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.MAXMSGSIZE, s.hard_limit)
        router.setsockopt(zmq.SNDHWM, SNDHWM)
        # report (rather than silently drop) sends to full or vanished peers, so they are counted
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        router.setsockopt(zmq.RCVHWM, 8)  # complete messages libzmq holds per peer before the I/O thread takes them
        checks: list[Check] = []
        if keys is not None:
            checks.append(CurveKeyCheck(keys.authorized_dir))  # before the gate: a refused key takes no slot
            router.curve_server = True
            router.curve_secretkey = keys.server_secret
            router.curve_publickey = keys.server_public
        checks.append(self.gate.admit)
        self._zap_domain = ZapDispatcher.register(self.ctx, checks)
        router.setsockopt(zmq.ZAP_DOMAIN, self._zap_domain)
        # both before bind: no connection may be accepted unseen by the gate
        self.gate.monitor = router.get_monitor_socket(MONITOR_EVENTS)
        router.bind(s.address)
        self._router = router
        self.endpoint = router.getsockopt(zmq.LAST_ENDPOINT).decode()
        log.info("listening on %s (engine %s, frame limit %d bytes, %d connections, %.0f MiB for parked frames)",
                 self.endpoint, self.engine.name, s.max_frame_bytes, s.connection_limit, s.parked_budget_bytes / MiB)
        return self.endpoint

    def serve_forever(self) -> None:
        """Run until :meth:`stop` (or a signal handler calling it)."""
        if self._router is None:
            self.bind()
        wake_rx = self.ctx.socket(zmq.PULL)
        wake_rx.setsockopt(zmq.LINGER, 0)
        wake_rx.bind(self._wake_addr)
        workers = [threading.Thread(target=self._work, name=f"m2fp-worker-{i}", daemon=True)
                   for i in range(max(1, self.settings.workers))]
        for worker in workers:
            worker.start()
            self._threads.append(worker)
        try:
            self._io_loop(wake_rx)
        finally:
            self._sched.close()
            for worker in workers:
                worker.join(timeout=5)
            wake_rx.close()
            assert self._router is not None
            if self._zap_domain is not None:
                ZapDispatcher.unregister(self.ctx, self._zap_domain)
                self._zap_domain = None
            self._router.disable_monitor()
            self.gate.close()
            self._router.close()
            self._router = None
            if self.gate.refused:
                self.stats["connections_refused"] = self.gate.refused
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
                    self._peer_events(router)  # first: a gone peer's fd may be reused by the next message's
                    try:
                        parts = router.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    self._guarded(router, parts)
            self._peer_events(router)
            if time.monotonic() > next_expiry:
                next_expiry = time.monotonic() + 5.0
                for key in self.streams.expire():  # the engine's state for it goes with it
                    log.info("client %s idle, state dropped", key.hex())

    def _guarded(self, router: zmq.Socket, parts: list[zmq.Frame]) -> None:
        """One message: whatever goes wrong is logged with the client's id and answered, never raised."""
        try:
            self._handle(router, parts)
        except Exception:
            identity = parts[0].bytes if parts else b""
            self.stats["internal_errors"] += 1
            log.exception("internal error on a message from client %s", identity.hex())
            if identity:
                try:
                    self._send(router, identity, proto.error_message(
                        ErrorCode.INTERNAL, "internal server error (logged on the server); the server goes on"))
                except Exception:  # even the answer failed: logged above, keep serving
                    pass

    def _peer_events(self, router: zmq.Socket) -> None:
        """Peers that disconnected: drop their parked frame and their state now, not after idle_s."""
        for fd in self.gate.closed_fds():
            for key in self._peers.disconnected(fd):
                self._held.pop(key, None)
                if self._sched.discard(key) is not None:
                    self.stats["gone_dropped"] += 1
                st = self.streams.remove(key)
                if st is not None:
                    st.gone = True
                    self._gone.put((key, st))  # released by the worker: it may be running this stream now

    def _flush_replies(self, router: zmq.Socket) -> None:
        while True:
            try:
                identity, frames = self._replies.get_nowait()
            except queue.Empty:
                return
            self._send(router, identity, frames)

    def _send(self, router: zmq.Socket, identity: bytes, frames: list[Any]) -> None:
        large = memoryview(frames[-1]).nbytes > LARGE_REPLY
        held: list[zmq.MessageTracker] = []
        if large:
            held = [t for t in self._held.get(identity, ()) if not t.done]
            if len(held) >= REPLY_HWM:  # the client is not reading: its replies would pile up here
                self._held[identity] = held
                self.stats["send_dropped"] += 1
                return
        try:
            tracker = router.send_multipart([identity, *frames], zmq.NOBLOCK, copy=False, track=large)
            if large and tracker is not None:
                held.append(tracker)
                self._held[identity] = held
        except zmq.Again:
            self.stats["send_dropped"] += 1  # client not reading: drop, never block
        except zmq.ZMQError as exc:
            if exc.errno == zmq.EHOSTUNREACH:
                self.stats["send_unroutable"] += 1  # the client went away
            else:
                self.stats["send_failed"] += 1
                log.warning("could not send to client %s: %s", identity.hex(), exc)

    def _handle(self, router: zmq.Socket, parts: list[zmq.Frame]) -> None:
        identity = parts[0].bytes
        body = parts[1:]
        self.stats["received"] += 1
        fd = self._peers.seen(identity, parts[-1])
        if fd is not None:
            self.gate.identified(fd)
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
                proto.validate_hello(proto.decode_json(msg))  # the schema's HELLO fields (may be empty)
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
        h = msg.header
        mw, mh = (h.mask_width, h.mask_height) if h.mask_width else (h.width, h.height)
        if mw * mh > self.settings.max_mask_pixels:  # replies queued for a peer are budgeted at this size
            raise ProtocolError(ErrorCode.BAD_SIZE, f"a {mw}x{mh} mask is larger than this server's "
                                f"{self.settings.max_mask_pixels} pixels (the largest frame, --max-frame-bytes)")
        stream = self.streams.get(identity)
        try:
            old, evicted = self._sched.submit(Job(identity, msg, frame, time.perf_counter(), stream))
        except ProtocolError:
            self.stats["budget_refused"] += 1
            raise
        for gone in ([old] if old is not None else []) + evicted:
            gone.stream.dropped += 1
            self.stats["dropped" if gone is old else "budget_dropped"] += 1
            h = gone.message.header
            self._send(router, gone.identity, proto.encode(
                Header(MsgType.DROPPED, frame_id=h.frame_id, timestamp_us=h.timestamp_us)))

    # ----------------------------------------------------------------- worker
    def _work(self) -> None:
        wake = self.ctx.socket(zmq.PUSH)
        wake.setsockopt(zmq.LINGER, 0)
        wake.connect(self._wake_addr)
        try:
            while not self._stop.is_set():
                job = self._sched.take()
                self._release_gone()
                if job is None:
                    continue
                if job.stream.gone:  # a frame whose sender has gone is not run
                    self._sched.done(job)
                    continue
                identity = job.identity
                try:
                    replies = self._run(job)
                except Exception:  # a bug outside the engine call: answer, log, keep serving
                    self.stats["internal_errors"] += 1
                    log.exception("internal error on a frame from client %s", job.identity.hex())
                    h = job.message.header
                    replies = [proto.error_message(ErrorCode.INTERNAL, "internal server error (logged on the "
                                                   "server); the server goes on", h.frame_id, h.timestamp_us)]
                finally:
                    self._sched.done(job)
                del job  # the frame's memory goes back before the next one is taken
                for frames in replies:
                    self._replies.put((identity, frames))
                wake.send(b"", zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # context terminated during shutdown
            log.debug("worker stopping: %s", exc)
        finally:
            wake.close()

    def _release_gone(self) -> None:
        """The engine state of clients that disconnected (a worker does it, never while one runs their frame)."""
        later = []
        while True:
            try:
                key, stream = self._gone.get_nowait()
            except queue.Empty:
                break
            if self._sched.is_running(key):
                later.append((key, stream))
                continue
            with self.engine_lock:
                stream.close()  # the stream owns the engine's state (engine contract)
        for item in later:
            self._gone.put(item)

    def _run(self, job: Job) -> list[list[Any]]:
        h = job.message.header
        started = time.perf_counter()
        queue_ms = (started - job.received) * 1e3
        mask_size = (h.mask_width, h.mask_height) if h.mask_width else (h.width, h.height)
        want_labels = bool(h.flags & proto.Flags.WANT_PARSING)
        want_people = bool(h.flags & proto.Flags.WANT_PEOPLE)
        want_turns = want_people and bool(h.flags & proto.Flags.WANT_TURNS)
        try:
            rgb = to_rgb(h, job.message.payload)
            gen = job.stream.settle()  # settings sent since the last frame take effect now
            job.stream.note_stamp(h.timestamp_us)
            # engine calls take the lock
            res = self.pipeline.process(rgb, job.stream, mask_size, want_labels, received=job.received,
                                        want_people=want_people, want_turns=want_turns)
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
                       queue_ms=queue_ms, infer_ms=res.infer_ms, post_ms=res.post_ms,
                       motion_x=round(res.motion[0] * proto.MOTION_SCALE),
                       motion_y=round(res.motion[1] * proto.MOTION_SCALE))
        out = [proto.encode(reply, res.alpha)]
        people = people_boxes(res.people, mw, mh)
        if people:  # before its MASK: the client has it when the mask arrives
            who = Header(MsgType.PEOPLE, frame_id=h.frame_id, timestamp_us=h.timestamp_us, width=mw, height=mh,
                         generation=gen, flags=proto.Flags.WANT_TURNS if want_turns else 0)
            out.insert(0, proto.encode(who, proto.pack_people(people, turns=want_turns)))
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
            "max_connections": self.settings.connection_limit,
            "max_mask_pixels": self.settings.max_mask_pixels,
            "default_config": StreamConfig().to_json(),
        }

