"""``m2fp keys``: CURVE certificates for a server that listens beyond loopback."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", type=Path, default=Path.home() / ".config" / "m2fp" / "keys",
                   help="where to keep the keys (default ~/.config/m2fp/keys)")
    p.add_argument("--client", default="obs", help="name of the client pair to make (default obs)")


def run(args: argparse.Namespace) -> int:
    from ..security import generate_keys, load_client_keys
    paths = generate_keys(args.dir, args.client)
    keys = load_client_keys(args.dir, args.client)
    print(f"keys in {args.dir}")
    print(f"start the server with:  m2fp-server --address tcp://0.0.0.0:5555 --curve-keys {args.dir}")
    print("in OBS (M2FP Background filter -> Security), paste:")
    print(f"  server public key : {keys['server_public'].decode()}")
    print(f"  client public key : {keys['public'].decode()}")
    print(f"  client secret key : {keys['secret'].decode()}   (keep secret: {paths['client_secret']})")
    return 0
