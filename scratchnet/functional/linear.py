"""Affine maps and lookups: ``linear`` and ``embedding``.

Legend: N batch (any leading axes ``...``), D input features, M output features, V vocabulary.
See chapters/01-mlp.md#affine.
"""
from __future__ import annotations

from .._checks import check_float, check_grad, check_int, check_ndim, check_same_dtype
from ..backend import get_array_module, scatter_add

__all__ = ["linear", "linear_backward", "embedding", "embedding_backward"]


def linear(x, w, b=None):
    """y = x @ w + b.

    x (..., D), w (D, M), b (M,) or None → y (..., M).
    Backward: dx = dy wᵀ, dw = xᵀ dy (summed over all leading axes), db = Σ dy.
    See chapters/01-mlp.md#eq-affine-backward.
    """
    check_float("linear", "x", x)
    check_ndim("linear", "w", w, 2)
    check_same_dtype("linear", x=x, w=w, b=b)
    if x.shape[-1] != w.shape[0]:
        raise ValueError(f"linear: x has {x.shape[-1]} features (shape {tuple(x.shape)}) but w expects "
                         f"{w.shape[0]} (w shape {tuple(w.shape)}, layout (D_in, D_out))")
    if b is not None and b.shape != (w.shape[1],):
        raise ValueError(f"linear: expected b of shape ({w.shape[1]},), got {tuple(b.shape)}")
    y = (x.reshape(-1, w.shape[0]) @ w).reshape(*x.shape[:-1], w.shape[1])  # (..., M) one 2-D GEMM for all rows
    if b is not None:
        y += b  # in place: y is our own fresh array
    return y, (x, w, b is not None)


def linear_backward(dy, cache):
    """dx, dw, db of ``linear`` (db is None when there was no bias)."""
    x, w, has_b = cache
    D, M = w.shape
    check_grad("linear_backward", "dy", dy, x.shape[:-1] + (M,), x.dtype)
    dx = (dy.reshape(-1, M) @ w.T).reshape(*dy.shape[:-1], D)  # (..., D)
    dw = x.reshape(-1, D).T @ dy.reshape(-1, M)  # (D, M)
    db = dy.reshape(-1, M).sum(axis=0) if has_b else None  # (M,)
    return dx, dw, db


def embedding(ids, w):
    """y = w[ids]: a row lookup (the matmul of a one-hot code with w).

    ids (...) integers in [0, V), w (V, D) → y (..., D).
    Backward: dw[v] = Σ_{positions with ids == v} dy (a scatter-add). See chapters/01-mlp.md#embedding.
    """
    check_int("embedding", "ids", ids)
    check_ndim("embedding", "w", w, 2)
    xp = get_array_module(ids, w)
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= w.shape[0]):
        raise ValueError(f"embedding: ids must lie in [0, {w.shape[0]}), got range "
                         f"[{int(ids.min())}, {int(ids.max())}]")
    y = xp.take(w, ids, axis=0)  # (..., D)
    return y, (ids, w.shape, w.dtype)


def embedding_backward(dy, cache):
    """dw of ``embedding`` (ids are integers and get no gradient)."""
    ids, wshape, dtype = cache
    check_grad("embedding_backward", "dy", dy, ids.shape + (wshape[1],), dtype)
    xp = get_array_module(dy)
    dw = xp.zeros(wshape, dtype=dtype)  # (V, D)
    scatter_add(dw, ids.reshape(-1), dy.reshape(-1, wshape[1]))
    return dw
