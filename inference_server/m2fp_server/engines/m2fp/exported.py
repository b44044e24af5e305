"""Exported M2FP (ONNX Runtime or OpenVINO): files next to the weights, checked before saving.

One file per canvas shape (the model has data-dependent shapes, so exports are
fixed-size).  The TorchScript exporter (``dynamo=False``, opset 17) is used: the
dynamo exporter fails on M2FP's reference-point construction.  OpenVINO reads the
ONNX file and is saved as IR with f32 weights; its CPU plugin defaults to bf16 on
CPUs that have it, so f32 is requested explicitly unless the user opts in.
"""
from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ...cpu import usable_cores
from ...errors import BadInput, M2fpError
from ...weights import WEIGHTS_FILE
from .frames import Canvas

log = logging.getLogger(__name__)

EXPORT_DIR = "m2fp-obs-exports"
RUNTIMES = ("openvino", "onnxruntime")
PRECISIONS = ("f32", "bf16")
#: The export is refused when its logits differ from torch by more than this (f32).
MAX_LOGIT_DIFF = 1e-3
OPSET = 17


class ExportError(M2fpError, RuntimeError):
    """The export failed or did not match torch; nothing was saved."""


@dataclass
class ExportRecord:
    """Sidecar JSON: what the export is, and the check it passed."""

    runtime: str
    canvas: str
    precision: str
    weights_fingerprint: str
    max_logit_diff: float
    max_mask_diff: float
    check_image: str
    label_agreement: float | None = None  # bf16: share of pixels whose label equals f32's
    created: str = ""
    torch_version: str = ""


def weights_fingerprint(model_dir: Path) -> str:
    """Size and mtime of the checkpoint: a changed checkpoint invalidates its exports."""
    st = (model_dir / WEIGHTS_FILE).stat()
    return hashlib.sha1(f"{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]


def export_paths(model_dir: Path, runtime: str, canvas: Canvas, precision: str = "f32") -> tuple[Path, Path]:
    """(model file, record file)."""
    base = Path(model_dir) / EXPORT_DIR / f"{runtime}-{canvas.key}" / precision
    model = base / ("model.xml" if runtime == "openvino" else "model.onnx")
    return model, base / "export.json"


def find_export(model_dir: Path, canvas: Canvas, runtime: str = "auto", precision: str = "auto"
                ) -> tuple[str, Path, ExportRecord] | None:
    """A valid export for this canvas: preferred runtime first, f32 before bf16 unless asked."""
    runtimes = RUNTIMES if runtime == "auto" else (runtime,)
    precisions = PRECISIONS if precision == "auto" else (precision,)
    fp = weights_fingerprint(model_dir)
    for rt in runtimes:
        for prec in precisions:
            model_file, rec_file = export_paths(model_dir, rt, canvas, prec)
            if not (model_file.is_file() and rec_file.is_file()):
                continue
            try:
                rec = ExportRecord(**json.loads(rec_file.read_text()))
            except (ValueError, TypeError) as exc:
                log.warning("ignoring %s: unreadable record (%s)", rec_file, exc)
                continue
            if rec.weights_fingerprint != fp:
                log.warning("ignoring %s: made from different weights; re-run m2fp export", model_file)
                continue
            return rt, model_file, rec
    return None


class Runner(Protocol):
    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def default_threads() -> int:
    return usable_cores()


class OpenVINORunner:
    def __init__(self, path: Path, precision: str = "f32", threads: int | None = None) -> None:
        try:
            import openvino as ov
        except ImportError as exc:
            raise ExportError("openvino is not installed: pip install 'm2fp-obs[m2fp]'") from exc
        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_NUM_THREADS": int(threads or default_threads())}
        self._compiled = core.compile_model(str(path), "CPU", config)
        self._request = self._compiled.create_infer_request()
        self._outputs = self._compiled.outputs

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        res = self._request.infer({0: image})
        return res[self._outputs[0]], res[self._outputs[1]]


class ORTRunner:
    def __init__(self, path: Path, precision: str = "f32", threads: int | None = None) -> None:
        if precision != "f32":
            raise ExportError("ONNX Runtime exports are f32 only (use --runtime openvino for bf16)")
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ExportError("onnxruntime is not installed: pip install 'm2fp-obs[m2fp]'") from exc
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads or default_threads())
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # idle workers would otherwise spin between frames, taking CPU from the rest of the server
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, masks = self._session.run(None, {self._input: image})
        return logits, masks


