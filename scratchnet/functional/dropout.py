"""Inverted dropout, and its per-sample form drop-path (stochastic depth).

Legend: any shape; N the leading (batch) axis. See chapters/01-mlp.md#dropout and
chapters/13-efficientnet.md#eq-drop-path.
"""
from __future__ import annotations

import numpy as np

from .._checks import check_float, check_grad
from .._random import get_rng
from ..backend import get_array_module, keep_mask

__all__ = ["dropout", "dropout_backward", "dropout_mask", "drop_path", "drop_path_backward"]


def dropout_mask(shape, p, *, rng=None, dtype="float32", xp=None):
    """The scaled keep-mask m = Bernoulli(1 − p) / (1 − p), as a float array of ``dtype`` on ``xp``'s device.

    On the CPU the keep bits are ``rng.random(shape) >= p``. On the GPU (``xp`` is cupy) they are drawn
    there by a cuRAND generator seeded with one draw from ``rng`` (``backend.keep_mask``): nothing is
    copied across the bus, runs are reproducible per device, but a seed gives different masks on the
    CPU and on the GPU.
    """
    keep = keep_mask(get_rng(rng), shape, p, xp=np if xp is None else xp)  # (shape) bool
    return keep.astype(dtype) / (1.0 - p)


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


def drop_path(x, *, p, training=True, rng=None, mask=None):
    """Stochastic depth: y[n] = x[n] · m[n], one scaled keep value m[n] ∈ {0, 1/(1 − p)} per sample.

    A residual branch multiplied by this is dropped for whole samples, so the block becomes the
    identity for them. ``mask`` (shape (N,), already scaled) overrides ``rng``. Identity in evaluation.
    Backward: dx[n] = dy[n] · m[n].
    """
    check_float("drop_path", "x", x)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"drop_path: p must be in [0, 1), got {p}")
    if not training or (p == 0.0 and mask is None):
        return x, (None, x.shape, x.dtype)
    xp = get_array_module(x)
    N = x.shape[0]
    if mask is None:
        mask = dropout_mask((N,), p, rng=rng, dtype=x.dtype, xp=xp)  # (N,)
    elif tuple(mask.shape) != (N,):
        raise ValueError(f"drop_path: mask must have shape ({N},) (one value per sample), got {tuple(mask.shape)}")
    m = mask.reshape((N,) + (1,) * (x.ndim - 1))  # broadcast over every other axis
    y = x * m
    return y, (m, y.shape, y.dtype)


def drop_path_backward(dy, cache):
    m, shape, dtype = cache
    check_grad("drop_path_backward", "dy", dy, shape, dtype)
    return dy if m is None else dy * m
