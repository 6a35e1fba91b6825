"""The fast routes of RoI pooling and RoIAlign. ``scratchnet/functional/roi.py`` computes the
geometry (bin edges, bilinear taps), holds the vectorised references and passes them here as
``reference=``.

Legend: N images, C channels, H, W feature map, R regions, PH, PW output size. With ``jit_route``
(NumPy float32/float64, JIT on) the Numba kernels of ``roi_loops.py`` run: parallel over regions
(forward) or channels (backward, whose writes into dx must not collide), single-threaded below
PARALLEL_MIN_SIZE elements; RoI pooling of CuPy float32/float64 arrays takes the CUDA kernel of
``roi_cupy.py`` (``cuda_route``); else the reference (CuPy otherwise, float16, ``SCRATCHNET_JIT=0``).
tests/functional/test_roi.py and tests/kernels/test_cuda_kernels.py compare every route with its
reference.
"""
from __future__ import annotations

import numpy as np

from .._jit import jit_route
from . import roi_cupy, roi_loops
from .cuda import cuda_route

__all__ = ["roi_pool", "roi_pool_backward", "roi_align", "roi_align_backward", "PARALLEL_MIN_SIZE"]

PARALLEL_MIN_SIZE = 1 << 16  # outputs (or input pixels) below which one thread beats starting a team


def _c(arrays):
    """Contiguous copies (or the arrays themselves) for the kernels."""
    return tuple(np.ascontiguousarray(a) for a in arrays)


def roi_pool(x, batch, rows, cols, *, reference):
    """y, arg of ``functional.roi.roi_pool``: the Numba kernel, the CUDA kernel (CuPy) or
    ``reference(x, batch, rows, cols)``."""
    if cuda_route(x):
        return roi_cupy.roi_pool(x, batch, rows, cols)
    if not jit_route(x):
        return reference(x, batch, rows, cols)
    R, PH, PW = len(batch), rows[0].shape[1], cols[0].shape[1]
    y = np.empty((R, x.shape[1], PH, PW), dtype=x.dtype)  # (R, C, PH, PW)
    arg = np.empty(y.shape, dtype=np.int64)  # (R, C, PH, PW)
    kernel = roi_loops.roi_pool_kernel if y.size >= PARALLEL_MIN_SIZE else roi_loops.roi_pool_kernel_serial
    kernel(np.ascontiguousarray(x), batch, *_c(rows), *_c(cols), y, arg)
    return y, arg


def roi_pool_backward(dy, arg, batch, x_shape, *, reference):
    """dx of ``functional.roi.roi_pool_backward`` (dy already checked)."""
    if not jit_route(dy):
        return reference(dy, arg, batch, x_shape)
    dx = np.zeros(x_shape, dtype=dy.dtype)  # (N, C, H, W)
    big = max(dy.size, dx.size) >= PARALLEL_MIN_SIZE
    kernel = roi_loops.roi_pool_backward_kernel if big else roi_loops.roi_pool_backward_kernel_serial
    kernel(np.ascontiguousarray(dy), arg, batch, dx)
    return dx


def roi_align(x, batch, rows, cols, *, reference):
    """y of ``functional.roi.roi_align``: the Numba kernel or ``reference(x, batch, rows, cols)``."""
    if not jit_route(x):
        return reference(x, batch, rows, cols)
    y = np.empty((len(batch), x.shape[1], rows[0].shape[1], cols[0].shape[1]), dtype=x.dtype)  # (R, C, PH, PW)
    kernel = roi_loops.roi_align_kernel if y.size >= PARALLEL_MIN_SIZE else roi_loops.roi_align_kernel_serial
    kernel(np.ascontiguousarray(x), batch, *_c(rows), *_c(cols), y)
    return y


def roi_align_backward(dy, batch, rows, cols, x_shape, *, reference):
    """dx of ``functional.roi.roi_align_backward`` (dy already checked)."""
    if not jit_route(dy):
        return reference(dy, batch, rows, cols, x_shape)
    dx = np.zeros(x_shape, dtype=dy.dtype)  # (N, C, H, W)
    big = max(dy.size, dx.size) >= PARALLEL_MIN_SIZE
    kernel = roi_loops.roi_align_backward_kernel if big else roi_loops.roi_align_backward_kernel_serial
    kernel(np.ascontiguousarray(dy), batch, *_c(rows), *_c(cols), dx)
    return dx
