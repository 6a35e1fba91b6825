"""Gradient-check cases of the detection pairs: smooth-L1 (β, weights, reductions), RoI pooling and
RoIAlign (aligned or not, fixed or adaptive sampling, rois at fractional positions, over the edge)."""
from __future__ import annotations

import numpy as np

from ... import functional as F
from ..checker import check_function
from ..registry import register_case


def _rng():
    return np.random.default_rng(2727)


def _rois(r, N, H, W, R, scale=1.0):
    """R rois [b, x1, y1, x2, y2] in image pixels at fractional positions, some over the map's edge."""
    x1 = r.uniform(-1.3, W * 0.6, R) / scale
    y1 = r.uniform(-1.3, H * 0.6, R) / scale
    x2 = x1 + r.uniform(1.2, W * 0.7, R) / scale
    y2 = y1 + r.uniform(1.2, H * 0.7, R) / scale
    return np.stack([r.integers(0, N, R).astype(np.float64), x1, y1, x2, y2], axis=1)  # (R, 5)


@register_case("detection.smooth_l1")
def smooth_l1_case():
    r = _rng()
    x, t = r.standard_normal((6, 4)), r.standard_normal((6, 4))
    x[np.abs(x - t) - 0.5 < 0.05] += 0.2  # off the kinks at |d| = β
    w = r.random((6, 4))
    f, b = F.smooth_l1_loss, F.smooth_l1_loss_backward
    return [check_function(f, b, [x, t], wrt=[0], names=["x"], beta=0.5, title="smooth_l1[sum]"),
            check_function(f, b, [x, t], wrt=[0], names=["x"], beta=0.5, reduction="mean", title="smooth_l1[mean]"),
            check_function(f, b, [x, t], wrt=[0], names=["x"], beta=0.5, weight=w, reduction="none",
                           title="smooth_l1[weight, none]"),
            check_function(f, b, [x, t], wrt=[0], names=["x"], beta=0.0, title="smooth_l1[β=0, L1]")]


@register_case("detection.roi_pool")
def roi_pool_case():
    r = _rng()
    out = []
    for (N, C, H, W), size, scale in [((2, 3, 9, 11), (3, 3), 1.0), ((1, 2, 8, 8), (2, 4), 0.5)]:
        x = r.permutation(N * C * H * W).reshape(N, C, H, W) * 0.01  # distinct values: no ties
        rois = _rois(r, N, H, W, 4, scale)
        out.append(check_function(F.roi_pool, F.roi_pool_backward, [x, rois, size, scale], wrt=[0], names=["x"],
                                  title=f"roi_pool[{size}, scale={scale}]"))
    return out


@register_case("detection.roi_align")
def roi_align_case():
    r = _rng()
    out = []
    for (N, C, H, W), size, scale, sr, aligned in [((2, 3, 9, 11), (3, 3), 1.0, 2, True),
                                                   ((1, 2, 8, 8), (2, 4), 0.5, 0, True),
                                                   ((2, 2, 7, 9), (2, 2), 1.0, 3, False),
                                                   ((1, 3, 10, 6), (4, 3), 0.25, -1, False)]:
        x = r.standard_normal((N, C, H, W))
        rois = _rois(r, N, H, W, 5, scale)
        out.append(check_function(F.roi_align, F.roi_align_backward, [x, rois, size, scale], wrt=[0], names=["x"],
                                  sampling_ratio=sr, aligned=aligned,
                                  title=f"roi_align[{size}, scale={scale}, sampling={sr}, aligned={aligned}]"))
    return out
