"""CUDA kernel for RoI pooling on CuPy arrays: each bin's maximum, one thread per output.

Legend: N images, C channels, H, W feature map, R regions, PH, PW output size; the bins' clipped
integer edges h_lo, h_hi (R, PH) and w_lo, w_hi (R, PW) come from ``scratchnet/functional/roi.py``.
Its vectorised reference ``_roi_pool_ref`` loops over regions and bins in Python — on a GPU, several
kernel launches per bin — so ``scratchnet/kernels/roi.py`` sends CuPy float32/float64 arrays here.
The winner is the first maximum in row-major order, or the first NaN, as the reference's argmax;
an empty bin gives 0 and −1. The backward stays the reference's one scatter-add (``cupyx.scatter_add``
on a GPU). RoIAlign keeps its reference on a GPU: two batched matrix products per image, no Python
loop over regions. tests/kernels/test_cuda_kernels.py runs this kernel on the CPU with
``cuda_emulator`` against the reference. See chapters/27-rcnn.md#eq-roi-pool.
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from .cuda import compile_kernel, grid_size

__all__ = ["SOURCE", "roi_pool"]

SOURCE = r"""
/* y (R, C, PH, PW) = max of x[batch_r, c] over bin (i, j), arg = its pixel h * W + w; grid-stride. */
SN_KERNEL void roi_pool_forward(const real* x, const long long* batch, const long long* h_lo,
                                const long long* h_hi, const long long* w_lo, const long long* w_hi,
                                real* y, long long* arg, int R, int C, int H, int W, int PH, int PW)
{
    const long long total = (long long)R * C * PH * PW;
    for (long long o = blockIdx.x * (long long)blockDim.x + threadIdx.x; o < total;
         o += (long long)gridDim.x * blockDim.x) {  /* outputs, several per thread on a small grid */
        const int j = (int)(o % PW), i = (int)(o / PW % PH);
        const int c = (int)(o / ((long long)PH * PW) % C), r = (int)(o / ((long long)C * PH * PW));
        const real* plane = x + (batch[r] * C + c) * H * W;  /* the roi's image, channel c */
        const long long a = h_lo[(long long)r * PH + i], b = h_hi[(long long)r * PH + i];
        const long long u = w_lo[(long long)r * PW + j], v = w_hi[(long long)r * PW + j];
        real best = 0;
        long long best_k = -1;  /* an empty bin keeps 0 and -1 */
        for (long long h = a; h < b; ++h) {      /* bin row */
            for (long long w = u; w < v; ++w) {  /* bin column: first maximum, or first NaN */
                const real value = plane[h * W + w];
                if (best_k < 0 || value > best || (value != value && best == best)) {
                    best = value;
                    best_k = h * W + w;
                }
            }
        }
        y[o] = best;
        arg[o] = best_k;
    }
}
"""

BLOCK = 256  # threads per block


def roi_pool(x, batch, rows, cols, *, compile=compile_kernel):
    """y (R, C, PH, PW) and arg (R, C, PH, PW) int64 of x (N, C, H, W) for the regions' bins, equal to
    ``_roi_pool_ref``. ``compile``: CuPy's, or ``cuda_emulator.compile_kernel`` with NumPy arrays."""
    xp = get_array_module(x)
    x = xp.ascontiguousarray(x)
    (h_lo, h_hi), (w_lo, w_hi) = [tuple(xp.ascontiguousarray(e, dtype=xp.int64) for e in pair) for pair in (rows, cols)]
    R, C, H, W = len(batch), x.shape[1], x.shape[2], x.shape[3]
    PH, PW = h_lo.shape[1], w_lo.shape[1]
    y = xp.empty((R, C, PH, PW), dtype=x.dtype)  # (R, C, PH, PW) written in full
    arg = xp.empty(y.shape, dtype=xp.int64)  # (R, C, PH, PW)
    i32 = np.int32
    compile(SOURCE, "roi_pool_forward", x.dtype)(
        (grid_size(y.size, BLOCK),), (BLOCK,),
        (x, xp.ascontiguousarray(batch, dtype=xp.int64), h_lo, h_hi, w_lo, w_hi, y, arg,
         i32(R), i32(C), i32(H), i32(W), i32(PH), i32(PW)))
    return y, arg
