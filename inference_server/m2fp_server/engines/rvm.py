"""``rvm``: RobustVideoMatting (MobileNetV3, GPL-3.0), a recurrent video-matting model.

Fetched by ``m2fp fetch-weights rvm`` (never shipped).  RVM carries four hidden
states from frame to frame: that memory is what makes it hold full bodies and
small people where per-frame models lose them, so each stream keeps its own
states, and they are reset when the picture jumps (scene cut) or the stream
pauses (a long gap), where old memory would paint the last scene's person.

Its soft alpha is returned as it is: the filter's threshold and feather apply to
it as to any engine's probability.

Speed comes from fixing everything the ONNX file leaves open: per stream shape
(input size, the four state sizes) and ``downsample_ratio`` are written into a
copy of the graph, so the runtime folds the shape arithmetic away, and the
graph's one full-resolution step is done outside it on the alpha alone
(``rvm_lowres``).  Which runtime
(ONNX Runtime or OpenVINO), which precision (fp32, bf16 where the CPU has the
instructions, int8) and which input size run is a measured choice
(``m2fp tune-rvm``); the default before any measurement is ONNX Runtime fp32.

``-E triton=grpc://host:8001`` runs the forward pass on a Triton Inference Server
(``rvm_<w>x<h>`` of ``m2fp export --triton-repo``): the stream's states still live
here and travel with each frame (docs/triton.md says why).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

import cv2
import numpy as np

from m2fp_protocol import PERSON_CLASSES

from ..cpu import flags_summary, has_bf16
from .base import EngineOutput, EngineUnavailable, PersonEngine, StreamContext, flag, person_output
from .embedded_detect import Person, box_iou
from .rvm_choice import PRECISIONS as PRECISIONS  # re-exported: the engine's vocabulary
from .rvm_choice import RUNTIMES as RUNTIMES
from .rvm_choice import RVMSetting as RVMSetting
from .rvm_choice import load_choice
from .rvm_lowres import GAIN, OFFSET, SMALL_SRC, FullResStep, low_res_graph
from .still_hold import StillHold
from .rvm_view import Box, View, ZoomSettings, crop, follow, holds, move_states, paste, union, wanted

if TYPE_CHECKING:
    from ..postprocess.motion import FlowTracker

log = logging.getLogger(__name__)

STATE_INPUTS = ("r1i", "r2i", "r3i", "r4i")
NEVER = 10**9  # detected_age of a stream that has not run the detector since it started afresh
PARTS = 3  # the parts of a wide frame the detector looks at in turn (RVMEngine._small_people) ...
WIDE = 1.3  # ... a frame at least this much wider than tall


def model_shape(frame: tuple[int, int], width: int) -> tuple[int, int]:
    """(w, h) the model runs at for a frame (w, h): ``width`` wide (never upscaled), even sides, and
    at most the pixels of a 16:9 frame ``width`` wide.

    The cost per frame grows with the pixels; ``m2fp tune-rvm`` times 16:9 frames, so a 4:3 or
    portrait frame is run at the same pixel count (a 640x480 frame at 554x414 for width 640) and
    costs what was measured.
    """
    fw, fh = frame
    w, h = float(min(width, fw)), fh * min(width, fw) / fw
    cap = width * width * 9.0 / 16.0
    if w * h > cap:  # scaled to the cap, then rounded down so that it holds
        k = (cap / (w * h)) ** 0.5
        return max(2, int(w * k) // 2 * 2), max(2, int(h * k) // 2 * 2)
    return max(2, int(w) // 2 * 2), max(2, int(round(h / 2.0)) * 2)


#: the network's input (the model's input scaled by ``downsample``) has at least this many pixels a side: below
#: it RVM's strided convolutions reach zero size and the runtimes fail on the frame
MIN_NETWORK_SIDE = 16


def fit_network(shape: tuple[int, int], ds: float) -> tuple[int, int]:
    """``shape`` (w, h) with each side stretched, if need be, so that the network's input is not too small.

    Only a frame a few pixels across (or a sliver) needs it; its alpha is as meaningless as the frame,
    but it comes back at the frame's size instead of an engine failure on every frame.
    """
    least = int(np.ceil(MIN_NETWORK_SIDE / ds / 2.0)) * 2
    return max(shape[0], least), max(shape[1], least)


# --------------------------------------------------------------------------- fixed-shape graphs

def pin_shapes(m: Any, fixed: dict[str, tuple[int, ...]], ds: float, free_batch: bool = False) -> Any:
    """The RVM graph ``m`` with the inputs in ``fixed`` given those shapes (after a free ``batch`` axis when
    ``free_batch``: ``fixed`` then leaves it out), ``downsample_ratio`` a constant, and its outputs' shapes
    inferred again.  Shared by the in-process engine (which then cuts the full-resolution step off,
    ``rvm_lowres``) and the Triton export, so both run the same network."""
    import onnx
    from onnx import numpy_helper
    for inp in m.graph.input:
        if inp.name in fixed:
            dims = list(inp.type.tensor_type.shape.dim)
            if free_batch:
                dims[0].ClearField("dim_value")
                dims[0].dim_param = "batch"
                dims = dims[1:]
            for d, v in zip(dims, fixed[inp.name]):
                d.ClearField("dim_param")
                d.dim_value = v
    keep = [i for i in m.graph.input if i.name != "downsample_ratio"]
    del m.graph.input[:]
    m.graph.input.extend(keep)
    m.graph.initializer.append(numpy_helper.from_array(np.array([ds], np.float32), "downsample_ratio"))
    for o in m.graph.output:  # let shape inference fill these in
        o.type.tensor_type.ClearField("shape")
    return onnx.shape_inference.infer_shapes(m)


class ModelFiles:
    """The fetched model and its fixed-shape (and int8) copies, made once and kept in the cache."""

    def __init__(self, path: Path, cache: Path | None = None) -> None:
        self.path = path
        self.cache = cache or path.parent / "fixed"
        self._lock = threading.Lock()

    def state_shapes(self, w: int, h: int, ds: float) -> list[tuple[int, ...]]:
        """The recurrent states' shapes at this size, read off one run of the dynamic model."""
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.log_severity_level = 3
        s = ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])
        zero = np.zeros((1, 1, 1, 1), np.float32)
        out = s.run(None, {"src": np.zeros((1, 3, h, w), np.float32), **{k: zero for k in STATE_INPUTS},
                           "downsample_ratio": np.array([ds], np.float32)})
        return [tuple(int(d) for d in o.shape) for o in out[2:]]

    def fixed(self, w: int, h: int, ds: float) -> tuple[Path, list[tuple[int, ...]]]:
        """A copy of the graph with every input shape and ``downsample_ratio`` written in, and its
        full-resolution step left to :class:`FullResStep` (``rvm_lowres``)."""
        import onnx
        from onnx import helper
        out = self.cache / f"rvm-{w}x{h}-ds{ds:g}-lowres.onnx"
        with self._lock:
            shapes = self.state_shapes(w, h, ds)
            if out.is_file():
                return out, shapes
            m = onnx.load(str(self.path))
            if m.opset_import[0].version < 13:  # opset 13: per-channel int8 (DequantizeLinear's axis)
                from onnx import version_converter
                m = version_converter.convert_version(m, 13)
            m = pin_shapes(m, {"src": (1, 3, h, w), **dict(zip(STATE_INPUTS, shapes))}, ds)
            m = low_res_graph(m, FullResStep(w, h, ds))
            helper.set_model_props(m, {"m2fp_fixed": f"{w}x{h} ds{ds:g} lowres"})
            self.cache.mkdir(parents=True, exist_ok=True)
            part = out.with_suffix(".part")
            onnx.save(m, str(part))
            part.replace(out)
        return out, shapes

    def int8(self, w: int, h: int, ds: float, calibration: list[np.ndarray]) -> tuple[Path, list[tuple[int, ...]]]:
        """Static int8 (QDQ, per channel) of the fixed graph, calibrated on ``calibration`` frames in order.

        The states are calibrated as the model meets them: each frame gets the
        previous frame's states, as in a video.
        """
        fp32, shapes = self.fixed(w, h, ds)
        out = fp32.with_name(fp32.stem + "-int8conv.onnx")  # the name says the recipe: convolutions only
        with self._lock:
            if out.is_file():
                return out, shapes
            from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                                  QuantType, quantize_static)
            step = FullResStep(w, h, ds)
            runner = OrtRunner(fp32, shapes, step, threads=2)
            feeds: list[dict[str, np.ndarray]] = []
            rec = runner.zero_states()
            for rgb in calibration:
                src = to_src(rgb, w, h)
                feeds.append({SMALL_SRC: step.shrink(src), **dict(zip(STATE_INPUTS, rec))})
                _, rec = runner(src, rec)

            class Reader(CalibrationDataReader):
                def __init__(self) -> None:
                    self._it = iter(feeds)

                def get_next(self) -> dict[str, np.ndarray] | None:
                    return next(self._it, None)

            part = out.with_suffix(".part.onnx")
            # convolutions only: the recurrent (GRU) arithmetic and the shape computations stay in float
            # (quantizing everything lost up to 0.12 IoU and broke the graph at some sizes)
            quantize_static(str(fp32), str(part), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=["Conv"])
            part.replace(out)
        return out, shapes


