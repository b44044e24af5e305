"""Engine names → classes, imported lazily so ``m2fp --help`` never loads a model.

To add an engine: write ``engines/<name>.py`` with an :class:`Engine` subclass and
add one line to ``ENGINES``.  ``auto`` walks ``AUTO_ORDER`` and takes the first
engine that can be built, logging why the others were skipped.
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
    "hybrid": "hybrid:HybridEngine",  # fast silhouette every frame + M2FP parts, asynchronous
    "async": "async_worker:AsyncNamedEngine",  # -E engine=NAME: any engine in its own worker, motion-compensated
}

#: What ``--engine auto`` tries, best first.
AUTO_ORDER: list[str] = ["hybrid", "m2fp", "embedded", "selfie"]  # hybrid: needs the M2FP weights


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
    """Build an engine by name; ``auto`` picks the best one that works here."""
    if name != "auto":
        engine = engine_class(name)(**options)
        log.info("engine %s: %s", engine.name, engine.description)
        return engine
    reasons = []
    for candidate in AUTO_ORDER:
        try:
            engine = engine_class(candidate)(**options)
        except EngineUnavailable as exc:
            reasons.append(f"{candidate}: {exc}")
            log.info("auto: skipping %s (%s)", candidate, exc)
            continue
        why = f"; skipped {'; '.join(reasons)}" if reasons else " (first choice)"
        log.info("auto: using engine %s%s", engine.name, why)
        return engine
    raise EngineUnavailable("no engine could be started: " + "; ".join(reasons))
