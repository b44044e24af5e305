"""``m2fp info``: what a server (or this machine) runs."""
from __future__ import annotations

import argparse
import json

from .common import add_engine_arguments, add_server_argument, build_engine


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_server_argument(p)
    add_engine_arguments(p)
    p.add_argument("--json", action="store_true", help="print the raw INFO JSON")


def run(args: argparse.Namespace) -> int:
    if args.server:
        from ..client import MaskClient
        with MaskClient(args.server, timeout_s=5.0) as c:
            info = c.hello("m2fp-info")
    else:
        from ..server import InferenceServer
        engine = build_engine(args)
        info = InferenceServer(engine).info()
        engine.close()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    eng = info["engine"]
    print(f"server version : {info['server_version']} (protocol {info['protocol_version']})")
    print(f"engine         : {eng['name']} - {eng.get('description', '')}")
    print(f"preferred input: {info['preferred_input'][0]}x{info['preferred_input'][1]} (fit inside, keep aspect)")
    print("classes        : " + ", ".join(f"{c['id']}:{c['name']}" for c in info["classes"]))
    return 0
