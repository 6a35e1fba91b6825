"""Numba loop kernels of the convolution: im2col (unfold) and col2im (fold, its adjoint).

The columns are laid out (C, KH, KW, N, OH, OW): viewed as a (C·K, N·L) matrix, a whole batch
is one GEMM with the (C_out, C·K) weight matrix.

Legend: N batch, C channels, H, W input height/width, KH, KW kernel, OH, OW output positions,
sh, sw stride, ph, pw padding, dh, dw dilation. Kernels only: outputs are preallocated by the
caller, constants are arguments. The vectorised references are ``_im2col_ref`` / ``_col2im_ref``
in ``scratchnet/functional/conv.py``.
"""
from __future__ import annotations

from .._jit import njit, prange

__all__ = ["im2col_kernel", "im2col_kernel_serial", "col2im_kernel", "col2im_kernel_serial"]


@njit
def _valid_range(O, s, offset, size):
    """The output indices o in [0, O) whose input index o·s + offset lies in [0, size)."""
    lo = 0 if offset >= 0 else (-offset + s - 1) // s
    hi = (size - 1 - offset) // s + 1 if size - 1 - offset >= 0 else 0
    return lo, max(lo, min(O, hi))


def _im2col_kernel(x, cols, sh, sw, ph, pw, dh, dw):
    """cols[c, i, j, n, oh, ow] = x[n, c, oh·sh − ph + i·dh, ow·sw − pw + j·dw] (0 outside x).

    x (N, C, H, W); cols (C, KH, KW, N, OH, OW), written in full. The valid output range of each
    tap is computed once, so the inner loop is a branch-free strided copy.
    """
    N, C, H, W = x.shape
    KH, KW, OH, OW = cols.shape[1], cols.shape[2], cols.shape[4], cols.shape[5]
    for nc in prange(N * C):  # independent (sample, channel) planes
        n = nc // C
        c = nc % C
        for i in range(KH):  # kernel row
            h_lo, h_hi = _valid_range(OH, sh, i * dh - ph, H)
            for j in range(KW):  # kernel column
                w_lo, w_hi = _valid_range(OW, sw, j * dw - pw, W)
                for oh in range(OH):  # output row
                    if oh < h_lo or oh >= h_hi:
                        for ow in range(OW):  # a row that reads padding: zeros
                            cols[c, i, j, n, oh, ow] = 0.0
                        continue
                    h = oh * sh - ph + i * dh
                    for ow in range(w_lo):  # left padding
                        cols[c, i, j, n, oh, ow] = 0.0
                    for ow in range(w_lo, w_hi):  # the strided copy
                        cols[c, i, j, n, oh, ow] = x[n, c, h, ow * sw - pw + j * dw]
                    for ow in range(w_hi, OW):  # right padding
                        cols[c, i, j, n, oh, ow] = 0.0


def _col2im_kernel(cols, dx, sh, sw, ph, pw, dh, dw):
    """dx[n, c, h, w] += Σ cols[c, i, j, n, oh, ow] over the (i, j, oh, ow) that read (h, w).

    The adjoint of ``im2col_kernel``; dx (N, C, H, W) must be zeroed by the caller.
    """
    N, C, H, W = dx.shape
    KH, KW, OH, OW = cols.shape[1], cols.shape[2], cols.shape[4], cols.shape[5]
    for nc in prange(N * C):  # independent (sample, channel) planes: no write conflicts
        n = nc // C
        c = nc % C
        for i in range(KH):  # kernel row
            h_lo, h_hi = _valid_range(OH, sh, i * dh - ph, H)
            for j in range(KW):  # kernel column
                w_lo, w_hi = _valid_range(OW, sw, j * dw - pw, W)
                for oh in range(h_lo, h_hi):  # output rows that read real pixels
                    h = oh * sh - ph + i * dh
                    for ow in range(w_lo, w_hi):  # the strided accumulation
                        dx[n, c, h, ow * sw - pw + j * dw] += cols[c, i, j, n, oh, ow]


im2col_kernel = njit(parallel=True)(_im2col_kernel)  # prange over planes: for big inputs
im2col_kernel_serial = njit(_im2col_kernel)  # the same loops on one thread: small inputs, busy machines


col2im_kernel = njit(parallel=True)(_col2im_kernel)  # prange over planes: for big inputs
col2im_kernel_serial = njit(_col2im_kernel)  # the same loops on one thread: small inputs, busy machines
