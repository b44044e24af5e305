"""The ``m2fp`` engine: M2FP human parsing, 20 body-part classes, several people per frame.

Per frame: fit the frame on a fixed 16:9 canvas with the chosen short side
(256 by default; 384 and 512 are sharper and slower), run the network -- an
export from ``m2fp export`` when one exists for that canvas, else ModelScope's
model in torch -- and turn mask queries into per-class probabilities at 1/4
resolution.  No per-instance full-resolution work per frame.

Options (``-E key=value``): ``model`` multi|single, ``model_dir`` (a folder with
configuration.json and pytorch_model.pt instead of the ModelScope cache),
``revision``, ``size`` (short side), ``runtime`` auto|torch|openvino|onnxruntime,
``precision`` auto|f32|bf16 (which export to use), ``threads``.

``triton`` grpc://host:8001 sends the forward pass to a Triton Inference Server
serving ``m2fp export --triton-repo`` (model ``m2fp_<canvas>``, or ``triton_model``);
no weights are needed here then, and ``triton_timeout_s`` bounds every call.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from m2fp_protocol import ClassInfo
from m2fp_protocol.classes import make_classes

from ...weights import DEFAULT_MODEL, WeightsMissing, fetch_command, locate
from ..base import Engine, EngineOutput, EngineUnavailable, StreamContext
from .config import ConfigError, read_config
from .exported import RUNTIMES, ExportError, default_threads, find_export, open_runner
from .frames import SHORT_SIDES, Canvas, place, place_u8, semantic_probs

if TYPE_CHECKING:
    from ...postprocess.motion import FlowTracker

log = logging.getLogger(__name__)


class M2FPEngine(Engine):
    name = "m2fp"
    description = "M2FP human parsing (ModelScope, ResNet-101), 20 classes, multi-person; weights CC BY-NC 4.0"

    def __init__(self, model: str = DEFAULT_MODEL, model_dir: str | None = None, revision: str | None = None,
                 size: int = 256, runtime: str = "auto", precision: str = "auto", threads: int | None = None,
                 triton: str | None = None, triton_model: str | None = None, triton_timeout_s: float = 10.0,
                 **_: Any) -> None:
        if runtime not in ("auto", "torch", *RUNTIMES):
            raise EngineUnavailable(f"unknown runtime {runtime!r}; choose from auto, torch, {', '.join(RUNTIMES)}")
        try:
            self.short_side = int(size)
            self.canvas = Canvas.for_short_side(self.short_side)
        except ValueError as exc:
            raise EngineUnavailable(f"{exc} (usual sizes: {', '.join(map(str, SHORT_SIDES))})") from None
        self._buf: np.ndarray | None = None
        #: calls may overlap (one per stream) when the forward pass is remote: Triton batches them
        self.concurrent = bool(triton)
        if triton:
            self._open_remote(triton, triton_model, float(triton_timeout_s), model_dir)
            return
        try:
            self.model_dir = locate(model, model_dir, revision)
            self.config = read_config(self.model_dir)
        except WeightsMissing as exc:
            raise EngineUnavailable(str(exc)) from None
        except ConfigError as exc:
            raise EngineUnavailable(f"{exc}; re-download with: {fetch_command(model)}") from None
        except ValueError as exc:  # unknown model name
            raise EngineUnavailable(str(exc)) from None
        if precision not in ("auto", "f32", "bf16"):
            raise EngineUnavailable(f"unknown precision {precision!r}; choose from auto, f32, bf16")
        self.threads = int(threads or default_threads())
        self._classes = make_classes(self.config.class_names)
        self._num = len(self._classes)
        self.runtime, self.precision, self._run = self._open(runtime, precision)
        log.info("m2fp: %s at short side %d (canvas %s), %s %s, %d threads", self.model_dir, self.short_side,
                 self.canvas.key, self.runtime, self.precision, self.threads)

    def _open(self, runtime: str, precision: str) -> tuple[str, str, Any]:
        if runtime != "torch":
            found = find_export(self.model_dir, self.canvas, runtime, precision)
            if found is not None:
                rt, path, rec = found
                try:
                    return rt, rec.precision, open_runner(rt, path, rec.precision, self.threads)
                except ExportError as exc:
                    if runtime != "auto":
                        raise EngineUnavailable(str(exc)) from None
                    log.warning("m2fp: cannot use export %s (%s); falling back to torch", path, exc)
            elif runtime != "auto":
                raise EngineUnavailable(f"no {runtime} export for canvas {self.canvas.key} in {self.model_dir}; "
                                        f"make one with: m2fp export --size {self.short_side} --runtime {runtime}"
                                        + f" --model-dir {self.model_dir}")
            else:
                log.info("m2fp: no export for %s yet (m2fp export --size %d makes one, ~2x faster); using torch",
                         self.canvas.key, self.short_side)
        try:
            from .modelscope_compat import MissingDependency
            from .network import load_core, run_core
            core, _ = load_core(self.model_dir, self.threads)
        except (ImportError, MissingDependency) as exc:
            raise EngineUnavailable(f"{exc}") from None
        return "torch", "f32", lambda image: run_core(core, image)

    def _open_remote(self, url: str, model: str | None, timeout_s: float, model_dir: str | None) -> None:
        from ...triton.remote import TritonAddress, TritonModel, TritonUnavailable
        try:
            address = TritonAddress.parse(url)
        except ValueError as exc:
            raise EngineUnavailable(str(exc)) from None
        remote = TritonModel(address, model or f"m2fp_{self.canvas.key}", timeout_s)
        try:
            meta = remote.info()
        except TritonUnavailable as exc:
            raise EngineUnavailable(f"{exc} (start one with: m2fp triton --model-repo DIR, after "
                                    f"m2fp export --triton-repo DIR --size {self.short_side})") from None
        from ...triton.repository import INPUTS, OUTPUT
        if meta.tensors != (*INPUTS, OUTPUT):
            raise EngineUnavailable(f"Triton model {meta.name} has tensors {', '.join(meta.tensors)}, not "
                                    f"{', '.join((*INPUTS, OUTPUT))}: re-export it with this version's "
                                    f"m2fp export --triton-repo")
        if meta.canvas_hw != (self.canvas.height, self.canvas.width):
            raise EngineUnavailable(f"Triton model {meta.name} takes {meta.canvas_hw[0]}x{meta.canvas_hw[1]}, "
                                    f"not this size's canvas {self.canvas.key}")
        names = meta.classes
        if names is None:
            if not model_dir:
                raise EngineUnavailable(f"Triton model {meta.name} does not list its classes; pass -E model_dir=")
            names = read_config(model_dir).class_names
        self.model_dir = None  # type: ignore[assignment]
        self.triton = address
        self.threads = 0
        self._classes = make_classes(names)
        self._num = len(self._classes)
        self.runtime, self.precision, self._run = "triton", "f32", remote
        log.info("m2fp: forward pass on Triton %s, model %s (canvas %s, max batch %d)", address, meta.name,
                 self.canvas.key, meta.max_batch_size)

    @property
    def classes(self) -> tuple[ClassInfo, ...]:
        return self._classes

    @property
    def preferred_input(self) -> tuple[int, int]:
        """The canvas (e.g. 480x256): a 16:9 frame scaled into it has exactly the model's short side."""
        return (self.canvas.width, self.canvas.height)

    def infer(self, rgb: np.ndarray, stream: StreamContext | None = None,
              motion: FlowTracker | None = None) -> EngineOutput:
        if self.concurrent:  # Triton: uint8 canvas up, class probabilities back (triton/repository.py)
            from ...triton.repository import INPUTS, OUTPUT
            image, p = place_u8(rgb, self.short_side, self.canvas)
            sem = self._run.run({INPUTS[0]: image, INPUTS[1]: np.array([[p.height, p.width]], np.int32)},
                                [OUTPUT])[OUTPUT]
            mh, mw = p.mask_shape
            return EngineOutput(np.ascontiguousarray(sem[0, :, :mh, :mw]), self._classes)
        image, placement = place(rgb, self.short_side, self.canvas, self._buf)
        self._buf = image
        logits, masks = self._run(image)
        return EngineOutput(semantic_probs(logits, masks, placement, self._num), self._classes)

    def close(self) -> None:
        close = getattr(self._run, "close", None)
        if close is not None:
            close()

    def info(self) -> dict[str, Any]:
        where = {"triton": str(self.triton)} if self.concurrent else {"model_dir": str(self.model_dir)}
        return {**super().info(), **where, "short_side": self.short_side,
                "canvas": self.canvas.key, "runtime": self.runtime, "precision": self.precision,
                "threads": self.threads}
