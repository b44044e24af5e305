"""RVM's graph without its full-resolution step, and that step done here.

RVM runs its network on the frame scaled down by ``downsample_ratio``; only its
last step (the deep guided filter's output) works at the frame's resolution:
two 4-channel maps (gain and offset, for foreground and alpha) are upsampled,
and ``out = gain * [rgb, mean(rgb)] + offset`` is split into foreground and
alpha.  We use the alpha alone, yet the graph upsamples all four channels and
computes the foreground too, and the runtimes spend that step in generic
resize and layout code: a large share of the frame on a CPU without AVX-512
(figures: docs/engines.md, "RVM's full-resolution step, outside the graph").

So the fixed-shape graph takes the frame already scaled down, stops at the
alpha's gain and offset at that size, and :class:`FullResStep` finishes it with
OpenCV on the one channel that matters.  Both scalings reproduce the graph's own:
its ``Resize`` nodes are bilinear with PyTorch's half-pixel centres (the
scaling down by the ratio itself, not by the ratio of the rounded sizes), which
is what ``cv2.resize`` does given the scale factors (down) or the sizes (up).
The alpha matches the whole graph's to within float rounding
(tests/server/test_rvm.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

GAIN, OFFSET = "alpha_gain", "alpha_offset"
SMALL_SRC = "src_small"
ALPHA_CHANNEL = 3  # the refiner's channels: foreground residual r, g, b, then alpha


@dataclass(frozen=True)
class FullResStep:
    """The frame's size (w, h) at the model and the ratio the network runs at."""

    w: int
    h: int
    ds: float

    @property
    def small(self) -> tuple[int, int]:
        """(w, h) the network runs at: the graph's own rounding (down, in float32) of size x ratio."""
        ratio = np.float32(self.ds)
        return int(np.float32(self.w) * ratio), int(np.float32(self.h) * ratio)

    def shrink(self, src: np.ndarray) -> np.ndarray:
        """(1, 3, h, w) float src -> (1, 3, h', w') the network's input."""
        sw, sh = self.small
        return np.stack([cv2.resize(src[0, c], None, fx=self.ds, fy=self.ds,
                                    interpolation=cv2.INTER_LINEAR)[:sh, :sw] for c in range(3)])[None]

    def alpha(self, gain: np.ndarray, offset: np.ndarray, src: np.ndarray) -> np.ndarray:
        """The graph's alpha at (h, w) from its gain and offset ((1, 1, h', w') each) and the float src."""
        return self.alpha_on(gain, offset, (src[0, 0] + src[0, 1] + src[0, 2]) * np.float32(1.0 / 3.0))

    def alpha_from_rgb(self, gain: np.ndarray, offset: np.ndarray, rgb: np.ndarray) -> np.ndarray:
        """The same from the (h, w, 3) uint8 frame a Triton-served graph was sent (``triton/rvm_repository``)."""
        grey = cv2.transform(rgb.astype(np.float32), np.full((1, 3), 1.0 / 765.0, np.float32))
        return self.alpha_on(gain, offset, grey)

    def alpha_on(self, gain: np.ndarray, offset: np.ndarray, grey: np.ndarray) -> np.ndarray:
        """``clip(gain x grey + offset)`` at (h, w); ``grey`` the mean of the frame's channels in 0..1."""
        size = (self.w, self.h)
        out = cv2.resize(gain[0, 0], size, interpolation=cv2.INTER_LINEAR) * grey
        out += cv2.resize(offset[0, 0], size, interpolation=cv2.INTER_LINEAR)
        return np.clip(out, 0.0, 1.0, out=out)


def low_res_graph(m: Any, step: FullResStep) -> Any:
    """The fixed-shape RVM graph ``m`` (an ``onnx.ModelProto``) cut as the module docstring says: input
    ``src_small`` (the frame scaled down), outputs the alpha's gain and offset, then the four states."""
    from onnx import TensorProto, helper

    g = m.graph
    down = [n for n in g.node if n.op_type == "Resize" and n.input[0] == "src"]
    if len(down) != 1:
        raise ValueError("not the RVM graph this cut was written for (its src scaling)")
    for n in g.node:
        n.input[:] = [SMALL_SRC if i == down[0].output[0] else i for i in n.input]
    sw, sh = step.small
    inputs = [helper.make_tensor_value_info(SMALL_SRC, TensorProto.FLOAT, [1, 3, sh, sw]),
              *(i for i in g.input if i.name != "src")]
    del g.input[:]
    g.input.extend(inputs)
    return without_full_res(m)


def without_full_res(m: Any) -> Any:
    """The RVM graph ``m`` with its outputs the alpha's gain and offset at the network's size, then the four
    states; its inputs as they are (a Triton-served graph still takes the whole frame and scales it down
    itself: ``triton/rvm_repository``).  Nodes no output needs are dropped."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    g = m.graph
    made_by = {o: n for n in g.node for o in n.output}
    alpha = [n for n in g.node if "pha" in n.output]
    if len(alpha) != 1:
        raise ValueError("not the RVM graph this cut was written for (its pha output)")
    split = made_by[alpha[0].input[0]]
    add = made_by[split.input[0]]
    mul = made_by[add.input[0]]
    if (split.op_type, add.op_type, mul.op_type) != ("Split", "Add", "Mul"):
        raise ValueError("not the RVM graph this cut was written for (its refiner's last step)")
    gain, offset = made_by[mul.input[0]].input[0], made_by[add.input[1]].input[0]  # the Resizes' inputs
    g.initializer.extend(numpy_helper.from_array(np.array([v], np.int64), name)
                         for v, name in ((ALPHA_CHANNEL, "alpha_from"), (ALPHA_CHANNEL + 1, "alpha_to"),
                                         (1, "alpha_axis")))
    g.node.extend(helper.make_node("Slice", [x, "alpha_from", "alpha_to", "alpha_axis"], [name], name=name)
                  for x, name in ((gain, GAIN), (offset, OFFSET)))
    outputs = [helper.make_tensor_value_info(GAIN, TensorProto.FLOAT, None),
               helper.make_tensor_value_info(OFFSET, TensorProto.FLOAT, None),
               *(o for o in g.output if o.name not in ("fgr", "pha"))]
    del g.output[:]
    g.output.extend(outputs)
    needed = {o.name for o in g.output}  # keep what the outputs need, in order
    kept = []
    for n in reversed(list(g.node)):
        if any(o in needed for o in n.output):
            kept.append(n)
            needed.update(n.input)
    del g.node[:]
    g.node.extend(reversed(kept))
    initializers = [i for i in g.initializer if i.name in needed]
    del g.initializer[:]
    g.initializer.extend(initializers)
    del g.value_info[:]
    for o in g.output:
        o.type.tensor_type.ClearField("shape")
    return onnx.shape_inference.infer_shapes(m)
