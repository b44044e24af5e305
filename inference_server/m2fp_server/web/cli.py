"""The ``--http`` options of ``m2fp-server`` / ``m2fp serve``; Werkzeug loads only when --http is used."""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .settings import DEFAULT_HTTP, HttpAddressError, HttpSettings, ParseLimits, check_bind_address, parse_http_address

if TYPE_CHECKING:  # pragma: no cover
    from ..server import InferenceServer
    from .frontend import HttpFrontEnd


def add_http_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("HTTP API and WebUI (off by default)")
    g.add_argument("--http", nargs="?", const=DEFAULT_HTTP, default=None, metavar="HOST:PORT",
                   help=f"also serve POST /api/parse and the WebUI on this address, sharing the engine "
                        f"(--http alone: {DEFAULT_HTTP}; loopback only unless --http-allow-remote)")
    g.add_argument("--http-allow-remote", action="store_true",
                   help="allow a non-loopback --http address (the API has no authentication)")
    g.add_argument("--http-max-upload-mb", type=float, default=ParseLimits.max_upload_bytes / 2**20,
                   metavar="MB", help="largest upload accepted (default %(default)g)")


def http_settings(args: argparse.Namespace) -> HttpSettings | None:
    """Validated settings, or None without --http.  Raises HttpAddressError (a ValueError) early,
    before a model is loaded."""
    if args.http is None:
        return None
    host, port = parse_http_address(args.http)
    check_bind_address(host, args.http_allow_remote)
    if args.http_max_upload_mb <= 0:
        raise HttpAddressError("--http-max-upload-mb must be positive")
    limits = ParseLimits(max_upload_bytes=int(args.http_max_upload_mb * 2**20))
    return HttpSettings(host=host, port=port, allow_remote=args.http_allow_remote, limits=limits)


def start_http(server: InferenceServer, settings: HttpSettings | None) -> HttpFrontEnd | None:
    """Start the front end on the server's engine (None when --http was not given)."""
    if settings is None:
        return None
    from .frontend import HttpFrontEnd
    web = HttpFrontEnd.sharing(server, settings)
    web.start()
    return web
