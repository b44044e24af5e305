"""``hybrid``: a fast silhouette on every frame, M2FP's parts from its latest result.

M2FP needs far longer than a frame; the embedded models far less.  So:

* the **fast engine** (by default the best silhouette engine available: RVM
  once fetched, else the embedded models) answers every frame: it decides
  *where the person is* now;
* **M2FP** runs in its own worker thread (:class:`AsyncRunner`) on the newest
  frame whenever it is free; its latest parsing, carried onto the current frame
  by the stream's optical flow, decides *which part* each person pixel is;
* M2FP also **adds people the fast model missed**: a person in its parsing that
  does not touch the fast silhouette at all is added (warped, so they follow).

The output has M2FP's classes, so ``keep`` works exactly as with M2FP alone.
The fast path never waits for M2FP.  On 2 cores M2FP gets one thread at a lower
priority (``slow_threads=1``, ``slow_nice=10``): a second M2FP thread brought no
more results per second and slowed the fast path (docs/evaluation.md).
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from m2fp_protocol import ClassInfo

from ..postprocess.motion import FlowTracker
from .async_worker import AsyncEngine, AsyncRunner, RunnerSlot, follow, warp_result
from .base import Engine, EngineOutput, EngineUnavailable, StreamContext

log = logging.getLogger(__name__)


def _build(name: str, options: dict[str, Any]) -> Engine:
    from .registry import create
    return create(name, **options)


#: ``fast="best"``: the silhouette engines in order of quality (RVM once fetched, else the embedded models)
SILHOUETTE_ORDER = ("rvm", "embedded")


def best_silhouette(options: dict[str, Any]) -> Engine:
    reasons = []
    for name in SILHOUETTE_ORDER:
        try:
            return _build(name, options)
        except EngineUnavailable as exc:
            reasons.append(f"{name}: {exc}")
            log.info("hybrid: no %s silhouette (%s)", name, exc)
    raise EngineUnavailable("no silhouette engine: " + "; ".join(reasons))


@dataclass(eq=False)
class HybridStream(StreamContext):
    """One stream of the hybrid: the fast engine's state, the slow worker's slot, and a flow tracker of its
    own for callers that bring none (the pipeline brings the stream's)."""

    runner: AsyncRunner
    fast: StreamContext
    slot: RunnerSlot
    tracker: FlowTracker = field(default_factory=FlowTracker)

    def close(self) -> None:
        self.runner.drop(self.slot)
        self.fast.close()


class HybridEngine(Engine):
    name = "hybrid"
    description = "fast silhouette (RVM or embedded) every frame + M2FP parts (asynchronous, motion-compensated)"
    wants_motion = True
    own_worker = True  # infer_now waits for the slow worker; the fast engine has its own lock

    def __init__(self, fast: str = "best", slow: str = "m2fp", slow_threads: int = 1,
                 slow_rate_hz: float = 0.0, slow_delay_ms: float = 0.0, slow_nice: int = 10,
                 add_overlap: float = 0.05, add_min_area: float = 0.002,
                 slow_options: dict[str, Any] | None = None, fast_engine: Engine | None = None,
                 slow_engine: Engine | None = None, **options: Any) -> None:
        """``options`` go to the slow engine (weights path etc.); ``slow_threads`` too, as ``threads``.

        ``fast``: an engine name, or ``best``: the best silhouette engine here (``SILHOUETTE_ORDER``).

        ``slow_rate_hz`` / ``slow_delay_ms`` make the slow engine slower still (tests, measurements).
        """
        # ``fast_<option>`` goes to the fast engine (e.g. -E fast_width=256 for RVM), the rest to the slow one
        fast_opts: dict[str, Any] = {"threads": 1, **{k[5:]: options.pop(k) for k in list(options)
                                                       if k.startswith("fast_")}}
        if options.get("triton"):  # an RVM silhouette runs on the same Triton (the embedded models stay here)
            fast_opts.setdefault("triton", options["triton"])
            fast_opts.setdefault("triton_timeout_s", options.get("triton_timeout_s", 10.0))
        # the slow engine first: without M2FP weights this fails fast and ``auto`` moves on
        if slow_engine is None:
            slow_opts = {**options, **(slow_options or {})}
            if slow_threads:
                slow_opts.setdefault("threads", slow_threads)
            slow_engine = _build(slow, slow_opts)
        if isinstance(slow_engine, AsyncEngine):  # already asynchronous: run its model in our worker
            slow_engine = slow_engine.inner
        self.slow = slow_engine
        try:
            self.fast = fast_engine or (best_silhouette(fast_opts) if fast == "best" else _build(fast, fast_opts))
        except EngineUnavailable:
            self.slow.close()
            raise
        self.add_overlap = add_overlap  # a slow person overlapping the fast silhouette less than this is added
        self.add_min_area = add_min_area  # ...if at least this share of the frame (no specks)
        self.runner = AsyncRunner(self.slow, slow_rate_hz, slow_delay_ms / 1e3, name="m2fp-hybrid-slow",
                                  nice=slow_nice)
        # the fast engine answers live frames (server worker) and infer_now (HTTP threads): one at a time
        self._fast_lock = threading.Lock()
        self.stats = {"frames": 0, "slow_results_used": 0}

    @property
    def classes(self) -> tuple[ClassInfo, ...]:
        return self.slow.classes

    @property
    def preferred_input(self) -> tuple[int, int]:
        fw, fh = self.fast.preferred_input
        sw, sh = self.slow.preferred_input
        return (max(fw, sw), max(fh, sh))

    @property
    def slow_runs(self) -> int | None:
        return self.runner.runs

    def new_stream(self) -> HybridStream:
        return HybridStream(self.runner, self.fast.new_stream(), self.runner.new_slot())

    def _stream(self, stream: StreamContext | None) -> HybridStream:
        if stream is None:
            return self.new_stream()
        assert isinstance(stream, HybridStream), "a context from another engine"
        return stream

    def _person(self, rgb: np.ndarray, ctx: HybridStream) -> np.ndarray:
        with self._fast_lock:
            fast = self.fast.infer(rgb, ctx.fast)
        return fast.probs[1:].sum(axis=0) if fast.probs.shape[0] > 2 else fast.probs[1]

    def infer(self, rgb: np.ndarray, stream: StreamContext | None = None,
              motion: FlowTracker | None = None) -> EngineOutput:
        ctx = self._stream(stream)
        if motion is None:  # no tracker from the pipeline: the stream's own
            motion = ctx.tracker
            motion.push(rgb)
        self.stats["frames"] += 1
        seq = motion.seq
        self.runner.submit(ctx.slot, seq, rgb)  # never waits
        person = self._person(rgb, ctx)
        res = self.runner.latest(ctx.slot)
        follow(self.runner, ctx.slot, motion, None if res is None else res.seq)
        slow_probs, age, warped = None, -1, False
        if res is not None:
            slow_probs, age, warped = warp_result(res, seq, motion)
            self.stats["slow_results_used"] += 1
        probs = self.fuse(person, slow_probs)
        return EngineOutput(probs, self.classes, age, {"slow_warped": warped})

    def infer_now(self, rgb: np.ndarray, stream: StreamContext | None = None,
                  timeout_s: float | None = None) -> EngineOutput:
        """The fast silhouette and the slow parsing of this very frame (the offline reference).

        The slow model still runs only in its worker thread, so a live stream's M2FP run
        and this one never overlap; this thread waits without the server's engine lock.
        """
        ctx = self._stream(stream)
        job = self.runner.submit(ctx.slot, ctx.slot.calls, rgb)
        ctx.slot.calls += 1
        person = self._person(rgb, ctx)
        res = self.runner.wait_job(ctx.slot, job, timeout_s)
        return EngineOutput(self.fuse(person, res.output.probs), self.classes, 0)

    def fuse(self, person: np.ndarray, slow: np.ndarray | None) -> np.ndarray:
        """(h, w) fast person probability + (C, h', w') slow class probabilities -> (C, h, w).

        The part decision is made at the slow engine's own (low) resolution and
        only then scaled up: the fine outline comes from the fast silhouette.
        """
        h, w = person.shape
        C = len(self.classes)
        out = np.empty((C, h, w), np.float32)
        if slow is None:  # no parsing yet: the silhouette, parts unknown (spread evenly)
            out[0] = 1.0 - person
            out[1:] = person[None] / (C - 1)
            return out
        sh, sw = slow.shape[1:]
        # which part: the slow parsing given "person", filled in from around where it has none
        parts = slow[1:]
        mass = parts.sum(axis=0)
        k = (max(3, sw // 8) | 1, max(3, sh // 8) | 1)
        spread = np.stack([cv2.blur(p, k) for p in parts])
        spread_mass = spread.sum(axis=0)
        near = mass > 0.3
        cond = np.where(near[None], parts / (mass[None] + 1e-6), spread / (spread_mass[None] + 1e-6))
        cond[:, (~near) & (spread_mass < 1e-3)] = 1.0 / (C - 1)  # no slow person anywhere near
        missed = self._missed_people(person, slow[0])
        if missed is not None:
            slow_person = cv2.resize(np.clip(1.0 - slow[0], 0.0, 1.0), (w, h), interpolation=cv2.INTER_LINEAR)
            keep = cv2.resize(missed, (w, h), interpolation=cv2.INTER_LINEAR)
            person = np.maximum(person, slow_person * keep)
        out[0] = 1.0 - person
        for i in range(C - 1):  # scale up channel by channel, straight into the output
            cv2.resize(cond[i], (w, h), dst=out[i + 1], interpolation=cv2.INTER_LINEAR)
        out[1:] *= person[None]
        return out

    def _missed_people(self, person: np.ndarray, slow_bg: np.ndarray) -> np.ndarray | None:
        """Slow-engine people the fast silhouette does not touch, as a (h', w') float mask, or None.

        Judged per connected person: one that overlaps the fast silhouette is the
        same person (the fast model's outline wins, so a stale or badly warped
        slow result never leaves a ghost beside them); one that does not is added.
        """
        sh, sw = slow_bg.shape
        blobs = (slow_bg < 0.5).astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(blobs, connectivity=8)
        if n <= 1:
            return None
        fast = cv2.resize(person, (sw, sh), interpolation=cv2.INTER_AREA) >= 0.5
        overlap = np.bincount(labels[fast], minlength=n)
        area = stats[:, cv2.CC_STAT_AREA]
        ids = [i for i in range(1, n)
               if area[i] >= self.add_min_area * sh * sw and overlap[i] < self.add_overlap * area[i]]
        if not ids:
            return None
        return np.isin(labels, ids).astype(np.float32)

    def close(self) -> None:
        self.runner.close()
        self.fast.close()
        self.slow.close()

    def info(self) -> dict[str, Any]:
        return {**super().info(), "fast": self.fast.info(), "slow": self.slow.info(),
                "slow_runs": self.runner.runs, "slow_busy_s": round(self.runner.busy_s, 3)}
