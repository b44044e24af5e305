"""``m2fp``: one subcommand per module; heavy imports happen inside each command."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .. import __version__

#: subcommand -> module (each module has ``add_arguments(parser)`` and ``run(args) -> int``)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("serve", "run the inference server (same as m2fp-server)"),
    "parse": ("parse", "segment an image or a video"),
    "replay": ("replay", "play a clip through a running server in real time, as OBS would"),
    "info": ("info", "show the server's (or the local) engine and classes"),
    "bench": ("bench", "measure masks per second and round-trip latency"),
    "fetch-weights": ("fetch_weights", "download the M2FP weights (ModelScope, CC BY-NC 4.0)"),
    "export": ("export", "export M2FP to OpenVINO / ONNX Runtime for one input size"),
    "triton": ("triton", "serve a Triton model repository locally through PyTriton (extra [triton])"),
    "eval": ("eval", "score engines on ground-truth clips: offline and live IoU, flicker, mask age"),
    "keys": ("keys", "make CURVE keys for a server reachable from other machines"),
    "soak": ("soak", "run two 30 fps clients against a real server; report memory, descriptors, drops"),
    "doctor": ("doctor", "check OBS, its Python, pyzmq and the script path; say what is missing"),
    "obs-bench": ("obs_bench", "measure the OBS filter's per-frame cost inside a real headless OBS"),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="m2fp", description="m2fp-obs: live human parsing for OBS Studio")
    p.add_argument("--version", action="version", version=f"m2fp-obs {__version__}")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(f"{__package__}.{module}").add_arguments(sp)
        sp.set_defaults(_module=module)
    return p


def setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level), stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_module", None):
        parser.print_help()
        return 2
    setup_logging(args.log_level)
    mod = importlib.import_module(f"{__package__}.{args._module}")
    try:
        return int(mod.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # user-facing: one clear line, details with --log-level DEBUG
        from ..engines.base import EngineUnavailable
        from ..client import ServerError, ServerTimeout
        from ..security import ExposureError
        if isinstance(exc, (EngineUnavailable, ServerError, ServerTimeout, FileNotFoundError, ValueError,
                            ExposureError)):
            logging.getLogger("m2fp").debug("details", exc_info=True)
            print(f"m2fp {args.command}: error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
