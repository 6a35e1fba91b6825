"""Numba loop kernels of the int8 path: int8 × int8 → int32 GEMM, direct int8 convolution, requantisation.

Legend: N batch (rows of the GEMM), D inputs, M outputs, C channels, G groups, KH, KW kernel,
OH, OW output size, z_x the input's zero point. Every product of two int8 values fits in 16 bits
and sums of up to 65,000 of them fit in int32, so the accumulation is exact; requantisation is
integer too (a fixed-point multiplier m₀ and a right shift), so each kernel equals its vectorised
reference in ``scratchnet/kernels/int8.py`` bit for bit. Rows (samples) are independent outputs:
the parallel compilations split them over threads.
See chapters/34-quantization.md#int8-gemm.
"""
from __future__ import annotations

import numpy as np

from .._jit import njit, prange

__all__ = ["qgemm_kernel", "qgemm_kernel_serial", "qconv2d_kernel", "qconv2d_kernel_serial",
           "requantize_kernel", "requantize_kernel_serial"]


# start-qgemm
def _qgemm_kernel(x, zx, w, bias, acc):
    """acc[n, m] = bias[m] + Σ_d (x[n, d] − z_x) · w[d, m], all in integers.

    x (N, D) int8, w (D, M) int8 C-contiguous, bias (M,) int32; acc (N, M) int32 written in full.
    """
    N, D = x.shape
    M = w.shape[1]
    for n in prange(N):  # independent rows
        row = acc[n]  # (M,) view
        for m in range(M):
            row[m] = bias[m]
        for d in range(D):
            a = np.int32(x[n, d]) - zx  # the centred input, in [−255, 255]
            if a == 0:  # an input at its zero point (a ReLU's 0) contributes nothing
                continue
            w_row = w[d]  # (M,) unit stride: vectorises
            for m in range(M):
                row[m] += a * np.int32(w_row[m])
# end-qgemm


# start-qconv2d
def _qconv2d_kernel(xc, w, KH, KW, bias, sh, sw, dh, dw, OW, acc):
    """acc[n, o, t] = bias[o] + Σ_r w[o, r] · cols_n[r, t]: per sample, unfold the group's windows into
    int16 columns cols_n (C_in/G·KH·KW, OH·OW), then one row of the GEMM per output channel.

    xc (N, C_in, Hp, Wp) int16: the padded input minus its zero point (so the padding is 0);
    w (C_out, C_in/G·KH·KW) int8; bias (C_out,) int32; acc (N, C_out, OH·OW) int32 written in full.
    """
    N, C_out, L = acc.shape
    R = w.shape[1]  # rows of a group's columns: C_in/G · KH · KW
    Cg = R // (KH * KW)
    G = xc.shape[1] // Cg
    per_group = C_out // G
    for n in prange(N):  # independent samples
        cols = np.empty((R, L), np.int16)
        for g in range(G):
            r = 0
            for c in range(Cg):  # unfold: row r = (c, i, j), column t = (p, q)
                img = xc[n, g * Cg + c]
                for i in range(KH):
                    for j in range(KW):
                        for p in range(L // OW):
                            src = img[p * sh + i * dh]  # the input row output row p reads
                            for q in range(OW):
                                cols[r, p * OW + q] = src[q * sw + j * dw]
                        r += 1
            for o in range(g * per_group, (g + 1) * per_group):  # the group's GEMM, row by row
                row = acc[n, o]  # (L,) view
                for t in range(L):
                    row[t] = bias[o]
                for r in range(R):
                    wv = np.int32(w[o, r])
                    if wv == 0:
                        continue
                    col = cols[r]  # (L,) unit stride: vectorises
                    for t in range(L):
                        row[t] += wv * col[t]
# end-qconv2d


# start-requantize
def _requantize_kernel(acc, m0, shift, zy, qmin, qmax, out):
    """out[a, c, b] = clip(((acc · m0[c] + 2^(shift[c]−1)) >> shift[c]) + z_y, q_min, q_max).

    acc (A, C, B) int32, m0 (C,) int64 in [2^30, 2^31), shift (C,) int64 ≥ 1; out (A, C, B) int8.
    The product acc · m0 < 2^62 fits in int64; adding half of 2^shift before the arithmetic shift
    rounds to nearest (ties up).
    """
    A, C, B = acc.shape
    for a in prange(A):
        for c in range(C):
            m, s = m0[c], shift[c]
            half = np.int64(1) << (s - 1)
            for b in range(B):
                v = ((np.int64(acc[a, c, b]) * m + half) >> s) + zy
                out[a, c, b] = min(max(v, qmin), qmax)
# end-requantize


qgemm_kernel = njit(parallel=True)(_qgemm_kernel)
qgemm_kernel_serial = njit(_qgemm_kernel)
qconv2d_kernel = njit(parallel=True)(_qconv2d_kernel)
qconv2d_kernel_serial = njit(_qconv2d_kernel)
requantize_kernel = njit(parallel=True)(_requantize_kernel)
requantize_kernel_serial = njit(_requantize_kernel)
