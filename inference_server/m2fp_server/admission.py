"""Who may open a connection, decided at the ZeroMQ handshake (ZAP, RFC 27).

Why at the handshake: libzmq allocates a message's full size as soon as it has read the
message's header, and fills it as the bytes arrive, before Python sees anything.  The
server's parked-frame budget can only count frames that have arrived; the frames still
arriving are bounded by nothing but *how many connections may send at once* times the
per-message limit (``ZMQ_MAXMSGSIZE``).  250 clients uploading 4K frames together held
gigabytes that way.  So the number of open connections is capped, and the cap is enforced
where libzmq asks: a connection over the cap is refused during its handshake, before it
can send a single message.

One ZAP endpoint exists per ZeroMQ context (``inproc://zeromq.zap.01``), so one
:class:`ZapDispatcher` per context serves every server in it; each server's socket has its
own ZAP domain and its own :class:`ConnectionGate`.  The same request also carries the
client's CURVE key when CURVE is on, so the key check (``security.CurveKeyCheck``) lives
behind the same dispatcher (libzmq allows one handler, and pyzmq's ThreadAuthenticator
would take that endpoint).

Open connections are counted from the ROUTER's monitor: ``ACCEPTED`` adds a connection's fd,
``DISCONNECTED`` removes it (libzmq's handshake events carry no fd, so they cannot be tied to
a connection).  libzmq reports a connection's ``ACCEPTED`` before its handshake can start, and
the ZAP thread reads the monitor before each decision, so the connection being decided is
already counted: it is admitted while the open connections, itself included, are within the
limit.  Connections being refused count until they close, which errs on the side of memory.
The monitor is read under a lock by whichever thread needs it first (the ZAP thread or the
I/O thread, which needs the closed fds in order, before the next message); ZeroMQ allows a
socket to move between threads behind a full memory barrier, which the lock gives.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import Callable, Optional

import zmq
from zmq.utils.monitor import recv_monitor_message

log = logging.getLogger(__name__)

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
REFUSAL_LOG_EVERY_S = 10.0

#: decides one request: (mechanism, credentials) -> None to admit, or the reason to refuse
Check = Callable[[bytes, list[bytes]], Optional[str]]


class ConnectionGate:
    """At most ``limit`` connections open at once; the rest are refused at their handshake."""

    def __init__(self, limit: int, monitor: zmq.Socket | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.monitor = monitor  # the ROUTER's monitor: EVENT_ACCEPTED | EVENT_DISCONNECTED
        self.refused = 0
        self._clock = clock
        self._open: set[int] = set()
        self._closed: list[int] = []
        self._lock = threading.Lock()
        self._last_log = float("-inf")

    def accepted(self, fd: int) -> None:
        with self._lock:
            self._open.add(fd)

    def disconnected(self, fd: int) -> None:
        with self._lock:
            self._open.discard(fd)
            self._closed.append(fd)

    def _drain(self) -> None:
        """Apply the monitor's events so far (caller holds the lock)."""
        mon = self.monitor
        if mon is None:
            return
        while True:
            try:
                ev = recv_monitor_message(mon, zmq.NOBLOCK)
            except zmq.Again:
                return
            fd = int(ev["value"])
            if ev["event"] == zmq.EVENT_ACCEPTED:
                self._open.add(fd)
            elif ev["event"] == zmq.EVENT_DISCONNECTED:
                self._open.discard(fd)
                self._closed.append(fd)

    def admit(self, mechanism: bytes, credentials: list[bytes]) -> str | None:
        """ZAP thread: None to admit, else the reason sent back to the client."""
        with self._lock:
            try:
                self._drain()
            except zmq.ZMQError:  # the monitor is closing with the server: count what is known
                pass
            if len(self._open) <= self.limit:  # the connection being decided is one of them
                return None
            self.refused += 1
            now = self._clock()
            if now - self._last_log > REFUSAL_LOG_EVERY_S:
                self._last_log = now
                log.warning("connection refused: the limit is %d open connections (--max-connections); "
                            "%d refused so far", self.limit, self.refused)
            return f"too many connections (limit {self.limit})"

    def closed_fds(self) -> list[int]:
        """I/O thread: the connections closed since the last call, in order."""
        with self._lock:
            self._drain()
            out, self._closed = self._closed, []
            return out

    def close(self) -> None:
        with self._lock:
            if self.monitor is not None:
                self.monitor.close(0)
                self.monitor = None

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._open)


class ZapDispatcher:
    """The ZAP handler of one context: answers each request with the checks of its domain."""

    _by_context: dict[int, "ZapDispatcher"] = {}
    _registry_lock = threading.Lock()
    _domain_ids = itertools.count(1)

    def __init__(self, ctx: zmq.Context) -> None:
        self._ctx = ctx
        self._checks: dict[bytes, list[Check]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="m2fp-zap", daemon=True)
        self._thread.start()
        self._ready.wait(5)
        if self._error is not None:
            raise self._error

    @classmethod
    def register(cls, ctx: zmq.Context, checks: list[Check]) -> bytes:
        """A new ZAP domain for one socket, answered by ``checks`` in order; set it as the socket's
        ``ZAP_DOMAIN`` before it binds."""
        with cls._registry_lock:
            disp = cls._by_context.get(id(ctx))
            if disp is None or not disp._thread.is_alive():
                disp = cls._by_context[id(ctx)] = cls(ctx)
            domain = b"m2fp-%d" % next(cls._domain_ids)
            with disp._lock:
                disp._checks[domain] = list(checks)
            return domain

    @classmethod
    def unregister(cls, ctx: zmq.Context, domain: bytes) -> None:
        """Forget a domain; the context's handler stops with its last domain."""
        with cls._registry_lock:
            disp = cls._by_context.get(id(ctx))
            if disp is None:
                return
            with disp._lock:
                disp._checks.pop(domain, None)
                last = not disp._checks
            if last:
                del cls._by_context[id(ctx)]
                disp._stop.set()
                disp._thread.join(5)

    def _serve(self) -> None:
        try:
            sock = self._ctx.socket(zmq.REP)
            sock.setsockopt(zmq.LINGER, 0)
            sock.bind(ZAP_ENDPOINT)
        except zmq.ZMQError as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while not self._stop.is_set():
                if not sock.poll(100):
                    continue
                request = sock.recv_multipart()
                sock.send_multipart(self._answer(request))
        except zmq.ZMQError as exc:  # context terminated under us
            log.debug("ZAP handler stopping: %s", exc)
        finally:
            sock.close(0)

    def _answer(self, request: list[bytes]) -> list[bytes]:
        """RFC 27: version, request id, domain, address, identity, mechanism, credentials..."""
        if len(request) < 6 or request[0] != b"1.0":
            request_id = request[1] if len(request) > 1 else b""
            return [b"1.0", request_id, b"500", b"malformed ZAP request", b"", b""]
        request_id, domain, mechanism, credentials = request[1], request[2], request[5], request[6:]
        with self._lock:
            checks = self._checks.get(domain)
        if checks is None:
            return [b"1.0", request_id, b"400", b"unknown ZAP domain", b"", b""]
        for check in checks:
            try:
                reason = check(mechanism, credentials)
            except Exception:  # a bug in a check refuses the connection, never the handler
                log.exception("ZAP check failed")
                reason = "internal error"
            if reason is not None:
                return [b"1.0", request_id, b"400", reason.encode()[:200], b"", b""]
        return [b"1.0", request_id, b"200", b"OK", b"", b""]
