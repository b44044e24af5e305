"""The pure-PyTorch multi-scale deformable attention against a loop-by-loop reference."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from m2fp_server.engines.m2fp.msdeform_attn import (  # noqa: E402
    MultiScaleDeformableAttnFunction, multi_scale_deformable_attn_pytorch)


def reference(value, shapes, locations, weights):
    """Bilinear sampling written out pixel by pixel (zero outside, pixel centres at (j+0.5)/W)."""
    n, _, heads, dim = value.shape
    _, queries, _, levels, points, _ = locations.shape
    starts = np.concatenate([[0], np.cumsum([h * w for h, w in shapes])])
    out = np.zeros((n, queries, heads, dim))
    for b in range(n):
        for q in range(queries):
            for m in range(heads):
                for lvl, (h, w) in enumerate(shapes):
                    fmap = value[b, starts[lvl]:starts[lvl + 1], m].reshape(h, w, dim)
                    for p in range(points):
                        x = locations[b, q, m, lvl, p, 0] * w - 0.5
                        y = locations[b, q, m, lvl, p, 1] * h - 0.5
                        x0, y0 = int(np.floor(x)), int(np.floor(y))
                        acc = np.zeros(dim)
                        for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
                            for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
                                if 0 <= yy < h and 0 <= xx < w:
                                    acc += wy * wx * fmap[yy, xx]
                        out[b, q, m] += weights[b, q, m, lvl, p] * acc
    return out.reshape(n, queries, heads * dim)


def random_case(rng, n, heads, dim, shapes, queries, points):
    levels = len(shapes)
    total = sum(h * w for h, w in shapes)
    value = rng.standard_normal((n, total, heads, dim))
    # some points outside [0, 1] to exercise the zero padding
    locations = rng.uniform(-0.2, 1.2, (n, queries, heads, levels, points, 2))
    logits = rng.standard_normal((n, queries, heads, levels * points))
    weights = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return value, locations, weights.reshape(n, queries, heads, levels, points)


@pytest.mark.parametrize("n,heads,dim,shapes,queries,points", [
    (1, 1, 1, [(1, 1)], 1, 1),
    (1, 2, 4, [(5, 7)], 6, 2),
    (2, 8, 4, [(8, 12), (4, 6), (2, 3)], 10, 4),
    (1, 4, 8, [(3, 9), (7, 2), (1, 5), (6, 6)], 13, 3),
])
def test_matches_reference(n, heads, dim, shapes, queries, points):
    rng = np.random.default_rng(hash((n, heads, dim, queries, points)) % 2**32)
    value, locations, weights = random_case(rng, n, heads, dim, shapes, queries, points)
    expected = reference(value, shapes, locations, weights)
    got = multi_scale_deformable_attn_pytorch(
        torch.from_numpy(value), torch.tensor(shapes), torch.from_numpy(locations), torch.from_numpy(weights))
    assert got.shape == (n, queries, heads * dim)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9, atol=1e-9)


def test_function_apply_is_the_same_operator_in_float32():
    rng = np.random.default_rng(7)
    shapes = [(6, 10), (3, 5), (2, 3)]
    value, locations, weights = (torch.from_numpy(a).float() for a in random_case(rng, 1, 8, 32, shapes, 20, 4))
    spatial = torch.tensor(shapes)
    start = torch.cat([spatial.new_zeros(1), (spatial[:, 0] * spatial[:, 1]).cumsum(0)[:-1]])
    a = MultiScaleDeformableAttnFunction.apply(value, spatial, start, locations, weights, 64)
    b = reference(value.double().numpy(), shapes, locations.double().numpy(), weights.double().numpy())
    np.testing.assert_allclose(a.numpy(), b, atol=1e-5)


def test_level_count_mismatch_is_an_error():
    rng = np.random.default_rng(1)
    value, locations, weights = random_case(rng, 1, 1, 2, [(2, 2), (1, 1)], 1, 1)
    with pytest.raises(ValueError, match="spatial shapes"):
        multi_scale_deformable_attn_pytorch(torch.from_numpy(value)[:, :4], torch.tensor([[2, 2]]),
                                            torch.from_numpy(locations), torch.from_numpy(weights))
