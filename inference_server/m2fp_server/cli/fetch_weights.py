"""``m2fp fetch-weights``: download M2FP with ModelScope's snapshot_download (progress bar per file).

Goes into ModelScope's cache (``MODELSCOPE_CACHE``, default ``~/.cache/modelscope``)
unless ``--local-dir`` is given.  Files already there are not downloaded again.
"""
from __future__ import annotations

import argparse

from ..errors import BadInput
from ..weights import DEFAULT_MODEL, MODELS, cache_root


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", choices=sorted(MODELS), default=DEFAULT_MODEL,
                   help="multi: several people, CIHP classes (default); single: one person, LIP classes")
    p.add_argument("--revision", default=None,
                   help="hub revision (default: the pinned one: "
                        + ", ".join(f"{k} {v.revision}" for k, v in MODELS.items()) + ")")
    p.add_argument("--local-dir", "--model-dir", dest="local_dir", default=None,
                   help="download into this folder instead of the ModelScope cache")


def run(args: argparse.Namespace) -> int:
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
