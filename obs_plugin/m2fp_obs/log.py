"""Where the plugin's messages go: OBS's script log inside OBS, ``logging`` elsewhere."""
from __future__ import annotations

import logging
from typing import Callable, Optional

_sink: Optional[Callable[[int, str], None]] = None
_fallback = logging.getLogger("m2fp_obs")

ERROR, WARNING, INFO, DEBUG = 100, 200, 300, 400  # OBS's LOG_* levels


def set_sink(sink: Optional[Callable[[int, str], None]]) -> None:
    """``sink(level, text)``, e.g. obspython.script_log; None restores ``logging``."""
    global _sink
    _sink = sink


def log(level: int, text: str) -> None:
    if _sink is not None:
        try:
            _sink(level, text)
            return
        except Exception:  # the sink is gone (script unloading): fall back
            pass
    _fallback.log({ERROR: logging.ERROR, WARNING: logging.WARNING, INFO: logging.INFO}.get(level, logging.DEBUG),
                  text)


def info(text: str) -> None:
    log(INFO, text)


def warning(text: str) -> None:
    log(WARNING, text)


def debug(text: str) -> None:
    log(DEBUG, text)


def error(text: str) -> None:
    log(ERROR, text)
