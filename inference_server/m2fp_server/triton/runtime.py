"""One model file run by name: ``{input name: batch}`` in, ``{output name: batch}`` out.

What ``m2fp triton`` runs inside Triton's Python backend for each model of a
repository (the official container runs the same files with its onnxruntime or
openvino backend).  Named tensors, so one runner serves M2FP (one input) and
RVM (the frame plus four recurrent states) alike.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

NamedRunner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def open_named(backend: str, path: Path, threads: int, precision: str = "f32") -> NamedRunner:
    """A runner for ``path`` with the runtime Triton's ``backend`` names, computing in ``precision``."""
    if backend == "onnxruntime":
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = max(1, threads)
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        # no busy-waiting between requests: on shared cores it takes time from the edge's own work
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        outputs = [o.name for o in session.get_outputs()]

        def run_ort(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return dict(zip(outputs, session.run(outputs, feeds)))
        return run_ort
    if backend == "openvino":
        import openvino as ov
        core = ov.Core()
        compiled = core.compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": precision,
                                                         "PERFORMANCE_HINT": "LATENCY",
                                                         "INFERENCE_NUM_THREADS": max(1, threads)})
        request = compiled.create_infer_request()
        names = [o.get_any_name() for o in compiled.outputs]

        def run_ov(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            res = request.infer(feeds)
            return {n: np.array(res[o], copy=True) for n, o in zip(names, compiled.outputs)}  # OV reuses buffers
        return run_ov
    raise ValueError(f"backend {backend!r} is not served here (only onnxruntime, openvino)")
