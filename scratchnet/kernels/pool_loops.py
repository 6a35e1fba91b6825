"""Numba loop kernels of max pooling: the window argmax (forward) and its scatter (backward).

Legend: N batch, C channels, H, W input, KH, KW window, OH, OW output, sh, sw stride, ph, pw
padding. ``arg`` holds the winner's position inside its window, k = i·KW + j (first maximum in
row-major order, as PyTorch). The vectorised references are ``_max_pool_ref`` /
``_max_pool_backward_ref`` in ``scratchnet/functional/pool.py``; ``scratchnet/kernels/pool.py``
chooses between them and these kernels.
"""
from __future__ import annotations

from .._jit import njit, prange

__all__ = ["max_pool2d_kernel", "max_pool2d_kernel_serial", "max_pool2d_backward_kernel",
           "max_pool2d_backward_kernel_serial", "max_pool2x2_kernel_serial", "max_pool2x2_backward_kernel_serial"]


def _max_pool2d_kernel(x, y, arg, KH, KW, sh, sw, ph, pw):
    """y[n, c, oh, ow] = max of the window, arg = its index k = i·KW + j; padding never wins.

    x (N, C, H, W); y (N, C, OH, OW) and arg (N, C, OH, OW) of any integer dtype holding
    KH·KW − 1 (the caller uses int8 for windows up to 127 taps), written in full.
    The winner is the first maximum in row-major tap order, or the first NaN. Each window's taps
    are clipped to the input once (no test per tap) and compared with a plain ``>`` (a select, far
    cheaper than the NaN-aware test); a window whose sum is NaN, i.e. that holds a NaN
    (or +∞ and −∞), is redone with the NaN-aware test.
    """
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    for nc in prange(N * C):  # independent (sample, channel) planes
        n = nc // C
        c = nc % C
        x_plane, y_plane, arg_plane = x[n, c], y[n, c], arg[n, c]  # 2-D views: cheaper indexing than 4-D
        for oh in range(OH):  # output row
            h0 = oh * sh - ph
            i_lo, i_hi = max(0, -h0), min(KH, H - h0)  # window rows inside the input
            for ow in range(OW):  # output column
                w0 = ow * sw - pw
                j_lo, j_hi = max(0, -w0), min(KW, W - w0)  # window columns inside the input
                best = x_plane[h0 + i_lo, w0 + j_lo]
                best_k = i_lo * KW + j_lo
                total = best - best  # 0, or NaN when the first tap is NaN or ±∞
                for i in range(i_lo, i_hi):  # window row
                    row = x_plane[h0 + i]
                    for j in range(j_lo, j_hi):  # window column
                        v = row[w0 + j]
                        total += v
                        if v > best:
                            best = v
                            best_k = i * KW + j
                if total != total:  # a NaN (or ±∞) in the window (rare): redo with the NaN-aware test
                    best_k = -1
                    for i in range(i_lo, i_hi):
                        for j in range(j_lo, j_hi):
                            v = x_plane[h0 + i, w0 + j]
                            if best_k < 0 or v > best or (v != v and best == best):
                                best = v
                                best_k = i * KW + j
                y_plane[oh, ow] = best
                arg_plane[oh, ow] = best_k


def _max_pool2d_backward_kernel(dy, arg, dx, KW, sh, sw, ph, pw):
    """dx[n, c, h, w] += dy[n, c, oh, ow] at each window's winner (h, w).

    dy, arg (N, C, OH, OW); dx (N, C, H, W) zeroed by the caller.
    """
    OH, OW = dy.shape[2], dy.shape[3]
    N, C = dx.shape[0], dx.shape[1]
    for nc in prange(N * C):  # independent planes: overlapping windows stay in one thread
        n = nc // C
        c = nc % C
        dy_plane, arg_plane, dx_plane = dy[n, c], arg[n, c], dx[n, c]  # 2-D views
        for oh in range(OH):  # output row
            for ow in range(OW):  # output column
                k = arg_plane[oh, ow]
                h = oh * sh - ph + k // KW
                w = ow * sw - pw + k % KW
                dx_plane[h, w] += dy_plane[oh, ow]


