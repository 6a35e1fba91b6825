"""Numba loop kernels of RoI pooling and RoIAlign: the per-bin gathers (forward) and their scatters
(backward).

Legend: N images, C channels, H, W feature map, R regions, PH, PW output size, G sample points per
bin along one axis. The geometry (bin edges; the bilinear taps and weights of every sample point)
is computed once by ``scratchnet/functional/roi.py``; these loops only gather and scatter. The
vectorised references are ``_roi_pool_ref`` / ``_roi_align_ref`` (and their backwards) there;
``scratchnet/kernels/roi.py`` chooses between them and these kernels.
"""
from __future__ import annotations

from .._jit import njit, prange

__all__ = ["roi_pool_kernel", "roi_pool_kernel_serial", "roi_pool_backward_kernel",
           "roi_pool_backward_kernel_serial", "roi_align_kernel", "roi_align_kernel_serial",
           "roi_align_backward_kernel", "roi_align_backward_kernel_serial"]


def _roi_pool_kernel(x, batch, h_lo, h_hi, w_lo, w_hi, y, arg):
    """y[r, c, i, j] = max of x[batch[r], c, h_lo:h_hi, w_lo:w_hi] (bin i, j), arg = h·W + w of the
    first maximum in row-major order; an empty bin gives 0 and −1.

    h_lo, h_hi (R, PH), w_lo, w_hi (R, PW) int64 clipped edges; y (R, C, PH, PW), arg (R, C, PH, PW)
    int64, written in full.
    """
    R, C, PH, PW = y.shape
    W = x.shape[3]
    for r in prange(R):  # independent regions
        n = batch[r]
        for c in range(C):  # channel
            plane = x[n, c]
            for i in range(PH):  # bin row
                for j in range(PW):  # bin column
                    a, b, u, v = h_lo[r, i], h_hi[r, i], w_lo[r, j], w_hi[r, j]
                    if b <= a or v <= u:
                        y[r, c, i, j] = 0
                        arg[r, c, i, j] = -1
                        continue
                    best = plane[a, u]
                    best_k = a * W + u
                    for h in range(a, b):  # window row
                        for w in range(u, v):  # window column
                            if plane[h, w] > best:
                                best = plane[h, w]
                                best_k = h * W + w
                    y[r, c, i, j] = best
                    arg[r, c, i, j] = best_k


def _roi_pool_backward_kernel(dy, arg, batch, dx):
    """dx[batch[r], c] at pixel arg[r, c, i, j] += dy[r, c, i, j] (skipping −1). dx zeroed by the caller."""
    R, C, PH, PW = dy.shape
    W = dx.shape[3]
    for c in prange(C):  # channels write disjoint planes of dx
        for r in range(R):  # regions may share an image: kept in one thread
            n = batch[r]
            for i in range(PH):
                for j in range(PW):
                    k = arg[r, c, i, j]
                    if k >= 0:
                        dx[n, c, k // W, k % W] += dy[r, c, i, j]


def _roi_align_kernel(x, batch, ylo, yhi, wylo, wyhi, xlo, xhi, wxlo, wxhi, y):
    """y[r, c, i, j] = Σ_s Σ_t of the bilinear sample at (row point s of bin row i, column point t of
    bin column j), each weight already divided by the sample count.

    ylo, yhi, wylo, wyhi (R, PH, G) row taps; xlo, xhi, wxlo, wxhi (R, PW, G') column taps;
    y (R, C, PH, PW) written in full.
    """
    R, C, PH, PW = y.shape
    GY, GX = ylo.shape[2], xlo.shape[2]
    for r in prange(R):  # independent regions
        n = batch[r]
        for c in range(C):  # channel
            plane = x[n, c]
            for i in range(PH):  # bin row
                for j in range(PW):  # bin column
                    acc = 0.0
                    for s in range(GY):  # sample row
                        a0, a1 = wylo[r, i, s], wyhi[r, i, s]
                        if a0 == 0 and a1 == 0:
                            continue  # an unused or outside point
                        row0, row1 = plane[ylo[r, i, s]], plane[yhi[r, i, s]]
                        for t in range(GX):  # sample column
                            b0, b1 = wxlo[r, j, t], wxhi[r, j, t]
                            k0, k1 = xlo[r, j, t], xhi[r, j, t]
                            acc += a0 * (b0 * row0[k0] + b1 * row0[k1]) + a1 * (b0 * row1[k0] + b1 * row1[k1])
                    y[r, c, i, j] = acc


def _roi_align_backward_kernel(dy, batch, ylo, yhi, wylo, wyhi, xlo, xhi, wxlo, wxhi, dx):
    """dx[batch[r], c] += each sample's four bilinear weights × dy[r, c, i, j]. dx zeroed by the caller."""
    R, C, PH, PW = dy.shape
    GY, GX = ylo.shape[2], xlo.shape[2]
    for c in prange(C):  # channels write disjoint planes of dx
        for r in range(R):  # regions may share an image: kept in one thread
            plane = dx[batch[r], c]
            for i in range(PH):
                for j in range(PW):
                    g = dy[r, c, i, j]
                    for s in range(GY):
                        a0, a1 = wylo[r, i, s] * g, wyhi[r, i, s] * g
                        if a0 == 0 and a1 == 0:
                            continue
                        h0, h1 = ylo[r, i, s], yhi[r, i, s]
                        for t in range(GX):
                            b0, b1 = wxlo[r, j, t], wxhi[r, j, t]
                            k0, k1 = xlo[r, j, t], xhi[r, j, t]
                            plane[h0, k0] += a0 * b0
                            plane[h0, k1] += a0 * b1
                            plane[h1, k0] += a1 * b0
                            plane[h1, k1] += a1 * b1


roi_pool_kernel = njit(parallel=True)(_roi_pool_kernel)  # prange over regions: for big outputs
roi_pool_kernel_serial = njit(_roi_pool_kernel)  # the same loops on one thread: small outputs
roi_pool_backward_kernel = njit(parallel=True)(_roi_pool_backward_kernel)  # prange over channels
roi_pool_backward_kernel_serial = njit(_roi_pool_backward_kernel)
roi_align_kernel = njit(parallel=True)(_roi_align_kernel)  # prange over regions: for big outputs
roi_align_kernel_serial = njit(_roi_align_kernel)  # the same loops on one thread: small outputs
roi_align_backward_kernel = njit(parallel=True)(_roi_align_backward_kernel)  # prange over channels
roi_align_backward_kernel_serial = njit(_roi_align_backward_kernel)
