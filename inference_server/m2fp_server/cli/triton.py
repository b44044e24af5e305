"""``m2fp triton --model-repo DIR``: a local Triton Inference Server (PyTriton) for a repository.

For development, CI and a single box without Docker.  The same directory loads
in the official container (docs/triton.md).  Needs the ``[triton]`` extra.
"""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-repo", required=True, metavar="DIR", help="made by m2fp export --triton-repo DIR")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; Triton has no authentication: expose it only "
                        "on a trusted network)")
    p.add_argument("--grpc-port", type=int, default=8001)
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--metrics-port", type=int, default=8002, help="Prometheus metrics (/metrics)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads shared by the instances (default: all)")
    p.add_argument("--check", action="store_true", help="only read the repository and list its models")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..triton.local import LocalTritonSettings, RepositoryError, describe, serve
    if args.check:
        print(describe(Path(args.model_repo)))
        return 0
    try:
        import pytriton  # noqa: F401
    except ImportError:
        raise RepositoryError("PyTriton is not installed: pip install 'm2fp-obs[triton]' in its own venv "
                              "(docs/triton.md)") from None
    settings = LocalTritonSettings(args.host, args.grpc_port, args.http_port, args.metrics_port, args.threads)
    serve(Path(args.model_repo), settings,
          ready=lambda: print(f"ready: grpc://{args.host}:{args.grpc_port}", flush=True))
    return 0
