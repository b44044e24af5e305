"""Run a slow engine in its own thread so the per-frame path never waits for it.

The server calls the pipeline once per frame.  With a model that needs 300 ms
that call would hold every frame (and every client) for 300 ms.  Wrapped here,
a frame is handed to the worker only when it is idle (newer frames replace a
waiting one), and each call returns at once with the newest finished result,
carried onto the current frame by the stream's :class:`FlowTracker` when motion
compensation is on (held unchanged when it is off).

``min_latency_s`` and ``rate_hz`` make a fast model behave like a slow one on
other hardware (the slow-oracle engine uses them to test the temporal path).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from m2fp_protocol import ClassInfo

from ..postprocess.motion import FlowTracker
from .base import Engine, EngineOutput, EngineUnavailable

log = logging.getLogger(__name__)


#: Streams whose frames a remote model step (Triton) runs at once: enough for its batcher to fill.
REMOTE_WORKERS = 8


@dataclass
class _Result:
    seq: int  # the frame it was computed from (the stream's FlowTracker numbering)
    output: EngineOutput
    started: float
    finished: float


@dataclass
class _StreamSlot:
    waiting: tuple[int, np.ndarray] | None = None  # (seq, rgb) not yet started
    running: bool = False
    running_seq: int = -1  # the frame the worker is on (while ``running``)
    result: _Result | None = None
    first: threading.Event = field(default_factory=threading.Event)
    calls: int = 0  # own frame numbering when no tracker is given


class AsyncRunner:
    """One worker thread running ``engine.infer`` for any number of streams, newest frame first."""

    def __init__(self, engine: Engine, rate_hz: float = 0.0, min_latency_s: float = 0.0,
                 name: str = "m2fp-async", nice: int = 0, workers: int | None = None) -> None:
        """``workers``: frames of different streams in flight at once (default: 1, or
        :data:`REMOTE_WORKERS` for an engine whose calls may overlap, e.g. a Triton model step)."""
        self.engine = engine
        self.min_interval = 1.0 / rate_hz if rate_hz > 0 else 0.0
        self.min_latency_s = min_latency_s
        self._slots: dict[Any, _StreamSlot] = {}
        self._order: list[Any] = []
        self._cond = threading.Condition()
        self._closed = False
        self._last_start = 0.0
        self.nice = nice  # added to this worker thread's nice value (Linux: per thread)
        self.busy_s = 0.0  # time spent inside the engine (for thread-split measurements)
        self.runs = 0  # finished
        self.started = 0
        if workers is None:
            workers = REMOTE_WORKERS if getattr(engine, "concurrent", False) else 1
        self._workers = [threading.Thread(target=self._loop, name=f"{name}-{i}" if i else name, daemon=True)
                         for i in range(max(1, workers))]
        for t in self._workers:
            t.start()

    def slot(self, key: Any) -> _StreamSlot:
        with self._cond:
            return self._slots.setdefault(key, _StreamSlot())

    def submit(self, key: Any, seq: int, rgb: np.ndarray) -> None:
        """Offer a frame: it waits as this stream's next job, replacing an older waiting one."""
        with self._cond:
            s = self._slots.setdefault(key, _StreamSlot())
            s.waiting = (seq, np.array(rgb, copy=True))  # the caller's buffer may be reused
            if key not in self._order:
                self._order.append(key)
            self._cond.notify()

    def latest(self, key: Any) -> _Result | None:
        with self._cond:
            s = self._slots.get(key)
            return None if s is None else s.result

    def forget(self, key: Any) -> None:
        with self._cond:
            self._slots.pop(key, None)
            if key in self._order:
                self._order.remove(key)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for t in self._workers:
            t.join(timeout=5)

    def _take(self) -> tuple[Any, int, np.ndarray] | None:
        with self._cond:
            while not self._closed:
                for i, key in enumerate(self._order):
                    s = self._slots.get(key)
                    if s is not None and s.waiting is not None and not s.running:
                        self._order.append(self._order.pop(i))  # round-robin
                        seq, rgb = s.waiting
                        s.waiting = None
                        s.running = True
                        s.running_seq = seq
                        return key, seq, rgb
                self._cond.wait(0.2)
            return None

    def _loop(self) -> None:
        if self.nice:
            try:  # on Linux a thread id addresses just this thread: the per-frame path keeps priority
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(),
                               os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) + self.nice)
            except (AttributeError, OSError) as exc:  # other systems: same result, less fair
                log.debug("could not lower the worker's priority: %s", exc)
        while True:
            pause = self._last_start + self.min_interval - time.perf_counter()
            if pause > 0:  # rate limit first, so the job taken afterwards is the newest frame
                time.sleep(pause)
            job = self._take()
            if job is None:
                return
            key, seq, rgb = job
            self.started += 1
            started = self._last_start = time.perf_counter()
            try:
                out: EngineOutput | None = self.engine.infer(rgb, key)
            except Exception:  # keep the stream alive on the last good result
                log.exception("slow engine %s failed on a frame", self.engine.name)
                out = None
            spent = time.perf_counter() - started
            self.busy_s += spent
            self.runs += 1
            if self.min_latency_s > spent:
                time.sleep(self.min_latency_s - spent)
            with self._cond:
                s = self._slots.get(key)
                if s is None:
                    continue
                s.running = False
                if out is not None:
                    s.result = _Result(seq, out, started, time.perf_counter())
                    s.first.set()
                if s.waiting is not None:
                    self._cond.notify()


