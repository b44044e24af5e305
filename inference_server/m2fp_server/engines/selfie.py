"""MediaPipe selfie segmentation (Apache-2.0), shipped in ``m2fp_server/models``.

Runs with ai-edge-litert's TFLite interpreter; no network, no mediapipe package.
The landscape model (256x144) is the default: on our ground-truth composites
(busy backgrounds, 4:3 and 16:9 frames) it scored higher than the general model
(256x256) on every clip, and it costs less (docs/engines.md, docs/evaluation.md).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from m2fp_protocol import PERSON_CLASSES

from .base import EngineOutput, EngineUnavailable, PersonEngine, StreamContext, person_output

if TYPE_CHECKING:
    from ..postprocess.motion import FlowTracker

log = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
MODEL_FILES = {
    "general": "selfie_segmentation.tflite",
    "landscape": "selfie_segmentation_landscape.tflite",
}


def load_interpreter(path: Path, threads: int = 1, backend: str | None = None, bf16: bool = False) -> Any:
    """The model behind TFLite's interpreter calls, on OpenVINO or ai-edge-litert (see ``tflite_backend``)."""
    from .tflite_backend import open_model
    return open_model(path, threads, backend, bf16)


class TFLiteSegmenter:
    """One TFLite person-mask model: RGB uint8 in, (h, w) probability out."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        self.path = path
        self._it = load_interpreter(path, threads)
        inp = self._it.get_input_details()[0]
        out = self._it.get_output_details()[0]
        self._in_index = inp["index"]
        self._out_index = out["index"]
        _, self.height, self.width, _ = (int(x) for x in inp["shape"])
        self._buf = np.empty((1, self.height, self.width, 3), np.float32)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        small = cv2.resize(rgb, (self.width, self.height), interpolation=cv2.INTER_AREA)
        np.multiply(small, np.float32(1.0 / 255.0), out=self._buf[0], casting="unsafe")
        self._it.set_tensor(self._in_index, self._buf)
        self._it.invoke()
        return self._it.get_tensor(self._out_index)[0, :, :, 0].copy()


class SelfieEngine(PersonEngine):
    name = "selfie"
    description = "MediaPipe selfie segmentation (person / background), embedded, Apache-2.0"

    def __init__(self, variant: str = "landscape", threads: int = 1, **_: Any) -> None:
        if variant not in MODEL_FILES:
            raise EngineUnavailable(f"unknown selfie variant {variant!r}; choose from {sorted(MODEL_FILES)}")
        self.variant = variant
        self._model = TFLiteSegmenter(MODELS_DIR / MODEL_FILES[variant], threads)


    def infer(self, rgb: np.ndarray, stream: StreamContext | None = None,
              motion: FlowTracker | None = None) -> EngineOutput:
        return person_output(self._model(rgb), PERSON_CLASSES)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "variant": self.variant}
