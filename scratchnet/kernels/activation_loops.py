"""Numba kernels of the exact GELU, y = x Φ(x) with Φ(x) = ½(1 + erf(x/√2)), and its backward.

NumPy has no ``erf``; SciPy's is a scalar routine called through a ufunc, and the expression
around it takes four more passes over the array. One fused loop over the flat array computes Φ
and y together. In float32 the loop uses a rational approximation of erf (below) that the
compiler turns into SIMD code; float64 keeps the C library's ``erf``, exact to the last bit. The
route (``scratchnet/kernels/activation.py``) calls these loops; the vectorised reference is
``_gelu_exact`` / ``_gelu_exact_backward`` in ``scratchnet/functional/activation.py``
(SCRATCHNET_JIT=0 selects it). See chapters/01-mlp.md#gelu.

``error_model="numpy"``: a division by zero gives inf as in NumPy instead of raising; without it
Numba guards every division with a check that stops the loop from being vectorised.

The loops run on one thread on purpose. A ``parallel=True`` region leaves its OpenMP workers
spinning for a while after it ends, and they steal the cores the BLAS calls around it need
(``benchmarks/bench_attention.py`` has the measurement).
"""
from __future__ import annotations

import math

import numpy as np

from .._jit import njit

__all__ = ["erf_float32", "tanh_float32", "exp_float32_row", "gelu_kernel", "gelu_float32_kernel",
           "gelu_backward_kernel"]

# erf(x) ≈ x P(x²) / Q(x²) on [−4, 4] (erf(±4) = ±1 to float32 precision): the odd/even minimax
# rational approximation used by Eigen's float erf; |error| < 5e-7 when evaluated in float32 (a few float32 ulps).
_P = tuple(np.float32(c) for c in (-1.60960333262415e-02, -2.95459980854025e-03, -7.34990630326855e-04,
                                   -5.69250639462346e-05, -2.10102402082508e-06, 2.77068142495902e-08,
                                   -2.72614225801306e-10))
_Q = tuple(np.float32(c) for c in (-1.42647390514189e-02, -7.37332916720468e-03, -1.68282697438203e-03,
                                   -2.13374055278905e-04, -1.45660718464996e-05))
_P0, _P1, _P2, _P3, _P4, _P5, _P6 = _P
_Q0, _Q1, _Q2, _Q3, _Q4 = _Q
_FOUR = np.float32(4.0)


@njit(error_model="numpy")
def erf_float32(x):
    """erf of a float32 scalar by the rational approximation above (branch-free, so it vectorises)."""
    x = min(max(x, -_FOUR), _FOUR)  # clamp to [−4, 4]
    z = x * x
    p = _P0 + z * (_P1 + z * (_P2 + z * (_P3 + z * (_P4 + z * (_P5 + z * _P6)))))  # Horner in x²
    q = _Q0 + z * (_Q1 + z * (_Q2 + z * (_Q3 + z * _Q4)))
    return x * p / q


# tanh(x) ≈ x P(x²) / Q(x²) on [−7.9053, 7.9053] (beyond it tanh rounds to ±1 in float32): Eigen's
# float tanh; |error| < 3.5e-7 evaluated in float32. NumPy's float32 tanh is a scalar loop; this one
# vectorises, which the recurrent cells of chapters 15 and 16 use (benchmarks/bench_core.py).
_TP = tuple(np.float32(c) for c in (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05,
                                    5.12229709037114e-08, -8.60467152213735e-11, 2.00018790482477e-13,
                                    -2.76076847742355e-16))
_TQ = tuple(np.float32(c) for c in (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04,
                                    1.19825839466702e-06))
_TP0, _TP1, _TP2, _TP3, _TP4, _TP5, _TP6 = _TP
_TQ0, _TQ1, _TQ2, _TQ3 = _TQ
_TANH_CLAMP = np.float32(7.90531110763549805)