def model_rgb(rgb: np.ndarray, w: int, h: int) -> np.ndarray:
    """HxWx3 uint8 RGB at the model's size (what a Triton-served RVM takes, triton/rvm_repository.py)."""
    return rgb if rgb.shape[:2] == (h, w) else cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)


def to_src(rgb: np.ndarray, w: int, h: int) -> np.ndarray:
    """HxWx3 uint8 RGB -> (1, 3, h, w) float32 in 0..1, RVM's input."""
    small = model_rgb(rgb, w, h)
    return np.ascontiguousarray(small.transpose(2, 0, 1)[None], dtype=np.float32) * np.float32(1.0 / 255.0)


# --------------------------------------------------------------------------- runtimes
class Runner(Protocol):
    shapes: list[tuple[int, ...]]
    graph: str  # which cut of RVM's graph runs: "lowres" (its full-resolution step done here) or "whole"

    def __call__(self, src: np.ndarray, rec: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]: ...

    def zero_states(self) -> list[np.ndarray]: ...


class _States:
    shapes: list[tuple[int, ...]]
    graph = "lowres"

    def zero_states(self) -> list[np.ndarray]:
        return [np.zeros(s, np.float32) for s in self.shapes]


def ort_session(path: Path, threads: int) -> Any:
    """An ONNX Runtime session for an RVM graph, as every RVM runner here (and ``bench --rvm``'s baseline)
    runs it."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    # no busy-waiting between frames: on 2 shared cores it takes time from the server's other work
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def openvino_compiled(path: Path, threads: int, precision: str) -> Any:
    """An OpenVINO compiled model for an RVM graph, as every RVM runner here (and ``bench --rvm``'s
    baseline) runs it."""
    import openvino as ov
    core = ov.Core()
    cfg = {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
           "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32"}
    return core.compile_model(core.read_model(str(path)), "CPU", cfg)


class OrtRunner(_States):
    def __init__(self, path: Path, shapes: list[tuple[int, ...]], step: FullResStep, threads: int = 2) -> None:
        self.shapes, self._step = shapes, step
        self._s = ort_session(path, threads)
        self._outs = [GAIN, OFFSET, "r1o", "r2o", "r3o", "r4o"]

    def __call__(self, src: np.ndarray, rec: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        gain, offset, *rec = self._s.run(self._outs, {SMALL_SRC: self._step.shrink(src),
                                                      **dict(zip(STATE_INPUTS, rec))})
        return self._step.alpha(gain, offset, src), rec


class OpenVinoRunner(_States):
    def __init__(self, path: Path, shapes: list[tuple[int, ...]], step: FullResStep, threads: int = 2,
                 precision: str = "fp32") -> None:
        self.shapes, self._step = shapes, step
        self._c = openvino_compiled(path, threads, precision)
        self._req = self._c.create_infer_request()
        self._names = [SMALL_SRC, *STATE_INPUTS]
        outs = {o.get_any_name(): i for i, o in enumerate(self._c.outputs)}
        self._out = [outs[n] for n in (GAIN, OFFSET, "r1o", "r2o", "r3o", "r4o")]

    def __call__(self, src: np.ndarray, rec: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        r = self._req.infer(dict(zip(self._names, [self._step.shrink(src), *rec])))
        gain, offset, *rec = (r[i] for i in self._out)
        # the alpha is computed into a new array; OpenVINO reuses its buffers for the states
        return self._step.alpha(gain, offset, src), [np.array(x, copy=True) for x in rec]


def build_runner(files: ModelFiles, setting: RVMSetting, w: int, h: int, threads: int = 2,
                 calibration: Callable[[], list[np.ndarray]] | None = None) -> Runner:
    """One compiled model for one shape; raises :class:`EngineUnavailable` when the runtime cannot run here."""
    if setting.precision == "bf16" and not has_bf16():
        raise EngineUnavailable("bf16 needs a CPU with avx512_bf16 or amx_bf16; this one has: " + flags_summary())
    if setting.precision == "bf16" and setting.runtime != "openvino":
        raise EngineUnavailable("bf16 runs on OpenVINO only")
    if setting.precision == "int8":
        if calibration is None:
            raise EngineUnavailable("int8 needs calibration frames")
        path, shapes = files.int8(w, h, setting.downsample, calibration())
    else:
        path, shapes = files.fixed(w, h, setting.downsample)
    step = FullResStep(w, h, setting.downsample)
    try:
        if setting.runtime == "openvino":
            return OpenVinoRunner(path, shapes, step, threads, setting.precision)
        return OrtRunner(path, shapes, step, threads)
    except ImportError as exc:
        raise EngineUnavailable(f"{setting.runtime} is not installed: pip install 'm2fp-obs[rvm]'") from exc


class TritonRunner(_States):
    """RVM's forward pass on a Triton Inference Server: this stream's states go with the frame and come back.

    Triton keeps no state (any replica, any batch; a restarted Triton loses
    nothing): the edge owns every stream's memory, as in-process.  A model that
    returns the alpha's gain and offset (``graph`` "lowres") gets its
    full-resolution step done here; one exported before that cut returns the
    alpha itself ("whole").
    """

    def __init__(self, model: Any, w: int, h: int, downsample: float) -> None:
        from ..triton.rvm_repository import ALPHA, DOWNSAMPLE_PARAMETER, STATES_IN, STATES_OUT
        from ..triton.remote import TritonUnavailable
        try:
            cfg = model.config()
        except TritonUnavailable as exc:
            raise EngineUnavailable(f"{exc} (make it with: m2fp export --triton-repo DIR --triton-models rvm "
                                    f"--rvm-width W, then serve DIR with m2fp triton)") from None
        dims = {i["name"]: [int(d) for d in i["dims"]] for i in cfg["input"]}
        if set(STATE_INPUTS) - set(dims):
            raise EngineUnavailable(f"Triton model {model.model} has no recurrent-state inputs {STATES_IN}")
        theirs = cfg.get("parameters", {}).get(DOWNSAMPLE_PARAMETER, {}).get("string_value")
        if theirs is None or abs(float(theirs) - downsample) > 1e-6:
            raise EngineUnavailable(f"Triton model {model.model} runs downsample {theirs}, this engine "
                                    f"{downsample:g}: export it with --rvm-downsample {downsample:g}")
        outputs = {o["name"] for o in cfg["output"]}
        self.graph = "lowres" if {GAIN, OFFSET} <= outputs else "whole"
        alpha = (GAIN, OFFSET) if self.graph == "lowres" else (ALPHA,)
        if not set(alpha + STATES_OUT) <= outputs:
            raise EngineUnavailable(f"Triton model {model.model} returns {sorted(outputs)}, not an RVM graph's "
                                    f"{[*alpha, *STATES_OUT]}: export it again with m2fp export --triton-repo")
        self.model = model
        self.shapes = [(1, *dims[n]) for n in STATE_INPUTS]
        self._outputs = (*alpha, *STATES_OUT)
        self._step = FullResStep(w, h, downsample)

    def __call__(self, src: np.ndarray, rec: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """``src`` (1, h, w, 3) uint8, the frame as the model takes it."""
        out = self.model.run({"src": src, **dict(zip(STATE_INPUTS, rec))}, self._outputs)
        states = [out[n] for n in self._outputs[-len(STATE_INPUTS):]]
        if self.graph == "whole":
            return out[self._outputs[0]][0, 0], states
        return self._step.alpha_from_rgb(out[GAIN], out[OFFSET], src[0]), states


# --------------------------------------------------------------------------- per-stream state
@dataclass
class SceneCut:
    """Decides when the recurrent memory no longer describes the picture."""

    #: mean absolute difference (grey levels, on a 64-pixel-wide thumbnail) that counts as a new scene
    cut_level: float = 40.0
    #: seconds without frames after which the stream starts afresh
    gap_s: float = 1.0

    def thumbnail(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        small = cv2.resize(rgb, (64, max(1, round(64 * h / w))), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.int16)

    def is_cut(self, before: np.ndarray | None, now: np.ndarray) -> bool:
        if before is None or before.shape != now.shape:
            return True
        return float(np.abs(now - before).mean()) > self.cut_level


@dataclass(eq=False)
class RVMStream(StreamContext):
    """One stream's model shape and recurrent states (owned by the stream, dropped with it)."""

    shape: tuple[int, int] = (0, 0)  # (w, h) at the model
    states: list[np.ndarray] | None = None
    thumb: np.ndarray | None = None
    last_t: float = 0.0
    resets: int = 0
    frames: int = 0
    passes: int = 0  # forward passes (a frame can take more: ``settle``)
    view: View | None = None  # None: the whole frame
    seen: Box | None = None  # the people in the last alpha, frame pixels
    detected: list[Box] = field(default_factory=list)  # the last detection's people ...
    detected_age: int = NEVER  # ... and how many frames ago it ran
    scans: int = 0  # detections so far (which part of the frame the next one looks at)
    trying: Box | None = None  # the detection looked at while RVM sees nobody
    rejected: list[Box] = field(default_factory=list)  # detections where RVM found nobody
    hold: StillHold | None = None  # each pixel's last answer while its picture does not change


