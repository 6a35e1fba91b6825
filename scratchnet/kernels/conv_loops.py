"""Numba loop kernels of the convolution: unfold (im2col) and fold (col2im, its adjoint).

The columns come in two layouts, both seen by the kernels as a 3-D array ``cols3`` whose
(sample n, row r = c·K + i·KW + j) block is the L = OH·OW outputs of tap (i, j) of channel c:
batch-first (N, C·K, L), where sample n's (C·K, L) matrix is the right factor of its own GEMM and
the product lands in y[n] without a transpose; and channel-first (C·K, N, L), the (C·K, N·L)
matrix of one GEMM over the whole batch.

Legend: N batch, C channels, H, W input height/width, KH, KW kernel, K = KH·KW, OH, OW output
size, L = OH·OW, sh, sw stride, ph, pw padding, dh, dw dilation. Kernels only: outputs are
preallocated by the caller, constants are arguments. The vectorised references are ``_unfold_ref``
/ ``_fold_ref`` in ``scratchnet/functional/conv.py``; ``scratchnet/kernels/conv.py`` chooses
between them and these kernels. Each tap block and each input plane is reached through a 1-D
view, and unit-stride rows through a slice view, so the inner loops index one contiguous vector
(cheaper than 6-D indexing; ``benchmarks/bench_conv.py``).
"""
from __future__ import annotations

from .._jit import njit, prange

__all__ = ["unfold_kernel", "unfold_kernel_serial", "fold_kernel", "fold_kernel_serial"]


@njit
def _valid_range(n_out, s, offset, size):
    """The output indices o in [0, n_out) whose input index o·s + offset lies in [0, size)."""
    lo = 0 if offset >= 0 else (-offset + s - 1) // s
    hi = (size - 1 - offset) // s + 1 if size - 1 - offset >= 0 else 0
    return lo, max(lo, min(n_out, hi))


# The unit-stride row loops live in two small kernels of their own: compiled apart from the padding
# branches they run faster than the same loops inlined there (``benchmarks/bench_conv.py``).
@njit
def _copy_rows(dst, src, OW, h_lo, h_hi, w_lo, w_hi, s_start, s_step):
    """dst[oh·OW + ow] = src[s_start + oh·s_step + ow] for oh in [h_lo, h_hi), ow in [w_lo, w_hi)."""
    for oh in range(h_lo, h_hi):  # output rows that read real pixels
        s0 = s_start + oh * s_step  # src index read by ow = 0
        d_row = dst[oh * OW + w_lo:oh * OW + w_hi]  # (w_hi − w_lo,) views: a plain copy
        s_row = src[s0 + w_lo:s0 + w_hi]
        for t in range(w_hi - w_lo):  # the contiguous copy
            d_row[t] = s_row[t]


@njit
def _add_rows(dst, src, OW, h_lo, h_hi, w_lo, w_hi, d_start, d_step):
    """dst[d_start + oh·d_step + ow] += src[oh·OW + ow]: the adjoint of ``_copy_rows``."""
    for oh in range(h_lo, h_hi):  # output rows that read real pixels
        d0 = d_start + oh * d_step  # dst index fed by ow = 0
        d_row = dst[d0 + w_lo:d0 + w_hi]  # (w_hi − w_lo,) views: a plain sum
        s_row = src[oh * OW + w_lo:oh * OW + w_hi]
        for t in range(w_hi - w_lo):  # the contiguous accumulation
            d_row[t] += s_row[t]


