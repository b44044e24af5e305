"""Where the plugin's messages go: OBS's script log inside OBS, ``logging`` elsewhere.

OBS names a script's log lines only while that script's own callback runs; from
the filter's C callbacks ``script_log`` reads "[Unknown Script]".  So inside OBS
messages are queued and handed to ``script_log`` from the script's timer
(``flush``), where OBS knows the script: the lines read "[Python: m2fp_obs_filter.py]",
appear in Tools → Scripts → Script Log, and a warning (the fallback hiding a
source) brings that window to the front of the main window.
"""
from __future__ import annotations

import collections
import logging
import threading
from typing import Callable, Deque, Optional, Tuple

_sink: Optional[Callable[[int, str], None]] = None
_deferred = False
_queue: Deque[Tuple[int, str]] = collections.deque(maxlen=1000)
_lock = threading.Lock()
_fallback = logging.getLogger("m2fp_obs")

ERROR, WARNING, INFO, DEBUG = 100, 200, 300, 400  # OBS's LOG_* levels


def set_sink(sink: Optional[Callable[[int, str], None]], deferred: bool = False) -> None:
    """``sink(level, text)``, e.g. obspython.script_log; None restores ``logging``.  ``deferred``: queue
    messages until ``flush`` (called where the sink works: the script's own timer)."""
    global _sink, _deferred
    _sink, _deferred = sink, deferred


def flush() -> None:
    """Hand every queued message to the sink (from a context where it names the script)."""
    while True:
        with _lock:
            if not _queue:
                return
            level, text = _queue.popleft()
        _emit(level, text)


def log(level: int, text: str) -> None:
    if _sink is not None and _deferred:
        with _lock:
            _queue.append((level, text))
        return
    _emit(level, text)


def _emit(level: int, text: str) -> None:
    if _sink is not None:
        try:
            _sink(level, text)
            return
        except Exception:  # the sink is gone (script unloading): fall back
            pass
    _fallback.log({ERROR: logging.ERROR, WARNING: logging.WARNING, INFO: logging.INFO}.get(level, logging.DEBUG),
                  text)


def debug(text: str) -> None:
    log(DEBUG, text)


def info(text: str) -> None:
    log(INFO, text)


def warning(text: str) -> None:
    log(WARNING, text)


def error(text: str) -> None:
    log(ERROR, text)
