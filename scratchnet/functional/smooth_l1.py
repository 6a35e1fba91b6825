"""Smooth-L1 (Huber-style) loss of box regression: quadratic near zero, linear in the tails, so one
badly-placed box cannot dominate the gradient (Girshick 2015, Fast R-CNN, eq. 3).

Legend: any shape (...), typically (R, 4) box deltas. ``reduction``: "sum" | "mean" | "none".
See chapters/27-rcnn.md#eq-smooth-l1.
"""
from __future__ import annotations

from typing import NamedTuple

from .._checks import check_float
from ..backend import get_array_module
from .loss import _check_reduction, _reduce, check_dloss

__all__ = ["smooth_l1_loss", "smooth_l1_loss_backward"]


class SmoothL1Cache(NamedTuple):
    """What smooth_l1_loss_backward needs: the differences, the weights, beta and the reduction."""
    diff: object  # (...) x − target
    weight: object  # (...) or None
    beta: float
    reduction: str


# start-smooth-l1
def smooth_l1_loss(x, target, *, beta=1.0, weight=None, reduction="sum"):
    """ℓ = reduce(w ⊙ s(x − t)) with s(d) = d²/(2β) for |d| < β, |d| − β/2 otherwise (β = 0: |d|).

    x, target, weight (...) of one shape; reduction "sum" (the default), "mean" (over all
    elements) or "none". PyTorch's ``smooth_l1_loss(beta=...)``, times the weight.
    Backward: dx = dℓ · w ⊙ s'(d) (/ n for "mean"), s'(d) = d/β for |d| < β, sign(d) otherwise.
    See chapters/27-rcnn.md#eq-smooth-l1.
    """
    check_float("smooth_l1_loss", "x", x)
    _check_reduction("smooth_l1_loss", reduction)
    if target.shape != x.shape or (weight is not None and weight.shape != x.shape):
        raise ValueError(f"smooth_l1_loss: x {tuple(x.shape)}, target {tuple(target.shape)} and weight "
                         f"{None if weight is None else tuple(weight.shape)} must have one shape")
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be ≥ 0, got {beta}")
    xp = get_array_module(x, target, weight)
    d = x - target
    a = xp.abs(d)
    per_item = xp.where(a < beta, 0.5 * d * d / beta, a - 0.5 * beta) if beta > 0 else a
    if weight is not None:
        per_item = per_item * weight
    return _reduce(xp, per_item, reduction, d.size), SmoothL1Cache(d, weight, beta, reduction)


def smooth_l1_loss_backward(dloss, cache):
    """dx of ``smooth_l1_loss`` (the target gets no gradient)."""
    d, weight, beta, reduction = cache
    check_dloss("smooth_l1_loss_backward", dloss, d.shape if reduction == "none" else (), d.dtype)
    xp = get_array_module(d)
    slope = xp.where(xp.abs(d) < beta, d / beta, xp.sign(d)) if beta > 0 else xp.sign(d)  # s'(d)
    if weight is not None:
        slope = slope * weight
    scale = dloss / d.size if reduction == "mean" else dloss
    return (slope * scale).astype(d.dtype, copy=False)
# end-smooth-l1