# --------------------------------------------------------------------------- engine
class RVMEngine(PersonEngine):
    name = "rvm"
    description = "RobustVideoMatting MobileNetV3 (recurrent, soft alpha; GPL-3.0, m2fp fetch-weights rvm)"

    def __init__(self, model_dir: str | None = None, runtime: str | None = None, precision: str | None = None,
                 width: int | None = None, downsample: float | None = None, threads: int = 2,
                 cut_level: float = 40.0, gap_s: float = 1.0, tuned: bool = True, triton: str | None = None,
                 triton_timeout_s: float = 10.0, zoom: bool = True, zoom_below: float = 0.5,
                 zoom_fill: float = 0.8, zoom_max: float = 3.0, hold_grey: float = 6.0, hold_prob: float = 0.35,
                 settle: int = 2, **_: Any) -> None:
        """``runtime``/``precision``/``width``/``downsample`` override the measured choice (``m2fp tune-rvm``).

        ``triton`` grpc://host:8001: the forward pass runs on Triton (model ``rvm_<w>x<h>`` of
        ``m2fp export --triton-repo``); no model file is needed here then.
        """
        from .. import rvm_weights
        self.remote: Any = None
        self.concurrent = bool(triton)  # remote calls of several streams overlap: Triton batches them
        path = None
        if triton:
            from ..triton.remote import TritonAddress, TritonModel
            try:
                self.remote = (TritonAddress.parse(triton), float(triton_timeout_s))
            except ValueError as exc:
                raise EngineUnavailable(str(exc)) from None
            self._models: dict[str, TritonModel] = {}
        else:
            try:
                path = rvm_weights.locate(model_dir)
            except rvm_weights.RVMWeightsMissing as exc:
                raise EngineUnavailable(str(exc)) from None
            try:
                import onnx  # noqa: F401  (fixed-shape copies)
                import onnxruntime  # noqa: F401
            except ImportError as exc:
                raise EngineUnavailable(f"{exc.name} is not installed: pip install 'm2fp-obs[rvm]'") from None
        base = (load_choice() if tuned else None) or RVMSetting()
        over = {k: v for k, v in dict(runtime=runtime, precision=precision, width=width,
                                      downsample=downsample).items() if v is not None}
        try:
            self.setting = RVMSetting(**{**base.to_json(), **{k: type(getattr(base, k))(v) for k, v in over.items()}})
        except (TypeError, ValueError) as exc:
            raise EngineUnavailable(f"bad RVM option: {exc}") from None
        self.files = ModelFiles(path) if path is not None else None
        self.threads = int(threads)
        self.scene = SceneCut(float(cut_level), float(gap_s))
        try:
            self.zoom = ZoomSettings(enabled=flag(zoom), below=float(zoom_below), fill=float(zoom_fill),
                                     max_zoom=float(zoom_max))
            self.hold = (float(hold_grey), float(hold_prob))
            self.settle = int(settle)
            if not 0 <= self.settle <= 8:
                raise ValueError("settle must be in 0..8")
        except (TypeError, ValueError) as exc:
            raise EngineUnavailable(f"bad RVM option: {exc}") from None
        self._detector: Any = None
        self._detector_lock = threading.Lock()
        self._runners: dict[tuple[int, int], Runner] = {}
        self._runners_lock = threading.Lock()
        # fail now, not on the first frame: build the 16:9 shape (the usual camera)
        self._first = self.runner_for(model_shape((16 * 64, 9 * 64), self.setting.width))
        if self.remote is not None:
            log.info("rvm: forward pass on Triton %s (%dpx ds%g)", self.remote[0], self.setting.width,
                     self.setting.downsample)
        else:
            log.info("rvm: %s, %d threads (CPU: %s)", self.setting.label, self.threads, flags_summary())


    @property
    def preferred_input(self) -> tuple[int, int]:
        return (self.setting.width, self.setting.width)

    def runner_for(self, shape: tuple[int, int]) -> Runner:
        with self._runners_lock:  # streams may call at once when the forward pass is remote
            r = self._runners.get(shape)
            if r is None:
                w, h = shape
                t0 = time.perf_counter()
                if self.remote is not None:
                    r = self._remote_runner(w, h)
                else:
                    assert self.files is not None
                    r = build_runner(self.files, self.setting, w, h, self.threads, self._calibration(w, h))
                self._runners[shape] = r
                log.info("rvm: model ready for %dx%d in %.1f s", w, h, time.perf_counter() - t0)
            return r

    def _remote_runner(self, w: int, h: int) -> Runner:
        from ..triton.remote import TritonModel
        from ..triton.rvm_repository import model_name
        address, timeout_s = self.remote
        model = TritonModel(address, model_name(w, h), timeout_s)
        self._models[model.model] = model
        return TritonRunner(model, w, h, self.setting.downsample)

    def _calibration(self, w: int, h: int) -> Callable[[], list[np.ndarray]]:
        def frames() -> list[np.ndarray]:
            from ..samples import moving_frames  # int8 calibration: a person moving, as a camera sends it
            return list(moving_frames((w, h), 24))
        return frames

    def new_stream(self) -> RVMStream:
        return RVMStream()

    def infer(self, rgb: np.ndarray, stream: StreamContext | None = None,
              motion: FlowTracker | None = None, now: float | None = None) -> EngineOutput:
        """One frame of one stream: its states go in, the next states come out (None: a lone frame)."""
        ctx = RVMStream() if stream is None else stream
        assert isinstance(ctx, RVMStream), "a context from another engine"
        clock = now is None  # a gap is time the stream sent nothing, so it runs from the previous frame's end
        now = time.monotonic() if now is None else now
        shape = fit_network(model_shape((rgb.shape[1], rgb.shape[0]), self.setting.width), self.setting.downsample)
        runner = self.runner_for(shape)
        thumb = self.scene.thumbnail(rgb)
        gap = ctx.frames > 0 and now - ctx.last_t > self.scene.gap_s
        frame = (rgb.shape[1], rgb.shape[0])
        whole = View.whole(frame, shape)
        fresh = ctx.states is None or shape != ctx.shape or gap or self.scene.is_cut(ctx.thumb, thumb)
        if fresh:
            if ctx.states is not None:
                ctx.resets += 1
                log.debug("rvm: stream reset (%s)", "gap" if gap else "new shape" if shape != ctx.shape else "cut")
            ctx.states, ctx.shape = runner.zero_states(), shape
            ctx.view, ctx.seen, ctx.detected, ctx.detected_age = None, None, [], NEVER
            ctx.trying, ctx.rejected, ctx.hold = None, [], None
        assert ctx.states is not None
        before = ctx.view or whole
        view = self._next_view(rgb, ctx, before, whole) if self.zoom.enabled else whole
        if view != before:
            ctx.states = move_states(ctx.states, before, view, shape)
        whole_small = model_rgb(rgb, *shape)  # the whole frame at the model's size
        small = whole_small if view == whole else crop(rgb, view, shape)
        src = small[None] if self.remote is not None else to_src(small, *shape)
        pha, ctx.states = runner(src, ctx.states)
        ctx.passes += 1
        seen = view.box(pha, self.zoom.min_area) if self.zoom.enabled or fresh else None
        if seen is not None and (fresh or (self.zoom.enabled and ctx.seen is None)):
            # Someone new to the states (a fresh stream, or a person just found): the states would take
            # a few frames to settle on them, visible as an outline that grows and shifts.  The same
            # frame again settles them now.
            for _ in range(self.settle):
                pha, ctx.states = runner(src, ctx.states)
                ctx.passes += 1
            seen = view.box(pha, self.zoom.min_area)
        # the end of this frame's work, not its start: a slow frame (settling, detections, a first graph
        # compile on a loaded host) is not a pause of the stream and must not reset its states
        ctx.thumb, ctx.last_t, ctx.view = thumb, (time.monotonic() if clock else now), view
        ctx.frames += 1
        if self.zoom.enabled:
            ctx.seen = seen
        alpha = paste(pha, view, whole)
        if ctx.hold is None:
            ctx.hold = StillHold(*self.hold)
        alpha = ctx.hold(whole_small, alpha)
        return person_output(alpha, PERSON_CLASSES)

    def _next_view(self, rgb: np.ndarray, ctx: RVMStream, now: View, whole: View) -> View:
        """Follow the people RVM saw in the last frame, and look at the small ones the detector finds.

        The whole frame already shows RVM everyone big enough for it, so only the detector's small
        people matter here.  Its hits include things that are not people; while RVM sees nobody, the
        view goes to one hit at a time, best first, and a hit where RVM finds nobody is not tried again
        until the next regular detection.
        """
        z = self.zoom
        frame = (rgb.shape[1], rgb.shape[0])
        first = ctx.detected_age >= NEVER  # a fresh stream: look everywhere at once, not a part per call
        ctx.detected_age += 1
        if ctx.detected_age >= (z.detect_every if ctx.seen is not None else z.search_every):
            if ctx.seen is None and ctx.trying is not None:
                ctx.rejected.append(ctx.trying)
            elif ctx.seen is not None:
                ctx.rejected = []
            ctx.trying = None
            parts = range(ctx.scans, ctx.scans + (PARTS if first and frame[0] >= WIDE * frame[1] else 1))
            found = sorted((p for part in parts for p in self._small_people(rgb, z.below * frame[1], part)),
                           key=lambda p: -p.score)
            ctx.detected = []
            for b in (p.body_box() for p in found):
                if not any(box_iou(b, r) > 0.3 for r in ctx.rejected + ctx.detected):
                    ctx.detected.append(b)
            ctx.detected_age, ctx.scans = 0, ctx.scans + len(parts)
        boxes = [ctx.seen] if ctx.seen is not None else []
        if ctx.detected_age < z.search_every and ctx.detected:  # a detection counts for a few frames
            if ctx.seen is None:
                ctx.trying = ctx.detected[0]
                boxes = [ctx.trying]
            else:
                boxes += ctx.detected
        people = union(boxes, frame)
        to = wanted(people, frame, ctx.shape, z)
        if to != whole and now != whole and holds(now, people, ctx.shape, z):
            return now
        return follow(now, to, 1.0 if ctx.seen is None else z.follow)

    def _small_people(self, rgb: np.ndarray, below: float, part: int) -> list[Person]:
        """People whose body is shorter than ``below``, from MediaPipe's shipped pose detector.

        On a wide frame the detector looks at the whole frame, then its left square, then its right
        square, one per call (``part``): a small person has twice the pixels on a square tile, and one
        detector run per call keeps the frames that detect short (a fresh stream's first call runs all
        three, so a small person is found on its first frame).
        """
        H, W = rgb.shape[:2]
        part = part % PARTS if W >= WIDE * H else 0
        # one detector for every stream: its input buffer and inference request are not for two threads at
        # once (streams through Triton run in parallel; a shared run gave one stream another's detections)
        with self._detector_lock:
            if self._detector is None:
                from .embedded_detect import PoseDetector
                self._detector = PoseDetector(threads=1, min_score=self.zoom.min_detection)
            people = self._detector(rgb) if part == 0 else self._detector.on_tile(rgb, 0 if part == 1 else W - H)
        return [p for p in people if 2.0 * p.body_radius < below]

    def info(self) -> dict[str, Any]:
        from .. import rvm_weights
        where = {"runtime": "triton", "triton": str(self.remote[0])} if self.remote is not None else {}
        # "graph": which cut of the graph runs, so that ``auto``'s cached timings of another are not reused
        return {**super().info(), **self.setting.to_json(), **where, "threads": self.threads,
                "graph": self._first.graph,
                "cpu_flags": flags_summary(), "licence": rvm_weights.RVM.licence}

    def close(self) -> None:
        for model in getattr(self, "_models", {}).values():
            model.close()
