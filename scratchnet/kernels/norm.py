"""The fast route of batch normalisation in training mode: two fused passes forward, two backward.

``scratchnet/functional/norm.py`` holds the readable reference (``_batch_norm_train`` and
``batch_norm_backward``, which the chapter shows) and passes it here. The loops of
``norm_loops.py`` run when ``jit_route`` allows (JIT on, NumPy arrays, float32/float64) and x has
at least MIN_SIZE elements; below that the call overhead dominates and the routes tie. Evaluation
mode always takes the reference (one affine pass, nothing to fuse). The reference makes about a
dozen passes over full-size arrays (each NumPy operation is one, most with a temporary); the loops
make two each way:

- forward: the moments of each channel in one pass (float64 sums, shifted by the channel's first
  value), then x̂ and y in one pass;
- backward: Σdy and Σdy·x̂ in one pass, then dx = γ s (dy − Σdy/m − x̂ Σdy·x̂/m) in one pass.

Inputs with S = H·W (or L) of at least FEATURE_MAX_S positions per channel take the per-channel
kernels, parallel over channels from PARALLEL_MIN_SIZE elements; (N, C) inputs and tiny images
take the row kernels. tests/kernels/test_norm_kernels.py compares every route with the reference;
the timings are in ``benchmarks/bench_core.py``.

Legend: N batch, C channels, S positions per channel, m = N·S values per channel.
See chapters/01-mlp.md#batchnorm.
"""
from __future__ import annotations

import functools

import numpy as np

from .._checks import check_grad
from .._jit import jit_route
from . import norm_loops as K

__all__ = ["batch_norm_train", "fused_backward", "MIN_SIZE", "PARALLEL_MIN_SIZE", "FEATURE_MAX_S"]

MIN_SIZE = 1 << 11  # elements of x below which the NumPy reference is as fast as the loops (measured)
# elements from which the per-channel kernels run on every core. On a busy 2-core machine the parallel
# loops were 4-10x slower than the serial ones at 2-4 M elements (their threads wait for a core), so
# ordinary layers stay on one thread; benchmarks/bench_core.py has the measurement.
PARALLEL_MIN_SIZE = 1 << 24
FEATURE_MAX_S = 16  # positions per channel below which the row kernels (vectorised along C·S) are used


def _takes_loops(x, *arrays):
    return jit_route(x, *arrays) and x.size >= MIN_SIZE


class _Layout:
    """How the loops see an (N, C, ...) array: (N, C, S) per channel, or (N, C·S) rows when S is small."""

    def __init__(self, x):
        self.N, self.C = x.shape[:2]
        self.S = x.size // (self.N * self.C)
        self.rows = self.S < FEATURE_MAX_S
        self.shape = (self.N, self.C * self.S) if self.rows else (self.N, self.C, self.S)
        self.parallel = x.size >= PARALLEL_MIN_SIZE

    def view(self, a):
        return a.reshape(self.shape)

    def vector(self, v):
        """A (C,) per-channel vector as the kernel wants it: (C·S,) for the rows, else (C,)."""
        return np.repeat(v, self.S) if self.rows else v

    def kernel(self, parallel, serial, rows):
        return rows if self.rows else (parallel if self.parallel else serial)

    def sums(self, kernel, a, b):
        """The two (C,) float64 sums a kernel of the moments family accumulates over a (and b)."""
        first, second = np.zeros(self.C * self.S), np.zeros(self.C * self.S)  # float64, per feature for rows
        if self.rows:
            kernel(self.view(a), b if b.ndim == 1 else self.view(b), first, second)
            return first.reshape(self.C, self.S).sum(axis=1), second.reshape(self.C, self.S).sum(axis=1)
        kernel(self.view(a), b if b.ndim == 1 else self.view(b), first[:self.C], second[:self.C])
        return first[:self.C], second[:self.C]


