"""CUDA kernels for max pooling on CuPy arrays: the window argmax, and its scatter written as a gather.

Legend: N batch, C channels, H, W input, KH, KW window, OH, OW output, sh, sw stride, ph, pw
padding; ``arg`` the winner's tap k = i·KW + j inside its window (int64, as the reference's argmax).
The vectorised reference (``_max_pool_ref`` / ``_max_pool_backward_ref`` in
``scratchnet/functional/pool.py``) unfolds every window into a (N, C, K, OH, OW) copy; here:

- ``max_pool2d_forward``: one thread per output, reading its window's taps clipped to the input
  (padding never wins); the first maximum in row-major order, or the first NaN, as the reference.
- ``max_pool2d_backward``: one thread per *input* pixel, summing dy over the windows that contain it
  and chose it. Overlapping windows would make a scatter race (threads adding to one pixel); as a
  gather each dx value has one writer: no atomics, the same sum every run.

``scratchnet/kernels/pool.py`` routes CuPy arrays of float32/float64 here; tests/kernels/
test_cuda_kernels.py runs them on the CPU with ``cuda_emulator`` against the reference.
See chapters/05-convolution.md#pooling.
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from .cuda import compile_kernel, grid_size

__all__ = ["SOURCE", "max_pool2d", "max_pool2d_backward"]

SOURCE = r"""
/* y (N, C, OH, OW) = the window's maximum, arg = its tap; grid-stride over the outputs. */
SN_KERNEL void max_pool2d_forward(const real* x, real* y, long long* arg, int N, int C, int H, int W,
                                  int OH, int OW, int KH, int KW, int sh, int sw, int ph, int pw)
{
    const long long total = (long long)N * C * OH * OW;
    for (long long o = blockIdx.x * (long long)blockDim.x + threadIdx.x; o < total;
         o += (long long)gridDim.x * blockDim.x) {  /* outputs, several per thread on a small grid */
        const int ow = (int)(o % OW), oh = (int)(o / OW % OH);
        const real* plane = x + o / ((long long)OH * OW) * H * W;  /* the (n, c) input plane */
        const int h0 = oh * sh - ph, w0 = ow * sw - pw;          /* the window's top-left corner */
        const int i_lo = sn_imax(0, -h0), i_hi = sn_imin(KH, H - h0);  /* window rows inside the input */
        const int j_lo = sn_imax(0, -w0), j_hi = sn_imin(KW, W - w0);  /* window columns inside the input */
        real best = 0;
        int best_k = -1;
        for (int i = i_lo; i < i_hi; ++i) {      /* window row */
            for (int j = j_lo; j < j_hi; ++j) {  /* window column: first maximum, or first NaN */
                const real v = plane[(long long)(h0 + i) * W + w0 + j];
                if (best_k < 0 || v > best || (v != v && best == best)) {
                    best = v;
                    best_k = i * KW + j;
                }
            }
        }
        y[o] = best;
        arg[o] = best_k;
    }
}

/* dx (N, C, H, W) = sum of dy over the windows whose winner is this pixel; grid-stride over the pixels. */
SN_KERNEL void max_pool2d_backward(const real* dy, const long long* arg, real* dx, int N, int C, int H,
                                   int W, int OH, int OW, int KH, int KW, int sh, int sw, int ph, int pw)
{
    const long long total = (long long)N * C * H * W;
    for (long long p = blockIdx.x * (long long)blockDim.x + threadIdx.x; p < total;
         p += (long long)gridDim.x * blockDim.x) {  /* input pixels, several per thread on a small grid */
        const int w = (int)(p % W), h = (int)(p / W % H);
        const long long plane = p / ((long long)H * W) * OH * OW;  /* the (n, c) output plane's offset */
        /* windows holding row h: oh * sh - ph <= h < oh * sh - ph + KH */
        const int rows = h + ph - KH + 1, cols = w + pw - KW + 1;
        const int oh_lo = rows <= 0 ? 0 : (rows + sh - 1) / sh, oh_hi = sn_imin(OH - 1, (h + ph) / sh);
        const int ow_lo = cols <= 0 ? 0 : (cols + sw - 1) / sw, ow_hi = sn_imin(OW - 1, (w + pw) / sw);
        real sum = 0;
        for (int oh = oh_lo; oh <= oh_hi; ++oh) {      /* each window holding the pixel, in row-major order */
            for (int ow = ow_lo; ow <= ow_hi; ++ow) {  /* ... adds its dy if the pixel won it */
                const long long o = plane + (long long)oh * OW + ow;
                if (arg[o] == (long long)(h + ph - oh * sh) * KW + (w + pw - ow * sw))
                    sum += dy[o];
            }
        }
        dx[p] = sum;
    }
}
"""

BLOCK = 256  # threads per block
MAX_GRID = 4096  # blocks; a grid-stride loop covers larger outputs


def _grid(total: int) -> int:
    """Blocks for ``total`` items: one item per thread up to MAX_GRID blocks."""
    return grid_size(total, BLOCK, limit=MAX_GRID)


def _geometry(g, x_shape):
    """The int32 scalars both kernels take after their arrays: N, C, H, W, OH, OW, KH, KW, sh, sw, ph, pw."""
    N, C, H, W = x_shape
    return tuple(np.int32(v) for v in (N, C, H, W, g.oh, g.ow, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw))


def max_pool2d(x, g, *, compile=compile_kernel):
    """y (N, C, OH, OW) and arg (N, C, OH, OW) int64 of x (N, C, H, W) for the window ``g``, equal to the
    vectorised reference's. ``compile``: CuPy's, or ``cuda_emulator.compile_kernel`` with NumPy arrays."""
    xp = get_array_module(x)
    x = xp.ascontiguousarray(x)
    y = xp.empty(x.shape[:2] + (g.oh, g.ow), dtype=x.dtype)  # (N, C, OH, OW) written in full
    arg = xp.empty(y.shape, dtype=xp.int64)  # (N, C, OH, OW)
    compile(SOURCE, "max_pool2d_forward", x.dtype)((_grid(y.size),), (BLOCK,), (x, y, arg) + _geometry(g, x.shape))
    return y, arg


def max_pool2d_backward(dy, arg, g, x_shape, *, compile=compile_kernel):
    """dx (N, C, H, W) of dy (N, C, OH, OW) and the forward's winners, equal to the reference's."""
    xp = get_array_module(dy)
    dy = xp.ascontiguousarray(dy)
    arg = xp.ascontiguousarray(arg, dtype=xp.int64)
    dx = xp.empty(tuple(x_shape), dtype=dy.dtype)  # (N, C, H, W) written in full
    compile(SOURCE, "max_pool2d_backward", dy.dtype)((_grid(dx.size),), (BLOCK,),
                                                     (dy, arg, dx) + _geometry(g, x_shape))
    return dx
