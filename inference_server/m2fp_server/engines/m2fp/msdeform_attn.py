"""Multi-scale deformable attention in plain PyTorch (no mmcv, no compiled kernel).

ModelScope's M2FP imports exactly two names from ``mmcv.ops.multi_scale_deform_attn``.
mmcv-full has no CPU kernel for this operator (its CPU path is a ``grid_sample``
loop anyway), no wheel for current Pythons, and a 12-minute source build; so this
module provides both names and :mod:`.modelscope_compat` registers it under the
mmcv module name.  The implementation is traceable, so it exports to ONNX with
the TorchScript exporter (``grid_sample`` is an ONNX opset-16 operator).

Shapes (N batch, S = sum of H_l*W_l, M heads, D channels per head, Q queries,
L levels, P points per level)::

    value               (N, S, M, D)
    spatial_shapes      (L, 2) rows (H_l, W_l)
    sampling_locations  (N, Q, M, L, P, 2) as (x, y) in [0, 1] of each level's map
    attention_weights   (N, Q, M, L, P), summing to 1 over (L, P)
    result              (N, Q, M*D)

Bilinear sampling with zero outside the map and ``align_corners=False``: the
pixel centre of column j is at x = (j + 0.5) / W_l.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

__all__ = ["MultiScaleDeformableAttnFunction", "multi_scale_deformable_attn_pytorch"]


def _level_sizes(spatial_shapes: torch.Tensor | Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    """(H, W) per level as Python ints (constants when traced: exports are per input size)."""
    return [(int(h), int(w)) for h, w in spatial_shapes]


def multi_scale_deformable_attn_pytorch(value: torch.Tensor,
                                        value_spatial_shapes: torch.Tensor | Sequence[Sequence[int]],
                                        sampling_locations: torch.Tensor,
                                        attention_weights: torch.Tensor) -> torch.Tensor:
    """Attention-weighted sum of bilinear samples from every level (see module docstring)."""
    n, _, heads, dim = value.shape
    _, queries, _, levels, points, _ = sampling_locations.shape
    sizes = _level_sizes(value_spatial_shapes)
    if len(sizes) != levels or levels == 0:
        raise ValueError(f"{len(sizes)} spatial shapes for {levels} sampling levels")
    per_level = value.split([h * w for h, w in sizes], dim=1)
    # grid_sample wants coordinates in [-1, 1]; heads go into the batch dimension.
    grids = (sampling_locations * 2.0 - 1.0).transpose(1, 2)  # (N, M, Q, L, P, 2)
    weights = attention_weights.transpose(1, 2)  # (N, M, Q, L, P)
    out: torch.Tensor | None = None
    for level, (h, w) in enumerate(sizes):
        feature = per_level[level].permute(0, 2, 3, 1).reshape(n * heads, dim, h, w)
        grid = grids[:, :, :, level].reshape(n * heads, queries, points, 2)
        sampled = F.grid_sample(feature, grid, mode="bilinear", padding_mode="zeros",
                                align_corners=False)  # (N*M, D, Q, P)
        # weighting each level as it comes avoids concatenating all samples (a third
        # less time for this operator in OpenVINO than concat-then-reduce)
        part = (sampled * weights[:, :, :, level].reshape(n * heads, 1, queries, points)).sum(-1)
        out = part if out is None else out + part
    return out.view(n, heads * dim, queries).transpose(1, 2).contiguous()  # type: ignore[union-attr]

class MultiScaleDeformableAttnFunction:
    """Stand-in for mmcv's CUDA autograd function, with the same ``apply`` signature.

    ModelScope calls ``apply`` first and falls back to the PyTorch function on any
    exception; answering directly avoids raising an exception per layer per frame
    and keeps the traced graph free of Python-only autograd nodes.
    """

    @staticmethod
    def apply(value: torch.Tensor, value_spatial_shapes: Any, value_level_start_index: Any,
              sampling_locations: torch.Tensor, attention_weights: torch.Tensor,
              im2col_step: int = 64) -> torch.Tensor:
        return multi_scale_deformable_attn_pytorch(value, value_spatial_shapes, sampling_locations,
                                                   attention_weights)
