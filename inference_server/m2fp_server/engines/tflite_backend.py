"""Run the shipped ``.tflite`` models with OpenVINO (reads TFLite files directly) or ai-edge-litert.

OpenVINO's CPU plugin ran the pose landmark model faster than XNNPACK on one
thread here (``m2fp bench --models`` prints both side by side; the table is in
docs/evaluation.md), so it is the default when installed.  bf16 inference is used
only when the CPU has native bf16 instructions (``avx512_bf16`` or ``amx_bf16``
in ``/proc/cpuinfo``) and the caller allows it; elsewhere OpenVINO would
emulate it slowly.

Both backends are driven through the interpreter calls the model wrappers
already use (``get_input_details``, ``set_tensor``, ``invoke``, ``get_tensor``),
so a wrapper does not know which one it got.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..cpu import has_bf16
from .base import EngineUnavailable

log = logging.getLogger(__name__)

BACKENDS = ("auto", "openvino", "litert")
#: environment override for every embedded model: openvino | litert | auto
BACKEND_ENV = "M2FP_TFLITE_BACKEND"


class OpenVINOModel:
    """A compiled OpenVINO model behind the TFLite interpreter calls the wrappers use."""

    backend = "openvino"

    def __init__(self, path: Path, threads: int, bf16: bool) -> None:
        import openvino as ov
        core = ov.Core()
        model = core.read_model(str(path))
        precision = "bf16" if bf16 and has_bf16() else "f32"
        self.precision = precision
        self._compiled = core.compile_model(model, "CPU", {
            "INFERENCE_NUM_THREADS": int(threads), "INFERENCE_PRECISION_HINT": precision,
            "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1})
        self._request = self._compiled.create_infer_request()
        self._inputs = [{"index": i, "shape": np.array(p.get_shape(), np.int32)}
                        for i, p in enumerate(self._compiled.inputs)]
        n_in = len(self._inputs)
        self._outputs = [{"index": n_in + i, "shape": np.array(p.get_shape(), np.int32)}
                         for i, p in enumerate(self._compiled.outputs)]
        self._feed: dict[int, np.ndarray] = {}
        self._results: list[np.ndarray] = []

    def get_input_details(self) -> list[dict[str, Any]]:
        return self._inputs

    def get_output_details(self) -> list[dict[str, Any]]:
        return self._outputs

    def set_tensor(self, index: int, value: np.ndarray) -> None:
        self._feed[index] = value

    def invoke(self) -> None:
        self._request.infer(self._feed)
        # copies: the request's buffers are overwritten by the next call, TFLite's get_tensor copies too
        self._results = [self._request.get_output_tensor(i).data.copy() for i in range(len(self._outputs))]

    def get_tensor(self, index: int) -> np.ndarray:
        return self._results[index - len(self._inputs)]


def _litert(path: Path, threads: int) -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise EngineUnavailable("ai-edge-litert is not installed: pip install ai-edge-litert") from exc
    it = Interpreter(model_path=str(path), num_threads=threads)
    it.allocate_tensors()
    return it


def open_model(path: Path, threads: int = 1, backend: str | None = None, bf16: bool = False) -> Any:
    """An interpreter-like object for ``path``; ``backend`` None = the environment's choice, else auto.

    ``openvino`` and ``auto`` fall back to ai-edge-litert for a model OpenVINO cannot read.
    """
    if not path.is_file():
        raise EngineUnavailable(f"model file {path} is missing; reinstall m2fp-obs")
    backend = backend or os.environ.get(BACKEND_ENV, "auto")
    if backend not in BACKENDS:
        raise EngineUnavailable(f"unknown model backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if backend in ("auto", "openvino"):
        try:
            return OpenVINOModel(path, threads, bf16)
        except ImportError as exc:
            if backend == "openvino":
                raise EngineUnavailable("openvino is not installed: pip install openvino") from exc
        except RuntimeError as exc:  # e.g. the selfie models' custom op: the TFLite runtime still runs them
            log.info("openvino cannot read %s (%s); using ai-edge-litert", path.name, str(exc).strip().splitlines()[-1])
    return _litert(path, threads)
