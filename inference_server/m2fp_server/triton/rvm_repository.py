"""RVM in a Triton model repository: the recurrent states go in and out explicitly.

``rvm_<w>x<h>`` takes ``src`` (N, h, w, 3) uint8 RGB (the frame resized as the
engine resizes it; the graph scales it to 0..1 and transposes it, exactly as
``engines.rvm.to_src`` does, at a quarter of the bytes) and the four recurrent
states ``r1i..r4i``, and returns the alpha's gain and offset at the network's
size (``alpha_gain``, ``alpha_offset``) and the next states ``r1o..r4o``: the
graph stops before its full-resolution step, which the edge does on the alpha
alone as the in-process engine does (``engines.rvm_lowres``): the server skips
that step, and two maps at the network's size travel back instead of one at the
frame's.  The edge (``-E triton=`` on ``rvm``) keeps each stream's states
and sends them with every frame; Triton stays stateless.  Why explicit state and
not Triton's sequence batcher with implicit state: docs/triton.md ("RVM").

The graph is the fetched model with ``downsample_ratio`` written in and every
shape fixed except the batch axis (as the in-process engine fixes them, see
``engines.rvm.ModelFiles``), so frames of different streams stack in one batch.
Repositories exported before that cut (output ``pha``, the alpha itself) are
still served: the edge reads which outputs the model has.
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

from ..engines.rvm_lowres import GAIN, OFFSET, FullResStep
from .repository import RepoSettings, _quote

log = logging.getLogger(__name__)

SRC = "src"
SRC_FLOAT = "src_float"  # the original graph's input, now made inside from the uint8 frame
STATES_IN = ("r1i", "r2i", "r3i", "r4i")
STATES_OUT = ("r1o", "r2o", "r3o", "r4o")
ALPHA = "pha"  # the whole graph's alpha: what repositories exported before the cut return
DOWNSAMPLE_PARAMETER = "m2fp_rvm_downsample"
#: the repository passes if a batch of two streams differs from the engine's own graph by at most this
MAX_DIFF = 1e-3


def model_name(w: int, h: int) -> str:
    return f"rvm_{w}x{h}"


@dataclass
class RVMRepoRecord:
    """``m2fp-obs.json`` beside config.pbtxt: the shape, the source model, the check it passed."""

    model: str
    width: int
    height: int
    downsample: float
    backend: str
    max_alpha_diff: float
    max_state_diff: float
    frames_checked: int
    created: str


def batched_graph(source: Path, out: Path, w: int, h: int, ds: float, shapes: list[tuple[int, ...]]) -> None:
    """The repository's graph (``uint8_whole_graph``), its outputs the alpha's gain and offset and the states."""
    import onnx

    from ..engines.rvm_lowres import without_full_res
    onnx.save(without_full_res(uint8_whole_graph(source, w, h, ds, shapes)), str(out))


def uint8_whole_graph(source: Path, w: int, h: int, ds: float, shapes: list[tuple[int, ...]]) -> Any:
    """The fetched graph (an ``onnx.ModelProto``) with a free batch axis, fixed (h, w) and state shapes,
    ``downsample_ratio`` fixed, and the frame taken as uint8; not cut yet (what the export wrote before the
    cut, with ``fgr`` dropped from its outputs)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from ..engines.rvm import pin_shapes
    m = onnx.load(str(source))
    fixed = {SRC: (3, h, w), **{n: s[1:] for n, s in zip(STATES_IN, shapes)}}
    # uint8 (N, h, w, 3) in; Cast, * 1/255, Transpose give the float src the graph was made for
    for node in m.graph.node:
        node.input[:] = [SRC_FLOAT if i == SRC else i for i in node.input]
    m.graph.initializer.append(numpy_helper.from_array(np.array(1.0 / 255.0, np.float32), "src_scale"))
    m.graph.node.insert(0, helper.make_node("Transpose", ["src_scaled"], [SRC_FLOAT], perm=[0, 3, 1, 2]))
    m.graph.node.insert(0, helper.make_node("Mul", ["src_cast", "src_scale"], ["src_scaled"]))
    m.graph.node.insert(0, helper.make_node("Cast", [SRC], ["src_cast"], to=TensorProto.FLOAT))
    for inp in m.graph.input:
        if inp.name == SRC:
            inp.type.tensor_type.elem_type = TensorProto.UINT8
            fixed[SRC] = (h, w, 3)
    outs = [o for o in m.graph.output if o.name in (ALPHA, *STATES_OUT)]
    del m.graph.output[:]
    m.graph.output.extend(outs)
    return pin_shapes(m, fixed, ds, free_batch=True)


