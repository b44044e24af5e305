"""``m2fp-server`` / ``m2fp serve``: the ZeroMQ inference server."""
from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from ..security import ExposureError, check_exposure
from ..server import DEFAULT_ADDRESS, InferenceServer, ServerSettings
from ..web.cli import add_http_arguments, http_settings, start_http
from .common import add_engine_arguments, build_engine

log = logging.getLogger("m2fp_server")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", "--bind", default=DEFAULT_ADDRESS,
                   help=f"ZeroMQ endpoint to bind (default {DEFAULT_ADDRESS}; loopback only without keys)")
    add_engine_arguments(p)
    p.add_argument("--max-frame-bytes", type=int, default=ServerSettings.max_frame_bytes,
                   help="largest FRAME payload accepted (default: 1920x1080 RGBA; the OBS filter sends far smaller "
                        "frames); a larger limit allows fewer connections, see --max-connections")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the engine (default: engine's)")
    p.add_argument("--curve-keys", type=Path, default=None, metavar="DIR",
                   help="enable CURVE encryption and client authentication with keys from `m2fp keys --dir DIR` "
                        "(required to bind anything but loopback)")
    g = p.add_argument_group("limits shared by all clients (see docs/security.md)")
    g.add_argument("--frame-budget-mb", type=float, default=ServerSettings.frame_budget_bytes / 2**20,
                   metavar="MB", help="memory for frames, all clients together: one arriving frame per open "
                                      "connection, the rest for frames waiting for the engine (default %(default)g)")
    g.add_argument("--budget-policy", choices=["refuse", "drop-oldest"], default=ServerSettings.budget_policy,
                   help="a frame that does not fit the budget: refuse it (ERROR SERVER_BUSY) or drop the "
                        "oldest parked frames of other clients (default %(default)s)")
    g.add_argument("--max-streams", type=int, default=ServerSettings.max_streams, metavar="N",
                   help="clients served at once (default %(default)d)")
    g.add_argument("--max-connections", type=int, default=0, metavar="N",
                   help="connections open at once, more are refused at the handshake (default: as many as half "
                        "the frame budget can receive at once at --max-frame-bytes)")
    add_http_arguments(p)


def run(args: argparse.Namespace) -> int:
    from ..memory import return_large_blocks_to_the_os
    return_large_blocks_to_the_os()  # before any frame arrives: the memory budget must show in RSS
    if args.threads is not None:
        args.engine_option.append(f"threads={args.threads}")
    settings = ServerSettings(address=args.address, max_frame_bytes=args.max_frame_bytes,
                              curve_keys_dir=args.curve_keys, frame_budget_bytes=int(args.frame_budget_mb * 2**20),
                              budget_policy=args.budget_policy, max_streams=args.max_streams,
                              max_connections=args.max_connections)
    check_exposure(settings.address, settings.curve_keys_dir)  # before loading a model
    settings.check()
    http = http_settings(args)  # likewise: refuses a non-loopback --http address early
    engine = build_engine(args)
    server = InferenceServer(engine, settings)
    server.bind()
    web = start_http(server, http)  # shares the engine and its lock

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %s: shutting down", signal.Signals(signum).name)
        server.stop()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever()
    finally:
        if web is not None:
            web.stop()
        engine.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``m2fp-server`` command."""
    from .main import setup_logging
    p = argparse.ArgumentParser(prog="m2fp-server", description="m2fp-obs inference server (ZeroMQ ROUTER)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    add_arguments(p)
    args = p.parse_args(argv)
    setup_logging(args.log_level)
    from ..engines.base import EngineUnavailable
    from ..web.settings import HttpAddressError
    from ..errors import BadInput
    try:
        return run(args)
    except (EngineUnavailable, ExposureError, FileNotFoundError, HttpAddressError, BadInput) as exc:
        print(f"m2fp-server: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
