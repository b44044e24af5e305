"""The HTTP front end's lifecycle: a threaded Werkzeug server started and stopped cleanly.

It shares the engine (and its lock) of an :class:`~m2fp_server.server.InferenceServer`
so one model sits in memory for the ZeroMQ clients and the web page alike.
"""
from __future__ import annotations

import logging
import socket
import threading
from typing import TYPE_CHECKING

from werkzeug.serving import BaseWSGIServer, make_server

from ..engines.base import Engine
from .app import WebApp
from .parsing import ParseService
from .settings import HttpAddressError, HttpSettings, check_bind_address

if TYPE_CHECKING:  # pragma: no cover
    from ..server import InferenceServer

log = logging.getLogger(__name__)

class HttpFrontEnd:
    """``POST /api/parse`` and the WebUI, in a background thread."""

    def __init__(self, engine: Engine, engine_lock: threading.Lock, settings: HttpSettings | None = None) -> None:
        self.settings = settings or HttpSettings()
        check_bind_address(self.settings.host, self.settings.allow_remote)
        self.service = ParseService(engine, engine_lock, self.settings.limits)
        self.app = WebApp(self.service, loopback_only=not self.settings.allow_remote)
        self._server: BaseWSGIServer | None = None
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
        return f"http://{shown}:{self._server.server_address[1]}"

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
            port = sock.getsockname()[1]
            self._server = make_server(s.host, port, self.app, threaded=True, fd=sock.fileno())
        except OSError as exc:
            raise HttpAddressError(f"cannot listen for HTTP on {s.host}:{s.port}: {exc.strerror or exc}") \
                from None
        finally:
            sock.close()  # Werkzeug works on its own duplicate of the descriptor
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="m2fp-http", daemon=True)
        self._thread.start()
        log.info("WebUI and REST API on %s (POST /api/parse)", self.url)
        return self.url

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = None
        log.info("HTTP front end stopped")
