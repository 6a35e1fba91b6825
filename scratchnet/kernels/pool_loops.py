"""Numba loop kernels of max pooling: the window argmax (forward) and its scatter (backward).

Legend: N batch, C channels, H, W input, KH, KW window, OH, OW output, sh, sw stride, ph, pw
padding. ``arg`` holds the winner's position inside its window, k = i·KW + j (first maximum in
row-major order, as PyTorch). The vectorised references are ``_max_pool_ref`` /
``_max_pool_backward_ref`` in ``scratchnet/functional/pool.py``.
"""
from __future__ import annotations

from .._jit import njit, prange

__all__ = ["max_pool2d_kernel", "max_pool2d_kernel_serial", "max_pool2d_backward_kernel", "max_pool2d_backward_kernel_serial"]


def _max_pool2d_kernel(x, y, arg, KH, KW, sh, sw, ph, pw):
    """y[n, c, oh, ow] = max of the window, arg = its index k = i·KW + j; padding never wins.

    x (N, C, H, W); y (N, C, OH, OW) and arg (N, C, OH, OW) int64, written in full.
    """
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    for nc in prange(N * C):  # independent (sample, channel) planes
        n = nc // C
        c = nc % C
        x_plane, y_plane, arg_plane = x[n, c], y[n, c], arg[n, c]  # 2-D views: halves the time of the prange loop
        for oh in range(OH):  # output row
            for ow in range(OW):  # output column
                best = -1.0
                best_k = -1
                for i in range(KH):  # window row
                    h = oh * sh - ph + i
                    if h < 0 or h >= H:
                        continue
                    for j in range(KW):  # window column
                        w = ow * sw - pw + j
                        if w < 0 or w >= W:
                            continue
                        v = x_plane[h, w]
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


max_pool2d_kernel = njit(parallel=True)(_max_pool2d_kernel)  # prange over planes: for big inputs
max_pool2d_kernel_serial = njit(_max_pool2d_kernel)  # the same loops on one thread: small inputs, busy machines


max_pool2d_backward_kernel = njit(parallel=True)(_max_pool2d_backward_kernel)  # prange over planes: for big inputs
max_pool2d_backward_kernel_serial = njit(_max_pool2d_backward_kernel)  # the same loops on one thread: small inputs, busy machines
