"""Engine names → classes, imported lazily so ``m2fp --help`` never loads a model.

To add an engine: write ``engines/<name>.py`` with an :class:`Engine` subclass and
add one line to ``ENGINES``.  ``auto`` (``engines.auto``) takes the best engine
that can be built here and keeps up with the stream, by a short cached self-benchmark.
"""
from __future__ import annotations

import importlib
import logging
from typing import Any

from .base import Engine, EngineUnavailable

log = logging.getLogger(__name__)

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


def create(name: str = "auto", **options: Any) -> Engine:
    """Build an engine by name; ``auto`` picks the best one that keeps up here (``engines.auto``)."""
    if name == "auto":
        from .auto import choose
        return choose(options)[0]
    engine = engine_class(name)(**options)
    log.info("engine %s: %s", engine.name, engine.description)
    return engine
