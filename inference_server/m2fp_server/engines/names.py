"""The engine names and the classes behind them, imported only when asked for (``m2fp --help`` loads no model).

A leaf module, so that ``auto`` can build its candidates and ``registry`` can build ``auto`` without
importing each other.
"""
from __future__ import annotations

import importlib

from .base import Engine, EngineUnavailable

#: name -> "module:Class" (relative to this package)
ENGINES: dict[str, str] = {
    "m2fp": "m2fp.engine:M2FPEngine",  # needs `pip install m2fp-obs[m2fp]` and `m2fp fetch-weights`
    "selfie": "selfie:SelfieEngine",
    "embedded": "embedded:EmbeddedEngine",  # selfie + pose models chosen per stream by framing
    "rvm": "rvm:RVMEngine",  # RobustVideoMatting (GPL-3.0): `m2fp fetch-weights rvm`, recurrent per stream
    "hybrid": "hybrid:HybridEngine",  # fast silhouette every frame + M2FP parts, asynchronous
    "async": "async_worker:AsyncNamedEngine",  # -E engine=NAME: any engine in its own worker, motion-compensated
}



def available() -> list[str]:
    return sorted(ENGINES)


def engine_class(name: str) -> type[Engine]:
    try:
        target = ENGINES[name]
    except KeyError:
        raise EngineUnavailable(f"unknown engine {name!r}; choose from: auto, {', '.join(available())}") from None
    module, cls = target.split(":")
    mod = importlib.import_module(f"{__package__}.{module}")
    return getattr(mod, cls)