def batch_norm_train(x, gamma, beta, *, eps, reference):
    """y, x̂, μ, σ² (biased) and 1/√(σ² + ε) of a training-mode batch norm: the fused loops or
    ``reference(x, gamma, beta, eps=eps)``. x (N, C, ...); gamma, beta (C,) or None."""
    if not _takes_loops(x, gamma, beta):
        return reference(x, gamma, beta, eps=eps)
    x = np.ascontiguousarray(x)
    dtype, lay = x.dtype, _Layout(x)
    m = lay.N * lay.S  # values per channel
    shift = x.reshape(lay.N, lay.C, lay.S)[0, :, 0].astype(np.float64)  # (C,) each channel's first value
    moments = lay.kernel(K.channel_moments_kernel, K.channel_moments_kernel_serial, K.feature_moments_kernel)
    sums, sumsqs = lay.sums(moments, x, lay.vector(shift))  # (C,) Σ(x − k), Σ(x − k)²
    d = sums / m  # (C,) μ − k
    mean = (shift + d).astype(dtype)  # (C,)
    var = np.maximum(sumsqs / m - d * d, 0.0)  # (C,) biased, float64
    inv_std = (1.0 / np.sqrt(var + eps)).astype(dtype)  # (C,)
    affine = gamma is not None or beta is not None
    g = np.ones(lay.C, dtype) if gamma is None else gamma  # (C,)
    b = np.zeros(lay.C, dtype) if beta is None else beta  # (C,)
    xhat = np.empty_like(x)  # (N, C, ...)
    y = np.empty_like(x) if affine else xhat  # without γ and β, y is x̂ itself (as in the reference)
    normalize = lay.kernel(K.channel_normalize_kernel, K.channel_normalize_kernel_serial, K.feature_normalize_kernel)
    normalize(lay.view(x), *(np.ascontiguousarray(lay.vector(v)) for v in (mean, inv_std, g, b)),
              lay.view(xhat), lay.view(y), affine)
    return y, xhat, mean, var.astype(dtype), inv_std


def _batch_norm_backward(dy, cache, reference):
    xhat, inv_std, gamma, has_beta, training, _axes, _bshape = cache
    check_grad("batch_norm_backward", "dy", dy, xhat.shape, xhat.dtype)
    if not (training and _takes_loops(dy, xhat, gamma)):
        return reference(dy, cache)
    dy, xhat = np.ascontiguousarray(dy), np.ascontiguousarray(xhat)
    dtype, lay = dy.dtype, _Layout(dy)
    m = lay.N * lay.S  # values per channel
    grad_sums = lay.kernel(K.channel_grad_sums_kernel, K.channel_grad_sums_kernel_serial, K.feature_grad_sums_kernel)
    sum_dy, sum_dy_xhat = lay.sums(grad_sums, dy, xhat)  # (C,) Σ dy, Σ dy·x̂
    scale = inv_std.astype(np.float64) if gamma is None else gamma.astype(np.float64) * inv_std  # (C,) γ s
    coeffs = (scale, sum_dy / m, sum_dy_xhat / m)  # (C,) each: a, b, c of dx = a·(dy − b − x̂·c)
    dx = np.empty_like(dy)  # (N, C, ...)
    grad_input = lay.kernel(K.channel_grad_input_kernel, K.channel_grad_input_kernel_serial,
                            K.feature_grad_input_kernel)
    grad_input(lay.view(dy), lay.view(xhat), *(lay.vector(v.astype(dtype)) for v in coeffs), lay.view(dx))
    dgamma = sum_dy_xhat.astype(dtype) if gamma is not None else None  # (C,) Σ dy·x̂
    dbeta = sum_dy.astype(dtype) if has_beta else None  # (C,) Σ dy
    return dx, dgamma, dbeta


def fused_backward(reference):
    """``reference`` (the readable ``functional.norm.batch_norm_backward``) with the fused route in
    front: training-mode NumPy float32/float64 batches of MIN_SIZE elements or more take the loops,
    every other call runs ``reference`` itself. dy is checked against the cache first."""
    @functools.wraps(reference)
    def batch_norm_backward(dy, cache):
        return _batch_norm_backward(dy, cache, reference)
    return batch_norm_backward
