"""Per-client stream state: settings, their generation, and temporal history.

One OBS source = one DEALER socket = one stream; state never leaks between
streams, and a stream that goes quiet is forgotten after ``idle_s``.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Sequence

from m2fp_protocol import ClassInfo, ErrorCode, ProtocolError, StreamConfig

from .engines.base import StreamContext
from .postprocess.classes import resolve_keep
from .postprocess.mask_motion import MaskMotion
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
    mask_motion: MaskMotion = field(default_factory=MaskMotion)  # the people's motion sent with each mask
    #: client frames from the previous frame that ran to this one (its timestamps; 0: not known yet).
    #: Clients that send no timestamps (files, the offline evaluation) run every frame: 1.
    frame_step: int = 1
    #: the engine's own state for this stream (``Engine.new_stream``, made at the first frame):
    #: held only here, so dropping the stream drops it
    engine_state: StreamContext | None = None
    last_seen: float = field(default_factory=time.monotonic)
    frames: int = 0
    dropped: int = 0
    gone: bool = False  # the client disconnected: its parked or running frame is not answered
    #: generation of the settings the worker actually uses (``generation`` is the newest asked for)
    applied_generation: int = 0
    _pending: tuple[StreamConfig, list[int], int] | None = None
    #: the client's last few frame-to-frame intervals (its timestamps), for :meth:`frame_interval`
    _gaps: list[float] = field(default_factory=list, repr=False)
    _last_stamp_us: int | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def note_stamp(self, timestamp_us: int) -> None:
        """The client's capture time of the frame about to run (worker thread)."""
        last, self._last_stamp_us = self._last_stamp_us, timestamp_us
        self.frame_step = 0
        if last is not None and 0 < timestamp_us - last < 1_000_000:
            gap = (timestamp_us - last) / 1e6
            self._gaps = [*self._gaps[-7:], gap]
            interval = self.frame_interval()
            if interval > 0:
                self.frame_step = max(1, round(gap / interval))

    def frame_interval(self) -> float:
        """The client's frame interval in seconds (0: not known yet).

        The shortest of the last 8 gaps: frames the scheduler dropped (the newest wins) make some
        gaps two or three intervals long, never shorter than one.
        """
        return min(self._gaps) if len(self._gaps) >= 3 else 0.0

    def close(self) -> None:
        """The stream ends: the engine lets go of anything still queued for it."""
        if self.engine_state is not None:
            self.engine_state.close()
            self.engine_state = None

    def apply(self, config: StreamConfig, classes: Sequence[ClassInfo]) -> None:
        """Install new settings now (single-threaded users: CLI, evaluation)."""
        self.request(config, classes)
        self.settle()

    def request(self, config: StreamConfig, classes: Sequence[ClassInfo]) -> int:
        """Validate and queue new settings; return their generation.

        Called by the server's I/O thread while the worker may be processing this
        stream: the settings take effect at the worker's next :meth:`settle`, so a
        frame is never half processed with old settings and half with new ones.
        """
        keep_ids = resolve_keep(config.keep, classes)  # raises BAD_CONFIG before anything changes
        with self._lock:
            self.generation += 1
            self._pending = (config, keep_ids, self.generation)
            return self.generation

    def latest_config(self) -> StreamConfig:
        """The newest settings asked for (queued or in use): what a partial CONFIG merges into."""
        with self._lock:
            return self._pending[0] if self._pending is not None else self.config

    def settle(self) -> int:
        """Install queued settings (worker thread, before a frame); return the generation in use."""
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            config, keep_ids, gen = pending
            self.config = config
            self.keep_ids = keep_ids
            self.smoother.weight = config.smoothing
            self.smoother.reset()
            self.applied_generation = gen
        return self.applied_generation


class StreamTable:
    """Live streams, at most ``max_streams``: each one holds temporal history and engine state, so a
    client that opens connection after connection cannot grow the server without bound."""

    def __init__(self, classes: Sequence[ClassInfo], idle_s: float = 60.0, max_streams: int = 256) -> None:
        self._classes = tuple(classes)
        self._streams: dict[bytes, StreamState] = {}
        self.idle_s = idle_s
        self.max_streams = max_streams

    def get(self, key: bytes) -> StreamState:
        st = self._streams.get(key)
        if st is None:
            if len(self._streams) >= self.max_streams:
                raise ProtocolError(ErrorCode.SERVER_BUSY, f"the server serves at most {self.max_streams} "
                                    "clients at once; try again when one has left")
            st = StreamState(key)
            st.apply(StreamConfig(), self._classes)
            st.generation = st.applied_generation = 0
            self._streams[key] = st
        st.last_seen = time.monotonic()
        return st

    def expire(self) -> list[bytes]:
        now = time.monotonic()
        gone = [k for k, s in self._streams.items() if now - s.last_seen > self.idle_s]
        for k in gone:
            self._streams.pop(k).close()
        return gone

    def remove(self, key: bytes) -> StreamState | None:
        return self._streams.pop(key, None)

    def __len__(self) -> int:
        return len(self._streams)
