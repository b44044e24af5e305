"""What ``configuration.json`` says about the model: class names and the architecture.

Read with plain ``json`` so an engine that runs an export never imports torch.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import M2fpError
from ...weights import CONFIG_FILE


class ConfigError(M2fpError, ValueError):
    """configuration.json is missing a field M2FP needs."""


@dataclass(frozen=True)
class M2FPConfig:
    model_dir: Path
    #: Parsing classes in output-channel order (excludes the instance-only "Human").
    class_names: tuple[str, ...]
    #: Classes the decoder predicts (without "no object"); >= len(class_names).
    decoder_classes: int
    single_human: bool
    model_args: dict[str, Any] = field(repr=False, default_factory=dict)

    def build_kwargs(self) -> dict[str, Any]:
        """Arguments for ModelScope's ``M2FP(model_dir, **kwargs)`` (fresh copies: it mutates them)."""
        args = copy.deepcopy(self.model_args)
        args.pop("type", None)
        args["pretrained"] = False  # weights are loaded by checkpoint.load_weights
        return args


def read_config(model_dir: str | Path) -> M2FPConfig:
    path = Path(model_dir) / CONFIG_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    model = raw.get("model")
    if not isinstance(model, dict):
        raise ConfigError(f"{path} has no 'model' section")
    for key in ("backbone", "encoder", "decoder"):
        if not isinstance(model.get(key), dict):
            raise ConfigError(f"{path}: model.{key} is missing; is this an M2FP model?")
    names = model.get("classes")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{path}: model.classes must be the list of class names")
    decoder_classes = int(model["decoder"].get("num_classes", len(names)))
    num_parsing = model.get("num_parsing")
    count = int(num_parsing) if num_parsing else min(len(names), decoder_classes)
    if count > min(len(names), decoder_classes):
        raise ConfigError(f"{path}: num_parsing={count} but only {len(names)} class names and "
                          f"{decoder_classes} decoder classes")
    return M2FPConfig(Path(model_dir), tuple(names[:count]), decoder_classes,
                      bool(model.get("single_human", False)), model)