def _unfold_kernel(x, cols3, batch_first, KH, KW, OW, sh, sw, ph, pw, dh, dw):
    """cols[n, c, i, j, oh, ow] = x[n, c, oh·sh − ph + i·dh, ow·sw − pw + j·dw] (0 outside x).

    x (N, C, H, W) C-contiguous; cols3 (N, C·K, L) if batch_first else (C·K, N, L), C-contiguous,
    written in full. The valid output range of each tap is computed once: the copies are branch-free.
    """
    N, C, H, W = x.shape
    K, L = KH * KW, cols3.shape[2]
    OH = L // OW
    x3 = x.reshape(N, C, H * W)  # (N, C, HW) view
    for nc in prange(N * C):  # independent (sample, channel) planes
        n, c = nc // C, nc % C
        src = x3[n, c]  # (HW,) view
        for i in range(KH):  # kernel row
            h_lo, h_hi = _valid_range(OH, sh, i * dh - ph, H)
            for j in range(KW):  # kernel column
                w_lo, w_hi = _valid_range(OW, sw, j * dw - pw, W)
                r = c * K + i * KW + j
                dst = cols3[n, r] if batch_first else cols3[r, n]  # (L,) view: tap (i, j)'s block
                for t in range(h_lo * OW):  # rows above the image: zeros
                    dst[t] = 0
                for t in range(h_hi * OW, L):  # rows below the image: zeros
                    dst[t] = 0
                if w_lo > 0 or w_hi < OW:
                    for oh in range(h_lo, h_hi):  # left and right padding of the rows in the image
                        for ow in range(w_lo):
                            dst[oh * OW + ow] = 0
                        for ow in range(w_hi, OW):
                            dst[oh * OW + ow] = 0
                s_start = (i * dh - ph) * W + j * dw - pw  # x index read by output (0, 0)
                if sw == 1:
                    _copy_rows(dst, src, OW, h_lo, h_hi, w_lo, w_hi, s_start, sh * W)
                else:
                    for oh in range(h_lo, h_hi):  # output rows that read real pixels
                        s0 = s_start + oh * sh * W  # x index read by ow = 0
                        for ow in range(w_lo, w_hi):  # the strided copy
                            dst[oh * OW + ow] = src[s0 + ow * sw]


def _fold_kernel(cols3, dx, batch_first, KH, KW, OW, sh, sw, ph, pw, dh, dw):
    """dx[n, c, h, w] = Σ cols[n, c, i, j, oh, ow] over the (i, j, oh, ow) that read (h, w).

    The adjoint of ``unfold_kernel``: cols3 as there, dx (N, C, H, W) C-contiguous and written in
    full (each plane is zeroed here, while it is in cache).
    """
    N, C, H, W = dx.shape
    K, L = KH * KW, cols3.shape[2]
    OH = L // OW
    d3 = dx.reshape(N, C, H * W)  # (N, C, HW) view
    for nc in prange(N * C):  # independent (sample, channel) planes: no write conflicts
        n, c = nc // C, nc % C
        dst = d3[n, c]  # (HW,) view
        for t in range(H * W):  # start from zero
            dst[t] = 0
        for i in range(KH):  # kernel row
            h_lo, h_hi = _valid_range(OH, sh, i * dh - ph, H)
            for j in range(KW):  # kernel column
                w_lo, w_hi = _valid_range(OW, sw, j * dw - pw, W)
                r = c * K + i * KW + j
                src = cols3[n, r] if batch_first else cols3[r, n]  # (L,) view: tap (i, j)'s block
                d_start = (i * dh - ph) * W + j * dw - pw  # dx index fed by output (0, 0)
                if sw == 1:
                    _add_rows(dst, src, OW, h_lo, h_hi, w_lo, w_hi, d_start, sh * W)
                else:
                    for oh in range(h_lo, h_hi):  # output rows that read real pixels
                        d0 = d_start + oh * sh * W  # dx index fed by ow = 0
                        for ow in range(w_lo, w_hi):  # the strided accumulation
                            dst[d0 + ow * sw] += src[oh * OW + ow]


unfold_kernel = njit(parallel=True)(_unfold_kernel)  # prange over planes: for big inputs
unfold_kernel_serial = njit(_unfold_kernel)  # the same loops on one thread: small inputs, busy machines


fold_kernel = njit(parallel=True)(_fold_kernel)  # prange over planes: for big inputs
fold_kernel_serial = njit(_fold_kernel)  # the same loops on one thread: small inputs, busy machines
