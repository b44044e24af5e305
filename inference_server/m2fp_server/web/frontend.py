"""The HTTP front end's lifecycle: a bounded waitress server started and stopped cleanly.

waitress, not Werkzeug's development server: Werkzeug starts one thread per connection
with no cap, and 2,000 connections finishing at once stalled HTTP and ZeroMQ for minutes.
waitress has a fixed pool of worker threads (``threads``), a connection limit, buffers
request bodies itself (up to its own cap, then closes the connection) and uses poll()
so thousands of sockets do not hit select()'s descriptor limit.

It shares the engine (and its lock) of an :class:`~m2fp_server.server.InferenceServer`
so one model sits in memory for the ZeroMQ clients and the web page alike.
"""
from __future__ import annotations

import logging
import socket
import threading
from typing import TYPE_CHECKING, Any

from waitress.server import create_server

from ..engines.base import Engine
from .app import WebApp
from .parsing import ParseService
from .settings import HttpAddressError, HttpSettings, check_bind_address

if TYPE_CHECKING:  # pragma: no cover
    from ..server import InferenceServer

log = logging.getLogger(__name__)
#: waitress warns once per request queued behind its busy threads: thousands of lines in a herd
logging.getLogger("waitress.queue").setLevel(logging.ERROR)

class HttpFrontEnd:
    """``POST /api/parse`` and the WebUI, in a background thread."""

    def __init__(self, engine: Engine, engine_lock: threading.Lock, settings: HttpSettings | None = None) -> None:
        self.settings = settings or HttpSettings()
        check_bind_address(self.settings.host, self.settings.allow_remote)
        self.service = ParseService(engine, engine_lock, self.settings.limits)
        self.app = WebApp(self.service, loopback_only=not self.settings.allow_remote)
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @classmethod
    def sharing(cls, server: InferenceServer, settings: HttpSettings | None = None) -> HttpFrontEnd:
        """The front end for a ZeroMQ server's engine: one model in memory, one lock."""
        return cls(server.engine, server.engine_lock, settings)

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the HTTP front end is not started")
        host = self.settings.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self._port}"

    def start(self) -> str:
        """Bind (errors such as a port in use surface here) and serve in a thread; returns the URL."""
        s = self.settings
        # bind here: on failure Werkzeug would print and sys.exit(); we raise a clear error instead
        try:
            family, _, _, _, addr = socket.getaddrinfo(s.host, s.port, type=socket.SOCK_STREAM)[0]
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:
            raise HttpAddressError(f"cannot listen for HTTP on {s.host}:{s.port}: {exc}") from None
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(64)
            self._port = sock.getsockname()[1]
        except OSError as exc:
            sock.close()
            raise HttpAddressError(f"cannot listen for HTTP on {s.host}:{s.port}: {exc.strerror or exc}") \
                from None
        lim = s.limits
        self._server = create_server(
            self.app, sockets=[sock], threads=lim.http_threads, connection_limit=lim.http_connections,
            channel_timeout=lim.http_idle_s, asyncore_use_poll=True, backlog=1024,
            # the app refuses uploads above the limit with the JSON envelope; far above it waitress
            # itself answers 413 and closes the connection without reading the rest
            max_request_body_size=lim.max_upload_bytes + (1 << 20), ident="m2fp",
            clear_untrusted_proxy_headers=True)
        self._thread = threading.Thread(target=self._server.run, name="m2fp-http", daemon=True)
        self._thread.start()
        log.info("WebUI and REST API on %s (POST /api/parse)", self.url)
        return self.url

    def stop(self) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        for channel in list(server._map.values()):  # open connections end the serving loop's map
            channel.close()
        server.task_dispatcher.shutdown(timeout=5)
        if self._thread is not None:
            self._thread.join(5)
        log.info("HTTP front end stopped")
