"""Inverted dropout. Legend: any shape. See chapters/01-mlp.md#dropout."""
from __future__ import annotations

from .._checks import check_float, check_grad
from .._random import get_rng
from ..backend import get_array_module

__all__ = ["dropout", "dropout_backward", "dropout_mask"]


def dropout_mask(shape, p, *, rng=None, dtype="float32", xp=None):
    """The scaled keep-mask m = Bernoulli(1 − p) / (1 − p), as a float array of ``dtype``."""
    import numpy as np
    rng = get_rng(rng)
    keep = rng.random(shape) >= p  # drawn on the CPU so a seed gives the same mask on every device
    m = keep.astype(dtype) / (1.0 - p)
    return m if xp is None or xp is np else xp.asarray(m)


def dropout(x, *, p, training=True, rng=None, mask=None):
    """y = x ⊙ m with m = Bernoulli(1 − p)/(1 − p) in training, y = x in evaluation.

    ``mask`` (x's shape, already scaled) overrides ``rng`` for reproducible gradchecks.
    Backward: dx = dy ⊙ m.
    """
    check_float("dropout", "x", x)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return x, (None, x.shape, x.dtype)
    xp = get_array_module(x)
    if mask is None:
        mask = dropout_mask(x.shape, p, rng=rng, dtype=x.dtype, xp=xp)
    elif mask.shape != x.shape:
        raise ValueError(f"dropout: mask shape {tuple(mask.shape)} does not match x shape {tuple(x.shape)}")
    y = x * mask  # (...)
    return y, (mask, y.shape, y.dtype)


def dropout_backward(dy, cache):
    mask, shape, dtype = cache
    check_grad("dropout_backward", "dy", dy, shape, dtype)
    return dy if mask is None else dy * mask
