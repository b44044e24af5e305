"""``m2fp export --triton-repo DIR``: a Triton model repository for M2FP, checked against torch first.

Layout (what Triton's onnxruntime and openvino backends expect)::

    DIR/m2fp_256x480/config.pbtxt
    DIR/m2fp_256x480/1/model.onnx            (backend onnxruntime)
    DIR/m2fp_256x480/1/model.xml, model.bin  (backend openvino)

The network is exported with a free batch axis so Triton's dynamic batcher can
stack frames of different streams.  What is served is ``network.M2FPServing``:
the canvas as uint8 (``frames.place_u8``) and the frame's size on it in, the
per-class probabilities at 1/4 resolution out (M2FP's semantic step inside the
graph), so a frame costs 0.4 MB up and 0.6 MB down at short side 256 instead of
1.5 MB and 3.1 MB.  Resizing, the crop and everything per stream stay on the
edge.  The class names travel in the config's ``parameters`` (``m2fp_classes``)
so an edge without the weights still knows what the channels mean.
"""
from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..engines.m2fp.frames import MASK_STRIDE, Canvas

log = logging.getLogger(__name__)

BACKENDS = ("onnxruntime", "openvino")
MODEL_FILES = {"onnxruntime": ("model.onnx",), "openvino": ("model.xml", "model.bin")}
INPUTS = ("image", "size")  # (N, H, W, 3) uint8 canvas, (N, 2) int32 frame height and width on it
OUTPUT = "semantic"  # (N, C, H/4, W/4) float32 class probabilities
CLASSES_PARAMETER = "m2fp_classes"
#: the repository passes if batched outputs differ from torch by at most this (like ``m2fp export``)
MAX_DIFF = 1e-3


