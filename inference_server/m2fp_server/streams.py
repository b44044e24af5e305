"""Per-client stream state: settings, their generation, and temporal history.

One OBS source = one DEALER socket = one stream; state never leaks between
streams, and a stream that goes quiet is forgotten after ``idle_s``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

from m2fp_protocol import ClassInfo, StreamConfig

from .postprocess.classes import resolve_keep
from .postprocess.motion import FlowTracker
from .postprocess.temporal import TemporalSmoother


@dataclass
class StreamState:
    key: bytes
    config: StreamConfig = field(default_factory=StreamConfig)
    generation: int = 0
    keep_ids: list[int] = field(default_factory=list)
    smoother: TemporalSmoother = field(default_factory=TemporalSmoother)
    motion: FlowTracker = field(default_factory=FlowTracker)  # flow history for motion compensation
    last_seen: float = field(default_factory=time.monotonic)
    frames: int = 0
    dropped: int = 0

    def apply(self, config: StreamConfig, classes: Sequence[ClassInfo]) -> None:
        """Install new settings (validated against the engine's classes first)."""
        keep_ids = resolve_keep(config.keep, classes)
        self.config = config
        self.keep_ids = keep_ids
        self.generation += 1
        self.smoother.weight = config.smoothing
        self.smoother.reset()


class StreamTable:
    def __init__(self, classes: Sequence[ClassInfo], idle_s: float = 60.0) -> None:
        self._classes = tuple(classes)
        self._streams: dict[bytes, StreamState] = {}
        self.idle_s = idle_s

    def get(self, key: bytes) -> StreamState:
        st = self._streams.get(key)
        if st is None:
            st = StreamState(key)
            st.apply(StreamConfig(), self._classes)
            st.generation = 0
            self._streams[key] = st
        st.last_seen = time.monotonic()
        return st

    def expire(self) -> list[bytes]:
        now = time.monotonic()
        gone = [k for k, s in self._streams.items() if now - s.last_seen > self.idle_s]
        for k in gone:
            del self._streams[k]
        return gone

    def __len__(self) -> int:
        return len(self._streams)
