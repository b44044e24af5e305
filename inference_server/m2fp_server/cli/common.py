"""Options several subcommands share."""
from __future__ import annotations

import argparse
from typing import Any

from m2fp_protocol import DEFAULT_ADDRESS

from ..errors import BadInput


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", default="auto", help="engine name or 'auto' (default: auto)")
    p.add_argument("--engine-option", "-E", action="append", default=[], metavar="KEY=VALUE",
                   help="engine option, repeatable (e.g. -E variant=landscape)")


def add_server_argument(p: argparse.ArgumentParser, required: bool = False) -> None:
    p.add_argument("--server", required=required, default=None,
                   help=f"address of a running m2fp-server (e.g. {DEFAULT_ADDRESS})")


def engine_options(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise BadInput(f"engine option {pair!r} is not KEY=VALUE")
        k, v = pair.split("=", 1)
        out[k.strip().replace("-", "_")] = _parse_value(v.strip())
    return out


def _parse_value(v: str) -> Any:
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    if v.lower() in ("true", "false"):
        return v.lower() == "true"
    return v


def build_engine(args: argparse.Namespace) -> Any:
    from ..engines import create
    return create(args.engine, **engine_options(args.engine_option))
