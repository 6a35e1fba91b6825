"""The fast route of layer normalisation: one fused Numba pass per row, forward and backward.

``scratchnet/functional/norm.py`` holds the readable ``layer_norm`` / ``layer_norm_backward``
(the chapters show them) and wraps each with ``fused_forward`` / ``fused_backward`` below. The
loops of ``layernorm_loops.py`` run when ``jit_route`` allows (JIT on, NumPy arrays,
float32/float64) and x has at least MIN_SIZE elements; anything else (CuPy, float16, small
inputs) runs the reference itself. The cache is the reference's (x̂, 1/√(σ²+ε) of shape (..., 1),
γ, has-β), so either backward takes either forward's cache. tests/kernels/test_layernorm_kernels.py
compares the routes; the timings are in ``benchmarks/bench_attention.py``.

Legend: ``...`` leading axes, D features (the last axis). See chapters/01-mlp.md#layernorm.
"""
from __future__ import annotations

import functools

import numpy as np

from .._checks import check_float, check_grad, check_same_dtype
from .._jit import jit_route
from . import layernorm_loops as K

__all__ = ["fused_forward", "fused_backward", "MIN_SIZE"]

MIN_SIZE = 1 << 12  # elements of x below which the reference is as fast as the loops


def fused_forward(reference):
    """``reference`` (the readable ``functional.norm.layer_norm``) with the fused row loop in front."""
    @functools.wraps(reference)
    def layer_norm(x, gamma, beta, *, eps=1e-5):
        if not (getattr(x, "ndim", 0) >= 1 and x.size >= MIN_SIZE and jit_route(x, gamma, beta)):
            return reference(x, gamma, beta, eps=eps)  # also every error message
        check_float("layer_norm", "x", x)
        check_same_dtype("layer_norm", x=x, gamma=gamma, beta=beta)
        D = x.shape[-1]
        for name, a in (("gamma", gamma), ("beta", beta)):
            if a is not None and a.shape != (D,):
                return reference(x, gamma, beta, eps=eps)  # the reference raises the error
        x = np.ascontiguousarray(x)
        rows = x.reshape(-1, D)  # (R, D)
        xhat = np.empty_like(x)  # (..., D)
        affine = gamma is not None or beta is not None
        y = np.empty_like(x) if affine else xhat  # without γ and β, y is x̂ itself (as in the reference)
        inv_std = np.empty(x.shape[:-1] + (1,), x.dtype)  # (..., 1)
        g = np.ones(D, x.dtype) if gamma is None else np.ascontiguousarray(gamma)
        b = np.zeros(D, x.dtype) if beta is None else np.ascontiguousarray(beta)
        K.layer_norm_kernel(rows, g, b, float(eps), np.ones(D, x.dtype), xhat.reshape(-1, D), y.reshape(-1, D),
                            inv_std.reshape(-1), np.empty(K.LANES))
        return y, (xhat, inv_std, gamma, beta is not None)
    return layer_norm


def fused_backward(reference):
    """``reference`` (the readable ``functional.norm.layer_norm_backward``) with the fused row loop
    in front; dy is checked against the cache first."""
    @functools.wraps(reference)
    def layer_norm_backward(dy, cache):
        xhat, inv_std, gamma, has_beta = cache
        check_grad("layer_norm_backward", "dy", dy, xhat.shape, xhat.dtype)
        if not (xhat.size >= MIN_SIZE and jit_route(dy, xhat, inv_std, gamma)):
            return reference(dy, cache)
        D = xhat.shape[-1]
        dy, xhat = np.ascontiguousarray(dy), np.ascontiguousarray(xhat)
        dx = np.empty_like(dy)  # (..., D)
        dgamma, dbeta = np.zeros(D), np.zeros(D)  # (D,) float64 sums over rows
        g = np.ones(D, dy.dtype) if gamma is None else np.ascontiguousarray(gamma)
        K.layer_norm_backward_kernel(dy.reshape(-1, D), xhat.reshape(-1, D), np.ascontiguousarray(inv_std).reshape(-1),
                                     g, np.ones(D, dy.dtype), dx.reshape(-1, D), dgamma, dbeta, np.empty(D, dy.dtype),
                                     np.empty(K.LANES))
        return (dx, dgamma.astype(dy.dtype) if gamma is not None else None,
                dbeta.astype(dy.dtype) if has_beta else None)
    return layer_norm_backward
