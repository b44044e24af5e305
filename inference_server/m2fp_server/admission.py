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

Open connections are counted from the ROUTER's monitor.  libzmq's handshake events carry no
file descriptor, so ``HANDSHAKE_SUCCEEDED`` cannot be tied to a connection, and a refused
connection closes some time after its ``HANDSHAKE_FAILED_AUTH``.  So the gate keeps a count
that never falls below the truth:

* ``HANDSHAKE_SUCCEEDED`` adds one established connection;
* a ``DISCONNECTED`` fd removes one when that fd is known to be established: the server saw
  a message from it (``ZMQ_SRCFD``, reported by :meth:`ConnectionGate.identified`);
* the count is capped by the fds open right now (``ACCEPTED`` minus ``DISCONNECTED``, exact),
  which catches established connections that closed without ever sending.

Both bounds are above the truth, so the limit is never exceeded; the count is exact whenever
no handshake is under way.  An admission is pending until its ``HANDSHAKE_SUCCEEDED``
arrives (at most ``PENDING_S``), so a burst of connections cannot slip past the limit between
the two threads.  The ZAP thread reads the monitor before each decision; the I/O thread reads
it before each message (it needs the closed fds in order, see peers.py).  They take a lock to
do so: ZeroMQ allows a socket to move between threads behind a full memory barrier, which the
lock gives.
"""
from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from typing import Callable, Optional

import zmq
from zmq.utils.monitor import recv_monitor_message

log = logging.getLogger(__name__)

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
PENDING_S = 1.0  # an admission whose handshake the monitor has not reported after this long no longer counts
REFUSAL_LOG_EVERY_S = 10.0
# closing a socket is finished by libzmq's reaper thread, later: the ZAP endpoint of a handler that just
# stopped can still be bound when the next one starts on the same context
ZAP_REBIND_S = 2.0
#: what the server's monitor must report for the gate
MONITOR_EVENTS = zmq.EVENT_ACCEPTED | zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED

#: decides one request: (mechanism, credentials) -> None to admit, or the reason to refuse
Check = Callable[[bytes, list[bytes]], Optional[str]]


class ConnectionGate:
    """At most ``limit`` connections open at once; the rest are refused at their handshake."""

    def __init__(self, limit: int, monitor: zmq.Socket | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.monitor = monitor  # the ROUTER's monitor, reporting MONITOR_EVENTS
        self.refused = 0
        self._clock = clock
        self._established = 0
        self._open: set[int] = set()
        self._known: set[int] = set()  # fds a message came from: established for sure
        self._pending: collections.deque[float] = collections.deque()
        self._closed: list[int] = []
        self._lock = threading.Lock()
        self._last_log = float("-inf")

    def event(self, event: int, value: int) -> None:
        """One monitor event, in libzmq's order (the lock is held, or the caller owns the gate)."""
        if event == zmq.EVENT_ACCEPTED:
            self._open.add(value)
        elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self._established += 1
            if self._pending:
                self._pending.popleft()
        elif event == zmq.EVENT_DISCONNECTED:
            self._open.discard(value)
            if value in self._known:
                self._known.discard(value)
                self._established = max(0, self._established - 1)
            self._closed.append(value)

    def identified(self, fd: int) -> None:
        """I/O thread: a message came from ``fd`` (after :meth:`closed_fds`, so a reused fd is the new one)."""
        if fd not in self._known:  # racy read, fine: the add below is under the lock
            with self._lock:
                if fd in self._open:
                    self._known.add(fd)

    def _drain(self) -> None:
        mon = self.monitor
        if mon is None:
            return
        while True:
            try:
                ev = recv_monitor_message(mon, zmq.NOBLOCK)
            except zmq.Again:
                return
            self.event(int(ev["event"]), int(ev["value"]))

    def admit(self, mechanism: bytes, credentials: list[bytes]) -> str | None:
        """ZAP thread: None to admit, else the reason sent back to the client."""
        with self._lock:
            try:
                self._drain()
            except zmq.ZMQError:  # the monitor is closing with the server: decide on what is known
                pass
            now = self._clock()
            while self._pending and now - self._pending[0] > PENDING_S:
                self._pending.popleft()
            self._established = min(self._established, len(self._open))
            if self._established + len(self._pending) < self.limit:
                self._pending.append(now)
                return None
            self.refused += 1
            if now - self._last_log > REFUSAL_LOG_EVERY_S:
                self._last_log = now
                log.warning("connection refused: %d connections open, the limit (--max-connections) is %d; "
                            "%d refused so far", self._established, self.limit, self.refused)
            return f"too many connections (limit {self.limit})"

    def closed_fds(self) -> list[int]:
        """I/O thread: the connections closed since the last call, in order."""
        with self._lock:
            self._drain()
            self._established = min(self._established, len(self._open))
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
            return self._established


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
        except zmq.ZMQError as exc:
            self._error = exc
            self._ready.set()
            return
        sock.setsockopt(zmq.LINGER, 0)
        deadline = time.monotonic() + ZAP_REBIND_S
        while True:
            try:
                sock.bind(ZAP_ENDPOINT)
                break
            except zmq.ZMQError as exc:
                if exc.errno != zmq.EADDRINUSE or time.monotonic() >= deadline:
                    sock.close(0)
                    self._error = exc
                    self._ready.set()
                    return
            time.sleep(0.01)
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
