"""The fast route of the activations: the exact GELU as one fused Numba loop.

``scratchnet/functional/activation.py`` holds the vectorised reference and passes it here as
``reference=``; ``jit_route`` decides (JIT on, NumPy arrays, float32/float64), so CuPy arrays,
float16 and ``SCRATCHNET_JIT=0`` take the reference. The loops are in ``activation_loops.py``
(float32 with a rational erf, float64 with the C library's); tests/functional/test_core_ops.py
compares the two routes. The timings behind the choice are in ``benchmarks/bench_attention.py``.

Legend: any shape (the kernels walk the flat, C-contiguous array). See chapters/01-mlp.md#gelu.
"""
from __future__ import annotations

import math

import numpy as np

from .._jit import jit_route
from . import activation_loops as K

__all__ = ["gelu", "gelu_backward"]

_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def gelu(x, *, reference):
    """The exact GELU of x (...) → (y, Φ(x)), each of x's shape and dtype: the fused loop or ``reference(x)``."""
    if not jit_route(x):
        return reference(x)
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)  # (...) output
    phi_cdf = np.empty_like(x)  # (...) Φ(x), cached for the backward
    if x.dtype == np.float32:  # a SIMD rational erf, |error| < 5e-7 (a few float32 ulps)
        f = np.float32
        K.gelu_float32_kernel(x.reshape(-1), y.reshape(-1), phi_cdf.reshape(-1), f(_INV_SQRT_2), f(0.5), f(1.0))
    else:  # float64: the C library's erf
        K.gelu_kernel(x.reshape(-1), y.reshape(-1), phi_cdf.reshape(-1), _INV_SQRT_2)
    return y, phi_cdf


def gelu_backward(dy, x, phi_cdf, *, reference):
    """dx = dy ⊙ (Φ(x) + x φ(x)) (x's shape and dtype): the fused loop or ``reference(dy, x, phi_cdf)``."""
    if not jit_route(dy, x, phi_cdf):
        return reference(dy, x, phi_cdf)
    dy, x, phi_cdf = np.ascontiguousarray(dy), np.ascontiguousarray(x), np.ascontiguousarray(phi_cdf)
    dx = np.empty(x.shape, dtype=x.dtype)  # (...)
    t = x.dtype.type
    K.gelu_backward_kernel(dy.reshape(-1), x.reshape(-1), phi_cdf.reshape(-1), dx.reshape(-1), t(_INV_SQRT_2PI),
                           t(-0.5))
    return dx