@dataclass
class RepoSettings:
    """What goes into config.pbtxt besides names and shapes."""

    backend: str = "onnxruntime"
    max_batch_size: int = 8
    #: dynamic batching on: wait up to this long for more requests (0 = batch only what is already queued)
    batch_delay_us: int = 2000
    dynamic_batching: bool = True
    instances: int = 1
    #: KIND_CPU here; KIND_GPU on a GPU box (onnxruntime backend only), KIND_AUTO lets Triton pick
    kind: str = "KIND_CPU"

    def validate(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown Triton backend {self.backend!r}; choose from {', '.join(BACKENDS)}")
        if not 1 <= self.max_batch_size <= 64:
            raise ValueError(f"max batch size must be 1..64, got {self.max_batch_size}")
        if self.instances < 1:
            raise ValueError("instances must be >= 1")
        if self.kind not in ("KIND_CPU", "KIND_GPU", "KIND_AUTO"):
            raise ValueError(f"unknown instance kind {self.kind!r}")
        if self.kind == "KIND_GPU" and self.backend == "openvino":
            raise ValueError("Triton's openvino backend runs on CPU only; use --triton-backend onnxruntime")


@dataclass
class RepoRecord:
    """``m2fp-obs.json`` beside config.pbtxt: where the model came from and the check it passed."""

    model: str
    canvas: str
    short_side: int
    backend: str
    max_prob_diff: float
    batch_checked: int
    check_image: str
    created: str


def model_name(canvas: Canvas) -> str:
    return f"m2fp_{canvas.key}"


def _quote(text: str) -> str:
    return json.dumps(text)  # protobuf text format accepts JSON's string escapes


def config_text(name: str, canvas: Canvas, num_classes: int, classes: tuple[str, ...], s: RepoSettings) -> str:
    """config.pbtxt in protobuf text format (``tritonclient.grpc.model_config_pb2.ModelConfig``)."""
    def dims(shape: tuple[int, ...]) -> str:
        return "[ " + ", ".join(str(int(d)) for d in shape) + " ]"
    h4, w4 = -(-canvas.height // MASK_STRIDE), -(-canvas.width // MASK_STRIDE)
    lines = [
        f"name: {_quote(name)}",
        f"backend: {_quote(s.backend)}",
        f"max_batch_size: {s.max_batch_size}",
        "input [",
        f"  {{ name: {_quote(INPUTS[0])} data_type: TYPE_UINT8 dims: {dims((canvas.height, canvas.width, 3))} }},",
        f"  {{ name: {_quote(INPUTS[1])} data_type: TYPE_INT32 dims: [ 2 ] }}",
        "]",
        "output [",
        f"  {{ name: {_quote(OUTPUT)} data_type: TYPE_FP32 dims: {dims((num_classes, h4, w4))} }}",
        "]",
        f"instance_group [ {{ count: {s.instances} kind: {s.kind} }} ]",
    ]
    if s.dynamic_batching:
        preferred = sorted({b for b in (2, 4, 8, s.max_batch_size) if b <= s.max_batch_size})
        lines.append(f"dynamic_batching {{ preferred_batch_size: {dims(tuple(preferred))} "
                     f"max_queue_delay_microseconds: {s.batch_delay_us} }}")
    lines.append(f"parameters {{ key: {_quote(CLASSES_PARAMETER)} value {{ string_value: "
                 f"{_quote(json.dumps(list(classes)))} }} }}")
    return "\n".join(lines) + "\n"


def export_serving_onnx(core: Any, canvas: Canvas, num_classes: int, path: Path) -> None:
    """Trace ``M2FPServing`` to ONNX with a free batch axis (TorchScript exporter, as ``exported.export_onnx``)."""
    import warnings

    import torch

    from ..engines.m2fp.exported import OPSET
    from ..engines.m2fp.network import M2FPServing
    serving = M2FPServing(core, (canvas.height, canvas.width), num_classes).eval()
    image = torch.full((1, canvas.height, canvas.width, 3), 128, dtype=torch.uint8)
    size = torch.tensor([[canvas.height, canvas.width]], dtype=torch.int32)
    names = [*INPUTS, OUTPUT]
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(serving, (image, size), str(path), dynamo=False, opset_version=OPSET,
                          input_names=list(INPUTS), output_names=[OUTPUT],
                          dynamic_axes={n: {0: "batch"} for n in names}, do_constant_folding=True)


def _check_frames(image: np.ndarray) -> list[np.ndarray]:
    """The check picture and its mirror image: two different frames in one batch."""
    return [image, np.ascontiguousarray(image[:, ::-1])]


def export_repository(model_dir: Path, repo_dir: Path, short_side: int, settings: RepoSettings,
                      image: np.ndarray, image_name: str, portrait: bool = False, threads: int | None = None,
                      core: Any = None, class_names: tuple[str, ...] | None = None) -> tuple[Path, RepoRecord]:
    """Export with a batch axis, check a batch of two against torch, then move the model into ``repo_dir``."""
    import torch

    from ..engines.m2fp.exported import ExportError
    from ..engines.m2fp.frames import place, place_u8, semantic_probs
    from ..engines.m2fp.network import load_core, run_core
    from .runtime import open_named
    settings.validate()
    canvas = Canvas.for_short_side(short_side, portrait)
    if core is None:
        core, cfg = load_core(model_dir, threads)
        class_names = cfg.class_names
    assert class_names is not None
    num = len(class_names)
    frames = _check_frames(image)
    ref = []
    for f in frames:  # what the in-process engine computes for each frame
        x, p = place(f, short_side, canvas)
        ref.append(semantic_probs(*run_core(core, x), p, num))
    placed = [place_u8(f, short_side, canvas) for f in frames]
    batch = {INPUTS[0]: np.concatenate([u8 for u8, _ in placed]),
             INPUTS[1]: np.array([[p.height, p.width] for _, p in placed], np.int32)}
    name = model_name(canvas)
    repo_dir = Path(repo_dir)
    repo_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=repo_dir, prefix=".tmp-"))
    try:
        version = tmp / "1"
        version.mkdir()
        t0 = time.perf_counter()
        onnx_file = version / "model.onnx"
        export_serving_onnx(core, canvas, num, onnx_file)
        if settings.backend == "openvino":
            import openvino as ov
            ov.save_model(ov.convert_model(str(onnx_file)), str(version / "model.xml"), compress_to_fp16=False)
            onnx_file.unlink()
        log.info("exported %s for Triton (%s) in %.1f s", name, settings.backend, time.perf_counter() - t0)
        runner = open_named(settings.backend, version / MODEL_FILES[settings.backend][0], threads or 2)
        sem = runner(batch)[OUTPUT]
        mh = [p.mask_shape for _, p in placed]
        dp = max(float(np.abs(sem[i, :, :h, :w] - ref[i]).max()) for i, (h, w) in enumerate(mh))
        log.info("batch-of-%d check on %s: max |d class probability| %.2e", len(frames), image_name, dp)
        if not dp <= MAX_DIFF:
            raise ExportError(f"the batched {settings.backend} export differs from torch by {dp:.3g} in the class "
                              f"probabilities on {image_name} (limit {MAX_DIFF}); nothing written to {repo_dir}")
        (tmp / "config.pbtxt").write_text(config_text(name, canvas, num, tuple(class_names), settings))
        record = RepoRecord(str(model_dir), canvas.key, short_side, settings.backend, dp, len(frames),
                            image_name, time.strftime("%Y-%m-%dT%H:%M:%S"))
        (tmp / "m2fp-obs.json").write_text(json.dumps({**asdict(record), "torch": torch.__version__}, indent=2))
        tmp.chmod(0o755)  # mkdtemp makes it private; a container's tritonserver may run as another user
        target = repo_dir / name
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target, record