def open_runner(runtime: str, path: Path, precision: str = "f32", threads: int | None = None) -> Runner:
    if runtime == "openvino":
        return OpenVINORunner(path, precision, threads)
    if runtime == "onnxruntime":
        return ORTRunner(path, precision, threads)
    raise BadInput(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")


def export_onnx(core: Any, canvas: Canvas, path: Path, batch_axis: bool = False) -> None:
    """Trace the torch core to ONNX at this canvas size (``batch_axis``: any batch, for Triton's batcher)."""
    import warnings

    import torch
    dummy = torch.full((1, 3, canvas.height, canvas.width), 128.0)
    names = ["image", "pred_logits", "pred_masks"]
    dynamic = {n: {0: "batch"} for n in names} if batch_axis else None
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(core, (dummy,), str(path), dynamo=False, opset_version=OPSET,
                          input_names=names[:1], output_names=names[1:], dynamic_axes=dynamic,
                          do_constant_folding=True)


def _labels(logits: np.ndarray, masks: np.ndarray, num_classes: int) -> np.ndarray:
    from .frames import Placement, semantic_probs
    h, w = masks.shape[-2:]
    return semantic_probs(logits, masks, Placement(h * 4, w * 4), num_classes).argmax(0)


def export(model_dir: Path, short_side: int, runtime: str, image: np.ndarray, image_name: str,
           precision: str = "f32", portrait: bool = False, threads: int | None = None,
           core: Any = None, num_classes: int | None = None) -> tuple[Path, ExportRecord]:
    """Export, compare with torch on ``image``, and only then move the files into place."""
    import shutil

    import torch

    from .frames import place
    from .network import load_core, run_core
    if runtime not in RUNTIMES:
        raise BadInput(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")
    if precision not in PRECISIONS:
        raise BadInput(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if precision != "f32" and runtime != "openvino":
        raise BadInput("bf16 is an OpenVINO option; use --runtime openvino")
    model_dir = Path(model_dir)
    canvas = Canvas.for_short_side(short_side, portrait)
    if core is None:
        core, cfg = load_core(model_dir, threads)
        num_classes = len(cfg.class_names)
    x, _ = place(image, short_side, canvas)
    ref_logits, ref_masks = run_core(core, x)
    model_file, _ = export_paths(model_dir, runtime, canvas, precision)
    model_file.parent.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(dir=model_file.parent.parent, prefix=".tmp-"))
    try:
        onnx_file = tmpdir / "model.onnx"
        t0 = time.perf_counter()
        export_onnx(core, canvas, onnx_file)
        if runtime == "openvino":
            import openvino as ov
            ov.save_model(ov.convert_model(str(onnx_file)), str(tmpdir / "model.xml"), compress_to_fp16=False)
            onnx_file.unlink()
        log.info("exported %s %s in %.1f s", runtime, canvas.key, time.perf_counter() - t0)
        runner = open_runner(runtime, tmpdir / model_file.name, "f32", threads)
        logits, masks = runner(x)
        dl = float(np.abs(logits - ref_logits).max())
        dm = float(np.abs(masks - ref_masks).max())
        log.info("f32 check on %s: max |d logits| %.2e, max |d mask logits| %.2e", image_name, dl, dm)
        if not dl <= MAX_LOGIT_DIFF:
            classes = num_classes or ref_logits.shape[-1] - 1
            same = float((_labels(ref_logits, ref_masks, classes) == _labels(logits, masks, classes)).mean())
            raise ExportError(
                f"{runtime} export differs from torch by {dl:.3g} in the class logits on {image_name} "
                f"(limit {MAX_LOGIT_DIFF}; {same * 100:.2f} % of pixels keep their label); not saved. "
                "M2FP's decoder cuts its attention masks at probability 0.5, so a rounding difference can "
                "flip a mask pixel near the cut; if the labels agree, retry with another --image")
        agreement = None
        if precision != "f32":
            low = open_runner(runtime, tmpdir / model_file.name, precision, threads)
            lo_logits, lo_masks = low(x)
            classes = num_classes or ref_logits.shape[-1] - 1
            agreement = float((_labels(ref_logits, ref_masks, classes) == _labels(lo_logits, lo_masks, classes)).mean())
            dl = float(np.abs(lo_logits - ref_logits).max())
            dm = float(np.abs(lo_masks - ref_masks).max())
        record = ExportRecord(runtime, canvas.key, precision, weights_fingerprint(model_dir), dl, dm,
                              image_name, agreement, time.strftime("%Y-%m-%dT%H:%M:%S"),
                              torch.__version__)
        (tmpdir / "export.json").write_text(json.dumps(asdict(record), indent=2))
        if model_file.parent.exists():
            shutil.rmtree(model_file.parent)
        tmpdir.rename(model_file.parent)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return model_file, record
