"""The one interface every engine implements.

An engine turns an RGB frame into per-class probabilities at its own working
resolution.  Everything after that (class selection, smoothing, resizing,
refinement) is engine-agnostic and lives in ``postprocess``; so adding a model
means adding one file here and one line in ``registry``.

The contract, and why each part exists:

* :meth:`Engine.new_stream` makes the engine's per-stream state (a tracker, a
  recurrent state, a queued job).  The caller owns it (the server keeps it in
  :class:`~m2fp_server.streams.StreamState`), so dropping a stream drops
  everything about it: the engine keeps no per-client table of its own that
  would have to be kept in step by hand.
* :meth:`Engine.infer` is the live call: it may answer with an older result
  (asynchronous engines), and says how old in :attr:`EngineOutput.age_frames`.
* :meth:`Engine.infer_now` is the blocking call: this frame's own result, for
  offline evaluation, single photos (HTTP) and benchmarks.
* Capabilities are declared class attributes (:attr:`Engine.wants_motion`,
  :attr:`Engine.own_worker`), so callers never probe an engine with ``getattr``.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from m2fp_protocol import DEFAULT_INPUT_BOX, PERSON_CLASSES, ClassInfo

from ..errors import M2fpError

if TYPE_CHECKING:  # the tracker lives in postprocess; engines only receive it
    from ..postprocess.motion import FlowTracker


class EngineUnavailable(M2fpError, RuntimeError):
    """The engine cannot run here (missing weights or package); the text says how to fix it."""


class StreamContext:
    """An engine's state for one stream (one video); the base engine keeps none.

    Engines with state subclass it and return theirs from :meth:`Engine.new_stream`.
    Whoever holds it calls :meth:`close` when the stream ends, so work still queued
    for the stream is dropped at once instead of running for nobody.
    """

    def close(self) -> None:
        """Drop what the engine still holds for this stream (queued frames)."""


@dataclass
class EngineOutput:
    """Per-class probabilities, (C, h, w) float32 summing to ~1 over C.

    ``h, w`` is the engine's resolution (not the frame's).  An engine with one
    person probability returns C = 2 (background, person).
    """

    probs: np.ndarray
    classes: tuple[ClassInfo, ...]
    #: Frames between the frame asked about and the frame the (slowest part of the) result was
    #: computed from: 0 for a synchronous engine, -1 while an asynchronous one has no result yet.
    #: Typed here because the pipeline and the evaluation report it.
    age_frames: int = 0
    #: Diagnostics only (shown in logs and tests); nothing may decide anything on these keys.
    extra: dict[str, Any] = field(default_factory=dict)
    #: Who is who, where the engine follows people one by one: (h, w) uint8, 0 where it follows nobody,
    #: k >= 1 where person k is, the same k for the same person from frame to frame.  Two people who
    #: touch are one outline in the mask; with this, each still gets their own motion (``MaskMotion``).
    people: np.ndarray | None = None


class Engine(abc.ABC):
    """Base class.  ``infer`` and ``infer_now`` are called from one thread at a time,
    except where :attr:`own_worker` says otherwise."""

    name: ClassVar[str] = "base"
    #: Short human description for ``m2fp info`` and logs.
    description: ClassVar[str] = ""
    #: ``infer`` wants the stream's flow tracker every frame (its ``motion`` argument): an
    #: asynchronous engine carries its older result onto the newest frame along it.  The
    #: pipeline then pushes every frame into the tracker, not only when motion is asked for.
    wants_motion: ClassVar[bool] = False
    #: The model runs in the engine's own worker thread, and ``infer_now`` only waits for that
    #: worker: a caller must not hold the server's engine lock while it waits (live streams go on).
    own_worker: ClassVar[bool] = False
    #: ``infer`` may run for several streams at once (a remote model step: Triton batches the
    #: overlapping calls); asynchronous wrappers then keep one frame per stream in flight.
    concurrent: bool = False

    @property
    @abc.abstractmethod
    def classes(self) -> tuple[ClassInfo, ...]:
        """Class list in output channel order."""

    @property
    def preferred_input(self) -> tuple[int, int]:
        """A box (width, height): clients scale frames to fit inside it, keeping aspect.

        Larger frames only cost transfer and resize time.
        """
        return DEFAULT_INPUT_BOX

    def new_stream(self) -> StreamContext:
        """A fresh per-stream state; stateless engines share the empty base one."""
        return StreamContext()

    @abc.abstractmethod
    def infer(self, rgb: np.ndarray, stream: StreamContext | None = None,
              motion: FlowTracker | None = None) -> EngineOutput:
        """Run on one HxWx3 uint8 RGB frame of ``stream`` (None: a lone frame, no history).

        ``motion`` is the stream's flow tracker, already holding this frame, when
        :attr:`wants_motion` is set and the pipeline has one; an engine that warps
        old results must cope without it (it then holds them unchanged).
        """

    def infer_now(self, rgb: np.ndarray, stream: StreamContext | None = None,
                  timeout_s: float | None = None) -> EngineOutput:
        """This frame's own result, waiting for it (``age_frames`` 0).

        Synchronous engines answer the same as :meth:`infer`.  Asynchronous ones
        wait up to ``timeout_s`` (None: for ever) for their worker, then raise
        :class:`TimeoutError`; a failure of the model on this frame is raised here.
        """
        return self.infer(rgb, stream)

    @property
    def slow_runs(self) -> int | None:
        """Results the engine's own worker has finished so far; None without a worker."""
        return None

    def close(self) -> None:
        """Release threads and native resources."""

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description}


class PersonEngine(Engine):
    """An engine that sees people, not body parts: two classes (background, person)."""

    @property
    def classes(self) -> tuple[ClassInfo, ...]:
        return PERSON_CLASSES


def flag(value: Any) -> bool:
    """An engine option that is yes or no, also when given as text (``-E zoom=false``)."""
    if isinstance(value, str):
        if value.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
            raise ValueError(f"{value!r} is not a yes/no value")
        return value.lower() in ("1", "true", "yes", "on")
    return bool(value)


def person_output(person: np.ndarray, classes: tuple[ClassInfo, ...]) -> EngineOutput:
    """Wrap a (h, w) person probability as a two-class output."""
    p = np.clip(person.astype(np.float32, copy=False), 0.0, 1.0)
    return EngineOutput(np.stack([1.0 - p, p]), classes)