@njit(error_model="numpy")
def tanh_float32(x):
    """tanh of a float32 scalar by the rational approximation above (branch-free, so it vectorises)."""
    x = min(max(x, -_TANH_CLAMP), _TANH_CLAMP)  # clamp
    z = x * x
    p = _TP0 + z * (_TP1 + z * (_TP2 + z * (_TP3 + z * (_TP4 + z * (_TP5 + z * _TP6)))))  # Horner in x²
    q = _TQ0 + z * (_TQ1 + z * (_TQ2 + z * _TQ3))
    return x * p / q


@njit(error_model="numpy")
def gelu_kernel(x, y, cdf, inv_sqrt_2):
    """cdf[i] = Φ(x[i]) and y[i] = x[i] Φ(x[i]); x, y, cdf flat (M,) arrays, y and cdf written in full."""
    for i in range(x.size):  # independent elements
        c = 0.5 * (1.0 + math.erf(x[i] * inv_sqrt_2))  # Φ(x), the C library's erf
        cdf[i] = c
        y[i] = x[i] * c


@njit(error_model="numpy")
def gelu_float32_kernel(x, y, cdf, inv_sqrt_2, half, one):
    """As ``gelu_kernel`` for float32 arrays (scalars passed as float32), with ``erf_float32``."""
    for i in range(x.size):  # independent elements
        c = half * (one + erf_float32(x[i] * inv_sqrt_2))  # Φ(x)
        cdf[i] = c
        y[i] = x[i] * c


@njit(error_model="numpy")
def gelu_backward_kernel(dy, x, cdf, dx, inv_sqrt_2pi, minus_half):
    """dx[i] = dy[i] (Φ(x[i]) + x[i] φ(x[i])), φ(x) = e^{−x²/2}/√(2π); all flat (M,) arrays."""
    for i in range(x.size):  # independent elements
        xi = x[i]
        dx[i] = dy[i] * (cdf[i] + xi * inv_sqrt_2pi * math.exp(minus_half * xi * xi))


# exp(x) = 2ⁿ · exp(r), n = round(x / ln 2), r = x − n ln 2 ∈ [−ln2/2, ln2/2] (ln 2 split in two
# parts so that n ln 2 is exact), exp(r) by Cephes' degree-7 polynomial: relative error < 1e-7.
_LOG2E = np.float32(1.44269504088896341)
_LN2_HI = np.float32(0.693359375)
_LN2_LO = np.float32(-2.12194440e-4)
_E = tuple(np.float32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
                                   1.6666665459e-1, 5.0000001201e-1))
_E0, _E1, _E2, _E3, _E4, _E5 = _E
_EXP_LO = np.float32(-87.3)  # exp(−87.3) is the smallest normal float32 the 2ⁿ trick can build
_EXP_HI = np.float32(88.3)
_HALF, _ONE = np.float32(0.5), np.float32(1.0)


@njit(error_model="numpy")
def exp_float32_row(x, bits):
    """x[j] ← exp(x[j]) in place for a float32 row; bits: an int32 scratch row as long.

    Two vectorised passes: exp(r) and the exponent field of 2ⁿ (written as int32 bits), then their
    product read through a float32 view of those bits. Inputs are clamped to [−87.3, 88.3]. (In
    place on purpose: with separate input and output arrays that may alias, the compiler keeps a
    scalar fallback, and that is the path it takes when they are the same array.)
    """
    for j in range(x.size):  # independent elements
        v = min(max(x[j], _EXP_LO), _EXP_HI)  # clamp
        n = math.floor(v * _LOG2E + _HALF)  # nearest integer to v / ln 2
        r = v - n * _LN2_HI - n * _LN2_LO  # |r| ≤ ln2/2
        q = ((((_E0 * r + _E1) * r + _E2) * r + _E3) * r + _E4) * r + _E5
        x[j] = _ONE + r + r * r * q  # exp(r)
        bits[j] = (np.int32(n) + np.int32(127)) << 23  # the float32 2ⁿ, as bits
    scale = bits.view(np.float32)
    for j in range(x.size):  # independent elements
        x[j] *= scale[j]
