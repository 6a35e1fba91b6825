"""The fast routes of pooling. ``scratchnet/functional/pool.py`` holds the vectorised reference and
passes it here as ``reference=``.

Legend: N batch, C channels, H, W input size, KH, KW window, OH, OW output size. Every route
choice of the family is made here, and each route computes the same numbers as the reference
(tests/functional/test_pool.py compares every pair):

- max_pool2d: the Numba kernels of ``pool_loops.py`` when ``jit_route`` allows (NumPy
  float32/float64, JIT on): the unrolled 2×2 / stride-2 ones for that window, else the general
  ones, parallel over the (n, c) planes from PARALLEL_MIN_SIZE elements; for CuPy arrays of
  float32/float64 the CUDA kernels of ``pool_cupy.py`` (``cuda_route``); else the vectorised
  reference (float16, ``SCRATCHNET_JIT=0``).
- avg_pool2d: the 2×2 / stride-2 window (LeNet's subsampling) as four strided slices, no unfold;
  else the reference.

The timings behind these choices are in ``benchmarks/bench_conv.py``.
"""
from __future__ import annotations

import numpy as np

from .._jit import jit_route
from ..backend import get_array_module
from . import pool_cupy, pool_loops
from .cuda import cuda_route

__all__ = ["max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward", "PARALLEL_MIN_SIZE"]

# below this many elements the single-threaded kernels win: thread start-up costs more than the loop
PARALLEL_MIN_SIZE = 1 << 21


def _is_2x2(g):
    """The 2×2 window with stride 2 and no padding, which has its own fast paths."""
    return tuple(g[:6]) == (2, 2, 2, 2, 0, 0)


def _tap(a, g, i, j):
    """The view of a (N, C, H, W) holding tap (i, j) of every 2×2 / stride-2 window: (N, C, OH, OW)."""
    return a[:, :, i:i + 2 * g.oh:2, j:j + 2 * g.ow:2]


# -- max pooling -----------------------------------------------------------------------------------
def max_pool2d(x, g, *, reference):
    """y and the winners' taps of ``functional.pool.max_pool2d``: the Numba kernels, the CUDA kernels
    (CuPy) or ``reference(x, g)``."""
    if cuda_route(x):
        return pool_cupy.max_pool2d(x, g)
    if not jit_route(x):
        return reference(x, g)
    x = np.ascontiguousarray(x)
    y = np.empty(x.shape[:2] + (g.oh, g.ow), dtype=x.dtype)  # (N, C, OH, OW)
    # winner's tap k = i·KW + j; one byte per output for windows up to 127 taps (less to write)
    arg = np.empty(y.shape, dtype=np.int8 if g.kh * g.kw <= 127 else np.int64)  # (N, C, OH, OW)
    if _is_2x2(g):  # the common 2×2 / stride 2 window: taps unrolled
        pool_loops.max_pool2x2_kernel_serial(x, y, arg)
    else:
        parallel = x.size >= PARALLEL_MIN_SIZE
        kernel = pool_loops.max_pool2d_kernel if parallel else pool_loops.max_pool2d_kernel_serial
        kernel(x, y, arg, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw)
    return y, arg


def max_pool2d_backward(dy, arg, g, x_shape, *, reference):
    """dx of ``functional.pool.max_pool2d_backward`` (dy already checked against the cache): the Numba
    kernels, the CUDA kernels (CuPy) or ``reference(dy, arg, g, H, W)``."""
    if cuda_route(dy):
        return pool_cupy.max_pool2d_backward(dy, arg, g, x_shape)
    if not jit_route(dy):
        return reference(dy, arg, g, x_shape[2], x_shape[3])
    dy = np.ascontiguousarray(dy)
    if _is_2x2(g):  # disjoint windows: dx written once, no zero pass, no scatter-add
        dx = np.empty(x_shape, dtype=dy.dtype)  # (N, C, H, W), written in full by the kernel
        pool_loops.max_pool2x2_backward_kernel_serial(dy, arg, dx)
        return dx
    dx = np.zeros(x_shape, dtype=dy.dtype)  # (N, C, H, W)
    parallel = dx.size >= PARALLEL_MIN_SIZE
    kernel = pool_loops.max_pool2d_backward_kernel if parallel else pool_loops.max_pool2d_backward_kernel_serial
    kernel(dy, arg, dx, g.kw, g.sh, g.sw, g.ph, g.pw)
    return dx


# -- average pooling -------------------------------------------------------------------------------
def avg_pool2d(x, g, count_include_pad, *, reference):
    """y and the divisor of ``functional.pool.avg_pool2d``: four strided slices for the 2×2 window,
    else ``reference(x, g, count_include_pad)``."""
    if not _is_2x2(g):
        return reference(x, g, count_include_pad)
    y = _tap(x, g, 0, 0) + _tap(x, g, 0, 1)  # (N, C, OH, OW): four strided slices, no unfold
    y += _tap(x, g, 1, 0)
    y += _tap(x, g, 1, 1)
    y *= 0.25
    return y, 4.0


def avg_pool2d_backward(dy, divisor, g, x_shape, *, reference):
    """dx of ``functional.pool.avg_pool2d_backward`` (dy already checked against the cache): four
    strided writes for the 2×2 window, else ``reference(dy, divisor, g, x_shape)``."""
    if not _is_2x2(g):
        return reference(dy, divisor, g, x_shape)
    xp = get_array_module(dy)
    H, W = x_shape[2:]
    dx = (xp.zeros if H % 2 or W % 2 else xp.empty)(x_shape, dtype=dy.dtype)  # (N, C, H, W)
    dyd = dy / divisor  # (N, C, OH, OW)
    for i in range(2):  # each pixel is in at most one window: tap (i, j) of every window, one strided write
        for j in range(2):
            _tap(dx, g, i, j)[...] = dyd
    return dx
