"""A model folder with M2FP's architecture and random weights.

Speed does not depend on the weight values, so the benchmark runs on this when
the real weights are absent, and the tests load it through the same code users
run (configuration.json + pytorch_model.pt as ModelScope lays them out).  The
architecture is M2FP-R101 as described in the M2FP paper and ModelScope's
model card: DeepLab-stem ResNet-101, 6-layer MSDeformAttn pixel decoder,
9-layer transformer decoder with 100 queries.  The real configuration.json
may differ in details; the engine always reads the one it is given.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from m2fp_protocol.classes import CIHP_NAMES

from ...weights import CONFIG_FILE, WEIGHTS_FILE

LIP_NAMES = ("Background", "Hat", "Hair", "Glove", "Sunglasses", "UpperClothes", "Dress", "Coat",
             "Socks", "Pants", "Jumpsuits", "Scarf", "Skirt", "Face", "Left-arm", "Right-arm",
             "Left-leg", "Right-leg", "Left-shoe", "Right-shoe")


def architecture_config(kind: str = "multi", depth: int = 101, enc_layers: int = 6, dec_layers: int = 10
                        ) -> dict[str, Any]:
    """configuration.json contents for M2FP (smaller depths/layers only for quick tests)."""
    multi = kind == "multi"
    names = list(CIHP_NAMES) + ["Human"] if multi else list(LIP_NAMES)
    model: dict[str, Any] = {
        "type": "m2fp",
        "backbone": {"out_features": ["res2", "res3", "res4", "res5"], "depth": depth, "num_groups": 1,
                     "width_per_group": 64, "norm": "BN", "stem_out_channels": 128,
                     "res2_out_channels": 256, "stride_in_1x1": False, "res4_dilation": 1,
                     "res5_dilation": 1, "res5_multi_grid": [1, 1, 1]},
        "encoder": {"in_features": ["res2", "res3", "res4", "res5"], "transformer_dropout": 0.0,
                    "transformer_nheads": 8, "transformer_dim_feedforward": 1024,
                    "transformer_enc_layers": enc_layers, "conv_dim": 256, "mask_dim": 256,
                    "transformer_in_features": ["res3", "res4", "res5"], "common_stride": 4},
        "decoder": {"num_classes": len(names), "hidden_dim": 256, "num_queries": 100, "nheads": 8,
                    "dim_feedforward": 2048, "dec_layers": dec_layers, "pre_norm": False, "mask_dim": 256,
                    "enforce_input_project": False},
        "classes": names,
        "single_human": not multi,
    }
    if multi:
        model.update(num_parsing=len(CIHP_NAMES), parsing_on=True, semantic_on=False)
    else:
        model.update(input_single_human={"sizes": [473, 473]})
    return {"framework": "pytorch", "task": "image-segmentation",
            "pipeline": {"type": "m2fp-image-human-parsing"}, "model": model}


def write_random_model_dir(path: str | Path, kind: str = "multi", seed: int = 0, **arch: Any) -> Path:
    """Write configuration.json and a random pytorch_model.pt ({'model': state_dict}) into ``path``."""
    import torch

    from .config import read_config
    from .network import construct

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(json.dumps(architecture_config(kind, **arch), indent=2), encoding="utf-8")
    torch.manual_seed(seed)
    model = construct(read_config(out))
    torch.save({"model": model.state_dict()}, out / WEIGHTS_FILE)
    return out