def follow(runner: AsyncRunner, key: Any, tracker: FlowTracker, result_seq: int | None) -> None:
    """Pin the frame the worker is on (so its result can be warped however late) and let go of older ones."""
    slot = runner.slot(key)
    if slot.running and slot.running_seq >= 0:
        tracker.pin(slot.running_seq)
    if result_seq is not None:
        tracker.release(result_seq)


def empty_output(classes: tuple[ClassInfo, ...], shape: tuple[int, int]) -> EngineOutput:
    """Everything background (before the first slow result of a stream)."""
    probs = np.zeros((len(classes), *shape), np.float32)
    probs[0] = 1.0
    return EngineOutput(probs, classes, {"empty": True})


class AsyncEngine(Engine):
    """Any engine made asynchronous: ``infer`` returns at once with the newest result, motion-compensated.

    ``wait_first_s``: the first frame of a stream waits (up to this long) for its
    own result, so a stream never starts with an empty mask.
    """

    wants_motion = True  # the pipeline passes its per-stream FlowTracker to infer_tracked

    def __init__(self, inner: Engine, rate_hz: float = 0.0, min_latency_s: float = 0.0,
                 wait_first_s: float = 10.0) -> None:
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]
        self.description = f"{inner.description} (asynchronous)"  # type: ignore[misc]
        self.wait_first_s = wait_first_s
        self.runner = AsyncRunner(inner, rate_hz, min_latency_s, name=f"m2fp-{inner.name}")

    @property
    def classes(self) -> tuple[ClassInfo, ...]:
        return self.inner.classes

    @property
    def preferred_input(self) -> tuple[int, int]:
        return self.inner.preferred_input

    def offline(self) -> Engine:
        """The same model, synchronous (every frame its own result): the offline reference."""
        return self.inner

    def infer(self, rgb: np.ndarray, stream: Any = None) -> EngineOutput:
        return self.infer_tracked(rgb, stream, None)

    def infer_tracked(self, rgb: np.ndarray, stream: Any, tracker: FlowTracker | None,
                      motion: bool = True) -> EngineOutput:
        slot = self.runner.slot(stream)
        if tracker is None:
            seq = slot.calls
            slot.calls += 1
        else:
            seq = tracker.seq
        self.runner.submit(stream, seq, rgb)
        if not slot.first.is_set() and self.wait_first_s > 0:
            slot.first.wait(self.wait_first_s)
        res = self.runner.latest(stream)
        if motion and tracker is not None:
            follow(self.runner, stream, tracker, None if res is None else res.seq)
        if res is None:
            return empty_output(self.classes, rgb.shape[:2])
        out = res.output
        age = seq - res.seq
        probs = out.probs
        warped = False
        if motion and tracker is not None and age > 0:
            moved = tracker.warp(probs, res.seq)
            if moved is not None:
                probs, warped = moved, True
        return EngineOutput(probs, out.classes, {**out.extra, "age_frames": age, "warped": warped,
                                                 "result_ms": (res.finished - res.started) * 1e3})

    def forget(self, stream: Any) -> None:
        self.runner.forget(stream)
        self.inner.forget(stream)

    def close(self) -> None:
        self.runner.close()
        self.inner.close()

    def info(self) -> dict[str, Any]:
        return {**self.inner.info(), "name": self.name, "model": self.inner.name, "asynchronous": True,
                "rate_hz": 1.0 / self.runner.min_interval if self.runner.min_interval else None,
                "min_latency_ms": self.runner.min_latency_s * 1e3}


class AsyncNamedEngine(AsyncEngine):
    """``--engine async -E engine=m2fp ...``: any registered engine, asynchronous and motion-compensated.

    The other options go to that engine, except ``rate_hz`` / ``delay_ms`` (slow it
    down further, for measurements) and ``wait_first_s``.
    """

    name = "async"

    def __init__(self, engine: str = "m2fp", rate_hz: float = 0.0, delay_ms: float = 0.0,
                 wait_first_s: float = 10.0, **options: Any) -> None:
        from .registry import create
        if engine in ("async", "auto"):
            raise EngineUnavailable(f"-E engine= must name a concrete engine, not {engine!r}")
        super().__init__(create(engine, **options), rate_hz, delay_ms / 1e3, wait_first_s)
        self.name = f"async-{engine}"  # type: ignore[misc]
