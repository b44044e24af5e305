"""The setting ``m2fp tune-rvm`` measured for this CPU, kept in the cache beside the model.

The engine reads it at start; a choice measured on another CPU (other flags), or for bf16 on a CPU
without bf16, is ignored and the engine's default is used.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..cpu import flags_summary, has_bf16

log = logging.getLogger(__name__)

RUNTIMES = ("onnxruntime", "openvino")
PRECISIONS = ("fp32", "bf16", "int8")


@dataclass(frozen=True)
class RVMSetting:
    """One way to run the model: what ``m2fp tune-rvm`` measures and the engine runs."""

    runtime: str = "onnxruntime"
    precision: str = "fp32"
    width: int = 512  # model input width; the height follows each stream's aspect
    downsample: float = 0.5  # RVM's downsample_ratio: the backbone sees width * downsample

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise ValueError(f"unknown RVM runtime {self.runtime!r}; choose from {', '.join(RUNTIMES)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown RVM precision {self.precision!r}; choose from {', '.join(PRECISIONS)}")
        if not 0.05 <= self.downsample <= 1.0:
            raise ValueError(f"RVM downsample {self.downsample} is outside 0.05..1")
        if not 64 <= self.width <= 1920:
            raise ValueError(f"RVM width {self.width} is outside 64..1920")

    @property
    def label(self) -> str:
        return f"{self.runtime}/{self.precision} {self.width}px ds{self.downsample:g}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)



def choice_file() -> Path:
    from ..rvm_weights import cache_dir
    return cache_dir() / "tuned.json"


def runtime_versions() -> dict[str, str]:
    out = {}
    for mod in ("onnxruntime", "openvino"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            pass
    return out


def load_choice(path: Path | None = None) -> RVMSetting | None:
    """The measured setting for this CPU, or None (none measured, another CPU, unreadable)."""
    path = path or choice_file()
    try:
        data = json.loads(path.read_text())
        if data.get("cpu_flags") != flags_summary():
            log.info("rvm: %s was measured on another CPU (%s); using the default", path, data.get("cpu_flags"))
            return None
        setting = RVMSetting(**data["choice"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("rvm: ignoring %s (%s)", path, exc)
        return None
    if setting.precision == "bf16" and not has_bf16():
        return None
    return setting


def save_choice(setting: RVMSetting, report: dict[str, Any], path: Path | None = None) -> Path:
    path = path or choice_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"choice": setting.to_json(), "cpu_flags": flags_summary(), "versions": runtime_versions(),
            "measured": time.strftime("%Y-%m-%d %H:%M:%S"), **report}
    tmp = path.with_suffix(".part")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)
    return path
