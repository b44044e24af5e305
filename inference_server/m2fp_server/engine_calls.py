"""The engine as the server's workers see it: every call holds the one engine lock, nothing else does.

Why: with one lock around the whole per-frame pipeline, a 4K frame's post-processing
(colour conversion, resizing to a 4K mask: a third of a second here) kept every other
client waiting, so one client's big frames set everyone's latency.  With the lock around
the engine calls only, two workers overlap one frame's post-processing with another
client's inference.  Engine outputs are not reused by the next call (the HTTP front end
already relies on that), so reading them after the lock is released is safe.
"""
from __future__ import annotations

import functools
import threading
from typing import Any


class LockedEngineCalls:
    def __init__(self, engine: Any, lock: threading.Lock) -> None:
        self._engine = engine
        self._lock = lock

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._engine, name)
        if not callable(attr):
            return attr

        @functools.wraps(attr)
        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attr(*args, **kwargs)
        return locked

    @property
    def unwrapped(self) -> Any:
        return self._engine
