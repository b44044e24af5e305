"""The one interface every engine implements.

An engine turns an RGB frame into per-class probabilities at its own working
resolution.  Everything after that (class selection, smoothing, resizing,
refinement) is engine-agnostic and lives in ``postprocess``; so adding a model
means adding one file here and one line in ``registry``.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from m2fp_protocol import ClassInfo


class EngineUnavailable(RuntimeError):
    """The engine cannot run here (missing weights or package); the text says how to fix it."""


@dataclass
class EngineOutput:
    """Per-class probabilities, (C, h, w) float32 summing to ~1 over C.

    ``h, w`` is the engine's resolution (not the frame's).  An engine with one
    person probability returns C = 2 (background, person).
    """

    probs: np.ndarray
    classes: tuple[ClassInfo, ...]
    extra: dict[str, Any] = field(default_factory=dict)  # engine-specific (e.g. result age)


class Engine(abc.ABC):
    """Base class: ``infer`` must be called from one thread at a time."""

    name: ClassVar[str] = "base"
    #: Short human description for ``m2fp info`` and logs.
    description: ClassVar[str] = ""

    @property
    @abc.abstractmethod
    def classes(self) -> tuple[ClassInfo, ...]:
        """Class list in output channel order."""

    @property
    def preferred_input(self) -> tuple[int, int]:
        """A box (width, height): clients scale frames to fit inside it, keeping aspect.

        Larger frames only cost transfer and resize time.
        """
        return (256, 256)

    @abc.abstractmethod
    def infer(self, rgb: np.ndarray, stream: Any = None) -> EngineOutput:
        """Run on one HxWx3 uint8 RGB frame.

        ``stream`` is an opaque per-client key for engines that keep state between
        frames of one video (e.g. the hybrid engine); stateless engines ignore it.
        """

    def forget(self, stream: Any) -> None:
        """Drop per-stream state (client gone)."""

    def close(self) -> None:
        """Release threads and native resources."""

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description}


def person_output(person: np.ndarray, classes: tuple[ClassInfo, ...]) -> EngineOutput:
    """Wrap a (h, w) person probability as a two-class output."""
    p = np.clip(person.astype(np.float32, copy=False), 0.0, 1.0)
    return EngineOutput(np.stack([1.0 - p, p]), classes)
