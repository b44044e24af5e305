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

How many threads a model gets is measured, not assumed (``pick_threads``): on some
2-core machines a second thread nearly halves a model's time; on others two pose
runs at once each took twice as long, so a second thread would only take time
from the server's other work.
"""
from __future__ import annotations

import logging
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..cpu import has_bf16, usable_cores
from ..samples import portrait
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


#: thread counts ``pick_threads`` tries (never more than the cores this process may use)
THREAD_CHOICES = (1, 2)
#: more threads are taken only when they cut the median time by at least this share
THREADS_GAIN = 0.15
_picked: dict[tuple[str, str, bool], tuple[int, dict[int, float]]] = {}


def _sample_input(shape: tuple[int, ...]) -> np.ndarray:
    """A shipped photo at the model's input shape: what a model computes on barely changes its time, but a
    real picture keeps any data-dependent path honest."""
    import cv2
    _, h, w, _ = shape
    return cv2.resize(portrait("grace_hopper"), (w, h), interpolation=cv2.INTER_AREA)[None].astype(np.float32) / 255.0


def _times_ms(path: Path, threads: int, backend: str | None, bf16: bool, runs: int) -> list[float]:
    model = open_model(path, threads, backend, bf16)
    detail = model.get_input_details()[0]
    model.set_tensor(detail["index"], _sample_input(tuple(int(v) for v in detail["shape"])))
    model.invoke()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        model.invoke()
        times.append((time.perf_counter() - t0) * 1000.0)
    return times


def pick_threads(path: Path, backend: str | None = None, bf16: bool = False,
                 passes: int = 2, runs: int = 8) -> tuple[int, dict[int, float]]:
    """The thread count that runs ``path`` fastest here, and the median ms of each count tried.

    Each count is timed on its own model, the counts taking turns over ``passes`` so a burst of other
    work hits them alike (two compiled copies alive at once slowed each other's threads); one more
    thread must win by ``THREADS_GAIN``.  The answer is kept for the life of the process.
    """
    choices = [n for n in THREAD_CHOICES if n <= usable_cores()]
    key = (str(path), backend or os.environ.get(BACKEND_ENV, "auto"), bf16)
    if len(choices) < 2:
        return 1, {}
    if key not in _picked:
        times: dict[int, list[float]] = {n: [] for n in choices}
        for _ in range(passes):
            for n in choices:
                times[n] += _times_ms(path, n, backend, bf16, runs)
        medians = {n: statistics.median(v) for n, v in times.items()}
        best = choices[0]
        for n in choices[1:]:
            if medians[n] < (1.0 - THREADS_GAIN) * medians[best]:
                best = n
        _picked[key] = (best, medians)
    return _picked[key]