def config_text(name: str, w: int, h: int, ds: float, shapes: list[tuple[int, ...]], s: RepoSettings) -> str:
    def dims(shape: tuple[int, ...]) -> str:
        return "[ " + ", ".join(str(int(d)) for d in shape) + " ]"
    states = [(n, s[1:]) for n, s in zip(STATES_IN, shapes)]
    inputs = [(SRC, (h, w, 3)), *states]
    sw, sh = FullResStep(w, h, ds).small
    outputs = [(GAIN, (1, sh, sw)), (OFFSET, (1, sh, sw)), *((o, s) for o, (_, s) in zip(STATES_OUT, states))]
    lines = [f"name: {_quote(name)}", f"backend: {_quote(s.backend)}", f"max_batch_size: {s.max_batch_size}",
             "input ["]
    lines.append(",\n".join(f"  {{ name: {_quote(n)} data_type: {'TYPE_UINT8' if n == SRC else 'TYPE_FP32'} "
                             f"dims: {dims(d)} }}" for n, d in inputs))
    lines += ["]", "output ["]
    lines.append(",\n".join(f"  {{ name: {_quote(n)} data_type: TYPE_FP32 dims: {dims(d)} }}" for n, d in outputs))
    lines += ["]", f"instance_group [ {{ count: {s.instances} kind: {s.kind} }} ]"]
    if s.dynamic_batching:
        preferred = sorted({b for b in (2, 4, 8, s.max_batch_size) if b <= s.max_batch_size})
        lines.append(f"dynamic_batching {{ preferred_batch_size: {dims(tuple(preferred))} "
                     f"max_queue_delay_microseconds: {s.batch_delay_us} }}")
    lines.append(f"parameters {{ key: {_quote(DOWNSAMPLE_PARAMETER)} value {{ string_value: {_quote(f'{ds:g}')} }} }}")
    return "\n".join(lines) + "\n"


def export_rvm_repository(source: Path, repo_dir: Path, width: int, downsample: float, settings: RepoSettings,
                          frames: list[np.ndarray], threads: int = 2) -> tuple[Path, RVMRepoRecord]:
    """Write ``rvm_<w>x<h>`` for 16:9 frames ``width`` wide, after checking two streams batched together.

    The check runs ``frames`` as one stream and their mirror images as another,
    in one batch per frame with the states carried, against the in-process
    engine's fixed graph run one stream at a time.
    """
    from ..engines.rvm import ModelFiles, OrtRunner, model_shape, model_rgb, to_src
    from .runtime import open_named
    if settings.backend != "onnxruntime":
        raise ValueError("RVM is exported for Triton's onnxruntime backend only")
    settings.validate()
    w, h = model_shape((16 * 64, 9 * 64), width)
    files = ModelFiles(source, Path(tempfile.mkdtemp(prefix="rvm-fixed-")))
    name = model_name(w, h)
    repo_dir = Path(repo_dir)
    repo_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=repo_dir, prefix=".tmp-"))
    try:
        fixed, shapes = files.fixed(w, h, downsample)
        (tmp / "1").mkdir()
        t0 = time.perf_counter()
        batched_graph(source, tmp / "1" / "model.onnx", w, h, downsample, shapes)
        log.info("exported %s for Triton in %.1f s", name, time.perf_counter() - t0)
        ref = OrtRunner(fixed, shapes, FullResStep(w, h, downsample), threads)  # the in-process engine's graph
        run = open_named("onnxruntime", tmp / "1" / "model.onnx", threads)
        streams = [frames, [np.ascontiguousarray(f[:, ::-1]) for f in frames]]
        ref_rec = [ref.zero_states() for _ in streams]
        rec = [np.concatenate(r) for r in zip(*ref_rec)]
        da = ds_ = 0.0
        step = FullResStep(w, h, downsample)
        for i in range(len(frames)):
            rgb = [model_rgb(s[i], w, h) for s in streams]
            out = run({SRC: np.stack(rgb), **dict(zip(STATES_IN, rec))})
            for k, s in enumerate(streams):
                pha, ref_rec[k] = ref(to_src(s[i], w, h), ref_rec[k])
                mine = step.alpha_from_rgb(out[GAIN][k:k + 1], out[OFFSET][k:k + 1], rgb[k])
                da = max(da, float(np.abs(mine - pha).max()))
                ds_ = max(ds_, max(float(np.abs(out[o][k] - r[0]).max()) for o, r in zip(STATES_OUT, ref_rec[k])))
            rec = [out[o] for o in STATES_OUT]
        log.info("two streams batched, %d frames: max |d alpha| %.2e, max |d state| %.2e", len(frames), da, ds_)
        if not da <= MAX_DIFF:
            raise ValueError(f"the batched RVM graph differs from the engine's by {da:.3g} in alpha "
                             f"(limit {MAX_DIFF}); nothing written to {repo_dir}")
        (tmp / "config.pbtxt").write_text(config_text(name, w, h, downsample, shapes, settings))
        record = RVMRepoRecord(str(source), w, h, downsample, settings.backend, da, ds_, len(frames),
                               time.strftime("%Y-%m-%dT%H:%M:%S"))
        (tmp / "m2fp-obs.json").write_text(json.dumps(asdict(record), indent=2))
        tmp.chmod(0o755)  # a container's tritonserver may run as another user
        target = repo_dir / name
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(files.cache, ignore_errors=True)
    return target, record
