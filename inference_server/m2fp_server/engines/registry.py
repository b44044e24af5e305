"""Engine names → classes, imported lazily so ``m2fp --help`` never loads a model.

To add an engine: write ``engines/<name>.py`` with an :class:`Engine` subclass and
add one line to ``ENGINES`` (``engines/names.py``).  ``auto`` (``engines.auto``) takes the best engine
that can be built here and keeps up with the stream, by a short cached self-benchmark.
"""
from __future__ import annotations

import logging
from typing import Any

from .base import Engine
from .names import ENGINES as ENGINES  # re-exported: the one table
from .names import available as available
from .names import engine_class as engine_class

log = logging.getLogger(__name__)


def create(name: str = "auto", **options: Any) -> Engine:
    """Build an engine by name; ``auto`` picks the best one that keeps up here (``engines.auto``)."""
    if name == "auto":
        from .auto import choose
        return choose(options)[0]
    engine = engine_class(name)(**options)
    log.info("engine %s: %s", engine.name, engine.description)
    return engine
