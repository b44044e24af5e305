"""Run a slow engine in its own thread so the per-frame path never waits for it.

The server calls the pipeline once per frame.  With a model slower than a frame,
that call would hold every frame (and every client) for as long.  Wrapped here,
a frame is handed to the worker only when it is idle (newer frames replace a
waiting one), and each call returns at once with the newest finished result,
carried onto the current frame by the stream's :class:`FlowTracker` when motion
compensation is on (held unchanged when it is off).

``min_latency_s`` and ``rate_hz`` make a fast model behave like a slow one on
other hardware (the slow-oracle engine uses them to test the temporal path).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from m2fp_protocol import ClassInfo

from ..cpu import lower_thread_priority
from ..postprocess.motion import FlowTracker
from .base import Engine, EngineOutput, EngineUnavailable, StreamContext

log = logging.getLogger(__name__)


#: Streams whose frames a remote model step (Triton) runs at once: enough for its batcher to fill.
REMOTE_WORKERS = 8


@dataclass
class _Result:
    job: int  # the runner's number for the submitted frame
    seq: int  # the frame it was computed from (the stream's FlowTracker numbering)
    output: EngineOutput
    started: float
    finished: float


@dataclass(eq=False)
class RunnerSlot:
    """One stream's place in a runner: its waiting frame, its newest result, the model's own stream state.

    Only the stream's context holds it; the runner refers to it only while a frame of
    it waits or runs, so a stream that is dropped leaves nothing behind in the runner.
    """

    inner: StreamContext  # the wrapped model's per-stream state
    waiting: tuple[int, int, np.ndarray] | None = None  # (job, seq, rgb) not yet started
    running: bool = False
    running_seq: int = -1  # the frame the worker is on (while ``running``)
    result: _Result | None = None
    failed_job: int = -1  # the newest job the model raised on
    failure: BaseException | None = None
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
        self._queue: list[RunnerSlot] = []  # streams with a waiting frame, in turn order
        self._cond = threading.Condition()
        self._closed = False
        self._last_start = 0.0
        self._jobs = 0
        self.nice = nice  # added to this worker thread's nice value (Linux: per thread)
        self.busy_s = 0.0  # time spent inside the engine (for thread-split measurements)
        self.runs = 0  # finished
        self.started = 0
        if workers is None:
            workers = REMOTE_WORKERS if engine.concurrent else 1
        self._workers = [threading.Thread(target=self._loop, name=f"{name}-{i}" if i else name, daemon=True)
                         for i in range(max(1, workers))]
        for t in self._workers:
            t.start()

    def new_slot(self) -> RunnerSlot:
        return RunnerSlot(self.engine.new_stream())

    @property
    def queued(self) -> int:
        """Streams with a frame waiting or running (0 once every stream's work is done or dropped)."""
        with self._cond:
            return len(self._queue)

    def submit(self, slot: RunnerSlot, seq: int, rgb: np.ndarray) -> int:
        """Offer a frame: it waits as this stream's next job, replacing an older waiting one; returns its job."""
        with self._cond:
            self._jobs += 1
            slot.waiting = (self._jobs, seq, np.array(rgb, copy=True))  # the caller's buffer may be reused
            if slot not in self._queue:
                self._queue.append(slot)
            self._cond.notify_all()
            return self._jobs

    def latest(self, slot: RunnerSlot) -> _Result | None:
        with self._cond:
            return slot.result

    def wait_any(self, slot: RunnerSlot, timeout_s: float) -> None:
        """Wait (up to ``timeout_s``) until the stream has its first result or its first failure."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while slot.result is None and slot.failure is None and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(left)

    def wait_job(self, slot: RunnerSlot, job: int, timeout_s: float | None) -> _Result:
        """The result of ``job``; raises the model's exception if it failed, TimeoutError if it took too long."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while True:
                if slot.result is not None and slot.result.job == job:
                    return slot.result
                if slot.failed_job == job and slot.failure is not None:
                    raise slot.failure
                if slot.result is not None and slot.result.job > job or self._closed:
                    raise TimeoutError(f"{self.engine.name}: frame replaced or worker closed before it ran")
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"the {self.engine.name} engine stayed busy for {timeout_s:.0f} s")
                self._cond.wait(0.2 if left is None else min(left, 0.2))

    def drop(self, slot: RunnerSlot) -> None:
        """The stream is gone: its waiting frame never runs, and the model's stream state is released."""
        with self._cond:
            slot.waiting = None
            if slot in self._queue and not slot.running:
                self._queue.remove(slot)
        slot.inner.close()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for t in self._workers:
            t.join(timeout=5)

    def _take(self) -> tuple[RunnerSlot, int, int, np.ndarray] | None:
        with self._cond:
            while not self._closed:
                for i, slot in enumerate(self._queue):
                    if slot.waiting is not None and not slot.running:
                        self._queue.append(self._queue.pop(i))  # round-robin
                        job, seq, rgb = slot.waiting
                        slot.waiting = None
                        slot.running = True
                        slot.running_seq = seq
                        return slot, job, seq, rgb
                self._cond.wait(0.2)
            return None

    def _loop(self) -> None:
        if self.nice:
            lower_thread_priority(self.nice, "the worker")
        while True:
            pause = self._last_start + self.min_interval - time.perf_counter()
            if pause > 0:  # rate limit first, so the job taken afterwards is the newest frame
                time.sleep(pause)
            taken = self._take()
            if taken is None:
                return
            slot, job, seq, rgb = taken
            with self._cond:
                self.started += 1
            started = self._last_start = time.perf_counter()
            failure: BaseException | None = None
            try:
                out: EngineOutput | None = self.engine.infer(rgb, slot.inner)
            except Exception as exc:  # keep the stream alive on the last good result
                log.exception("slow engine %s failed on a frame", self.engine.name)
                out, failure = None, exc
            spent = time.perf_counter() - started
            if self.min_latency_s > spent:
                time.sleep(self.min_latency_s - spent)
            with self._cond:
                self.busy_s += spent  # under the lock: several workers may finish at once
                self.runs += 1
                slot.running = False
                if out is not None:
                    slot.result = _Result(job, seq, out, started, time.perf_counter())
                else:
                    slot.failed_job, slot.failure = job, failure
                if slot.waiting is None and slot in self._queue:
                    self._queue.remove(slot)
                self._cond.notify_all()


