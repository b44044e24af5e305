"""``m2fp``: one subcommand per module, imported only when that subcommand is asked for.

``m2fp --help`` and ``m2fp --version`` import none of them (the table below holds
their help lines), so they answer at once; heavy imports happen inside each command.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from m2fp_protocol.errors import ProtocolError

from .. import __version__
from ..errors import M2fpError

#: subcommand, its module (``add_arguments(parser)`` and ``run(args) -> int``), its help line; as text so
#: the help needs no import
_TABLE = """
serve          serve          run the inference server (same as m2fp-server)
parse          parse          segment an image or a video
replay         replay         play a clip through a running server in real time, as OBS would
info           info           show the server's (or the local) engine and classes
bench          bench          measure masks per second and round-trip latency
fetch-weights  fetch_weights  download the M2FP weights (ModelScope, CC BY-NC 4.0)
tune-rvm       tune_rvm       measure RVM's runtimes, precisions and sizes here; keep the fastest accurate one
export         export         export M2FP to OpenVINO / ONNX Runtime for one input size
eval           eval           score engines on ground-truth clips: offline and live IoU, flicker, mask age
triton         triton         serve a Triton model repository locally through PyTriton (extra [triton])
keys           keys           make CURVE keys for a server reachable from other machines
soak           soak           run two 30 fps clients against a real server; report memory, descriptors, drops
doctor         doctor         check OBS, its Python, pyzmq and the script path; say what is missing
obs-bench      obs_bench      measure the OBS filter's per-frame cost inside a real headless OBS
"""
COMMANDS: dict[str, tuple[str, str]] = {
    name: (module, help_text) for name, module, help_text in (row.split(None, 2) for row in _TABLE.strip().splitlines())
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported to add its arguments."""
    p = argparse.ArgumentParser(prog="m2fp", description="m2fp-obs: live human parsing for OBS Studio")
    p.add_argument("--version", action="version", version=f"m2fp-obs {__version__}")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(f"{__package__}.{module}").add_arguments(sp)
        sp.set_defaults(_module=module)
    return p


def _command(argv: list[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word that is one), skipping ``--log-level``'s value."""
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word == "--log-level":
            skip = True
        elif word in COMMANDS:
            return word
        elif not word.startswith("-"):
            return None
    return None


def setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level), stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(_command(argv))
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
    except (M2fpError, ProtocolError) as exc:  # each package's one base: a clear line, details at DEBUG
        logging.getLogger("m2fp").debug("details", exc_info=True)
        print(f"m2fp {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
