"""HTTP settings and the --http address checks (no Werkzeug import: the CLI loads this).

The API has no authentication, so it listens on loopback unless the caller says
otherwise explicitly (``allow_remote``).
"""
from __future__ import annotations

import ipaddress
import logging
import socket
from dataclasses import dataclass, field

from ..errors import M2fpError

log = logging.getLogger(__name__)


@dataclass
class ParseLimits:
    max_upload_bytes: int = 20 * 1024 * 1024  # whole multipart body (photo + background image)
    max_pixels: int = 4096 * 4096
    max_side: int = 8192
    max_waiting: int = 2  # parses running or queued for the engine; more get BUSY
    lock_timeout_s: float = 30.0  # give up waiting for the engine after this long
    cache_entries: int = 4  # photos whose engine output is kept for re-rendering
    http_threads: int = 4  # waitress worker threads: requests served at once (parsing is further bounded)
    http_connections: int = 256  # open HTTP connections; more wait in the listen backlog
    http_idle_s: int = 30  # an idle or stalled connection is closed after this long


DEFAULT_HTTP = "127.0.0.1:5000"


class HttpAddressError(M2fpError, ValueError):
    """The --http address is malformed or not allowed without --http-allow-remote."""


@dataclass
class HttpSettings:
    host: str = "127.0.0.1"
    port: int = 5000  # 0 picks a free port (tests)
    allow_remote: bool = False
    limits: ParseLimits = field(default_factory=ParseLimits)


def parse_http_address(text: str) -> tuple[str, int]:
    """'HOST:PORT', '[v6]:PORT', ':PORT' or 'PORT' → (host, port); the host defaults to 127.0.0.1."""
    s = text.strip()
    host, _, port_s = s.rpartition(":") if ":" in s else ("", "", s)
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_s)
    except ValueError:
        raise HttpAddressError(f"--http {text!r}: expected HOST:PORT, e.g. {DEFAULT_HTTP}") from None
    if not 0 <= port <= 65535:
        raise HttpAddressError(f"--http {text!r}: port {port} is out of range")
    return host, port


def is_loopback(host: str) -> bool:
    """True when every address ``host`` resolves to is a loopback address."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise HttpAddressError(f"--http host {host!r} does not resolve: {exc}") from None
    return bool(infos) and all(ipaddress.ip_address(str(i[4][0]).split("%")[0]).is_loopback for i in infos)


def check_bind_address(host: str, allow_remote: bool) -> None:
    if is_loopback(host):
        return
    if not allow_remote:
        raise HttpAddressError(
            f"refusing to serve HTTP on {host}: it is not a loopback address and the API has no "
            "authentication, so anyone who can reach it can use the engine. Use 127.0.0.1, or pass "
            "--http-allow-remote if that is what you want (behind a firewall or a reverse proxy)")
    log.warning("HTTP API on non-loopback address %s (--http-allow-remote): it has no authentication", host)