def _max_pool2x2_kernel(x, y, arg):
    """The 2×2, stride 2, unpadded case of ``max_pool2d_kernel``, its four taps unrolled.

    x (N, C, H, W); y, arg (N, C, H // 2, W // 2), written in full (a last odd row or column
    of x is in no window). Same winner as the general kernel: the first maximum, or the first NaN.
    The plain comparisons compile to selects (far cheaper than the NaN-aware test of the general
    kernel); a window whose sum is NaN, i.e. that holds a NaN (or +∞ and −∞), is redone exactly.
    """
    N, C = x.shape[0], x.shape[1]
    OH, OW = y.shape[2], y.shape[3]
    for nc in range(N * C):  # planes in turn
        n = nc // C
        c = nc % C
        x_plane, y_plane, arg_plane = x[n, c], y[n, c], arg[n, c]  # 2-D views
        for oh in range(OH):  # output row
            top, bottom = x_plane[2 * oh], x_plane[2 * oh + 1]  # the window's two input rows
            for ow in range(OW):  # output column: taps k = 0, 1 (top), 2, 3 (bottom)
                v0, v1, v2, v3 = top[2 * ow], top[2 * ow + 1], bottom[2 * ow], bottom[2 * ow + 1]
                best, best_k = v0, 0
                if v1 > best:
                    best, best_k = v1, 1
                if v2 > best:
                    best, best_k = v2, 2
                if v3 > best:
                    best, best_k = v3, 3
                s = v0 + v1 + v2 + v3
                if s != s:  # a NaN in the window (rare): the first NaN wins, as in the general kernel
                    for k in range(4):  # taps in row-major order
                        v = top[2 * ow + k] if k < 2 else bottom[2 * ow + k - 2]
                        if k == 0 or v > best or (v != v and best == best):
                            best, best_k = v, k
                y_plane[oh, ow] = best
                arg_plane[oh, ow] = best_k


def _max_pool2x2_backward_kernel(dy, arg, dx):
    """dx of ``max_pool2x2_kernel``: the windows tile x, so dx is written once, no scatter-add.

    dy, arg (N, C, OH, OW); dx (N, C, H, W), written in full: each pair of rows is zeroed while in
    cache, then each window's winner k gets dy at (2·oh + k // 2, 2·ow + k % 2) (bit ops, no branch).
    """
    OH, OW = dy.shape[2], dy.shape[3]
    N, C, H, W = dx.shape
    for nc in range(N * C):  # planes in turn
        n = nc // C
        c = nc % C
        dy_plane, arg_plane, dx_plane = dy[n, c], arg[n, c], dx[n, c]  # 2-D views
        for h in range(2 * OH, H):  # an odd last row is in no window
            for w in range(W):
                dx_plane[h, w] = 0
        for oh in range(OH):  # output row
            top, bottom = dx_plane[2 * oh], dx_plane[2 * oh + 1]  # (W,) views
            for w in range(W):  # both rows of the window band start at zero
                top[w] = 0
                bottom[w] = 0
            for ow in range(OW):  # output column: the winner's pixel
                k = arg_plane[oh, ow]
                dx_plane[2 * oh + (k >> 1), 2 * ow + (k & 1)] = dy_plane[oh, ow]


max_pool2d_kernel = njit(parallel=True)(_max_pool2d_kernel)  # prange over planes: for big inputs
max_pool2d_kernel_serial = njit(_max_pool2d_kernel)  # the same loops on one thread: small inputs


max_pool2d_backward_kernel = njit(parallel=True)(_max_pool2d_backward_kernel)  # prange over planes: for big inputs
max_pool2d_backward_kernel_serial = njit(_max_pool2d_backward_kernel)  # the same loops on one thread: small inputs


# 2×2 fast paths: serial only (a parallel region costs more than these short loops; benchmarks/bench_conv.py)
max_pool2x2_kernel_serial = njit(_max_pool2x2_kernel)
max_pool2x2_backward_kernel_serial = njit(_max_pool2x2_backward_kernel)