def follow(runner: AsyncRunner, slot: RunnerSlot, tracker: FlowTracker, result_seq: int | None) -> None:
    """Pin the frame the worker is on (so its result can be warped however late) and let go of older ones."""
    if slot.running and slot.running_seq >= 0:
        tracker.pin(slot.running_seq)
    if result_seq is not None:
        tracker.release(result_seq)


def empty_output(classes: tuple[ClassInfo, ...], shape: tuple[int, int]) -> EngineOutput:
    """Everything background (before the first slow result of a stream)."""
    probs = np.zeros((len(classes), *shape), np.float32)
    probs[0] = 1.0
    return EngineOutput(probs, classes, 0, {"empty": True})


@dataclass(eq=False)
class AsyncStream(StreamContext):
    """An asynchronous engine's stream: its place in the worker (which holds the model's own state)."""

    runner: AsyncRunner
    slot: RunnerSlot

    def close(self) -> None:
        self.runner.drop(self.slot)


def warp_result(res: _Result, seq: int, motion: FlowTracker | None) -> tuple[np.ndarray, int, bool]:
    """(probabilities carried onto frame ``seq`` when the tracker can, age in frames, warped?)."""
    age = seq - res.seq
    probs = res.output.probs
    if motion is not None and age > 0:
        moved = motion.warp(probs, res.seq)
        if moved is not None:
            return moved, age, True
    return probs, age, False


class AsyncEngine(Engine):
    """Any engine made asynchronous: ``infer`` returns at once with the newest result, motion-compensated.

    ``wait_first_s``: the first frame of a stream waits (up to this long) for its
    own result, so a stream never starts with an empty mask.
    """

    wants_motion = True  # the pipeline passes its per-stream FlowTracker to infer
    own_worker = True  # infer_now only waits for the runner

    def __init__(self, inner: Engine, rate_hz: float = 0.0, min_latency_s: float = 0.0,
                 wait_first_s: float = 10.0) -> None:
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]  # an instance takes its model's name
        self.description = f"{inner.description} (asynchronous)"  # type: ignore[misc]  # likewise
        self.wait_first_s = wait_first_s
        self.runner = AsyncRunner(inner, rate_hz, min_latency_s, name=f"m2fp-{inner.name}")

    @property
    def classes(self) -> tuple[ClassInfo, ...]:
        return self.inner.classes

    @property
    def preferred_input(self) -> tuple[int, int]:
        return self.inner.preferred_input

    @property
    def slow_runs(self) -> int | None:
        return self.runner.runs

    def new_stream(self) -> AsyncStream:
        return AsyncStream(self.runner, self.runner.new_slot())

    def _stream(self, stream: StreamContext | None) -> AsyncStream:
        if stream is None:
            return self.new_stream()
        assert isinstance(stream, AsyncStream), "a context from another engine"
        return stream

    def infer(self, rgb: np.ndarray, stream: StreamContext | None = None,
              motion: FlowTracker | None = None) -> EngineOutput:
        ctx = self._stream(stream)
        slot = ctx.slot
        if motion is None:
            seq = slot.calls
            slot.calls += 1
        else:
            seq = motion.seq
        self.runner.submit(slot, seq, rgb)
        if slot.result is None and self.wait_first_s > 0:
            self.runner.wait_any(slot, self.wait_first_s)
        res = self.runner.latest(slot)
        if motion is not None:
            follow(self.runner, slot, motion, None if res is None else res.seq)
        if res is None:
            return empty_output(self.classes, rgb.shape[:2])
        probs, age, warped = warp_result(res, seq, motion)
        return EngineOutput(probs, res.output.classes, age, {**res.output.extra, "warped": warped,
                                                             "result_ms": (res.finished - res.started) * 1e3})

    def infer_now(self, rgb: np.ndarray, stream: StreamContext | None = None,
                  timeout_s: float | None = None) -> EngineOutput:
        """This frame through the worker (the model never runs in two threads), waiting for its result."""
        ctx = self._stream(stream)
        job = self.runner.submit(ctx.slot, ctx.slot.calls, rgb)
        ctx.slot.calls += 1
        res = self.runner.wait_job(ctx.slot, job, timeout_s)
        out = res.output
        return EngineOutput(out.probs, out.classes, 0, {**out.extra, "result_ms": (res.finished - res.started) * 1e3})

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
