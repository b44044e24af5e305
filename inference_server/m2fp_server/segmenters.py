"""One call, two places: segment a frame in this process or through a server.

``m2fp parse`` and the evaluation use either interchangeably, so "in-process"
and "through the server" results are produced by the same code path after the
engine.
"""
from __future__ import annotations

import abc
from typing import Any

import numpy as np

from m2fp_protocol import ClassInfo, StreamConfig

from .engines.base import Engine
from .pipeline import Pipeline
from .streams import StreamState


class Segmenter(abc.ABC):
    classes: tuple[ClassInfo, ...]

    @abc.abstractmethod
    def __call__(self, rgb: np.ndarray, want_labels: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """(alpha uint8 at frame size, labels uint8 or None)."""

    def close(self) -> None:
        pass


class LocalSegmenter(Segmenter):
    def __init__(self, engine: Engine, config: StreamConfig | None = None, key: bytes = b"local") -> None:
        self.engine = engine
        self.classes = engine.classes
        self.pipeline = Pipeline(engine)
        self.stream = StreamState(key)
        self.stream.apply(config or StreamConfig(), engine.classes)

    def __call__(self, rgb: np.ndarray, want_labels: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        r = self.pipeline.process(rgb, self.stream, None, want_labels)
        return r.alpha, r.labels

    def close(self) -> None:
        self.stream.close()
        self.engine.close()


class RemoteSegmenter(Segmenter):
    def __init__(self, address: str, config: dict[str, Any] | None = None, timeout_s: float = 30.0) -> None:
        from .client import MaskClient
        self.client = MaskClient(address, timeout_s=timeout_s)
        info = self.client.hello("m2fp-parse")
        self.classes = tuple(ClassInfo.from_json(c) for c in info["classes"])
        if config:
            self.client.configure(**config)

    def __call__(self, rgb: np.ndarray, want_labels: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        m, p = self.client.mask(rgb, want_parsing=want_labels)
        assert m.array is not None
        return m.array, (p.array if p is not None else None)

    def close(self) -> None:
        self.client.close()
