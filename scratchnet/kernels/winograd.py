"""The Winograd route of conv2d: F(4×4, 3×3) for 3×3 stride-1 layers with many channels.

The algorithm and the names are in ``winograd_loops.py``. Per block of samples:

    forward   U = G g Gᵀ (once)     V = tiles(x)          M[ξ] = U[ξ] V[ξ]      y = untile(M) + b
    backward  V cached (or tiles(x) again)    dM = untileᵀ(dy)      dU[ξ] += dM[ξ] V[ξ]ᵀ
              dV[ξ] = U[ξ]ᵀ dM[ξ]             dx = tilesᵀ(dV)       dw = Gᵀ dU G (once)

36 GEMMs of C_out × C_in × T instead of the columns' C_out × 9·C_in × 16·T: 2.25× fewer multiply-adds,
and 36/16 = 2.25 transformed values per input value to move instead of 9 unfolded ones. The price is
rounding: the transforms multiply by up to 8 and divide by 24, so float32 results differ from the
direct sum by a few parts in a million of the output's scale (the tests bound it). ``conv.py`` takes
this route on the Numba path for layers with enough channels (``is_winograd``; timings in
``benchmarks/bench_conv.py``); the vectorised references of the four tile transforms are here, and
the tests compare the Numba kernels with them.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import winograd_loops

__all__ = ["WINOGRAD_BT", "WINOGRAD_G", "WINOGRAD_AT", "WinogradTiles", "is_winograd", "conv2d_winograd",
           "conv2d_winograd_backward", "input_tiles_ref", "output_tiles_ref", "output_tiles_adjoint_ref",
           "input_tiles_adjoint_ref", "WINOGRAD_MIN_CHANNELS", "WINOGRAD_MIN_PLANES", "WINOGRAD_BLOCK_BYTES",
           "WINOGRAD_CACHE_BYTES"]

# the input transform: v = Bᵀ d B
WINOGRAD_BT = np.array([[4, 0, -5, 0, 1, 0],
                        [0, -4, -4, 1, 1, 0],
                        [0, 4, -4, -1, 1, 0],
                        [0, -2, -1, 2, 1, 0],
                        [0, 2, -1, -2, 1, 0],
                        [0, 4, 0, -5, 0, 1]], dtype=np.float64)
# the filter transform: u = G g Gᵀ
WINOGRAD_G = np.array([[1 / 4, 0, 0],
                       [-1 / 6, -1 / 6, -1 / 6],
                       [-1 / 6, 1 / 6, -1 / 6],
                       [1 / 24, 1 / 12, 1 / 6],
                       [1 / 24, -1 / 12, 1 / 6],
                       [0, 0, 1]], dtype=np.float64)
# the output transform: Y = Aᵀ m A
WINOGRAD_AT = np.array([[1, 1, 1, 1, 1, 0],
                        [0, 1, -1, 2, -2, 0],
                        [0, 1, 1, 4, 4, 0],
                        [0, 1, -1, 8, -8, 1]], dtype=np.float64)


# input and output channels, each, and filter planes C_in·C_out, from which a 3×3 stride-1 layer takes
# the Winograd route: below, its GEMMs are too thin for the transforms to pay (benchmarks/bench_conv.py:
# 8→16 channels at 32×32 0.63× the time of the columns, 8→8 1.01×, 4→16 1.39×, 3→16 1.56×)
WINOGRAD_MIN_CHANNELS = 8
WINOGRAD_MIN_PLANES = 128
# bytes of one block's transformed tiles (36·C·T numbers): the batch is cut into blocks of samples
# below this, which bounds the route's scratch memory while keeping the GEMMs long
WINOGRAD_BLOCK_BYTES = 1 << 25
# bytes of the whole batch's transformed tiles (2.25 to 3 times the input) up to which the forward
# keeps them for the backward instead of x: the backward then skips one transform pass (3.7 of 33 ms
# for the benchmarks' ResNet layer); a larger layer keeps x and transforms it again, block by block
WINOGRAD_CACHE_BYTES = 1 << 26


def is_winograd(x, w, g, groups):
    """A 3×3 window, stride 1, no dilation, no groups, ≥ WINOGRAD_MIN_CHANNELS channels in and out and
    ≥ WINOGRAD_MIN_PLANES filter planes."""
    C_in, C_out = x.shape[1], w.shape[0]
    return (g.kh == g.kw == 3 and g.sh == g.sw == 1 and g.dh == g.dw == 1 and groups == 1
            and min(C_in, C_out) >= WINOGRAD_MIN_CHANNELS and C_in * C_out >= WINOGRAD_MIN_PLANES)


def _tiles(g):
    """TH, TW: rows and columns of 4×4 output blocks covering OH × OW."""
    return -(-g.oh // 4), -(-g.ow // 4)


def _planes(C, T, dtype):
    """An empty (36, C, T) array whose 36 planes sit C·T + 16 numbers apart, not C·T: with C·T a power
    of two the transforms' six streams per pass would all map to the same cache sets."""
    return np.empty((36, C * T + 16), dtype=dtype)[:, :C * T].reshape(36, C, T)


def _consts(dtype):
    """The transforms' constants 2, 4, 5, 8 in the arrays' dtype (the kernels' ``consts``)."""
    return np.array([2, 4, 5, 8], dtype=dtype)


def _block(N, C, TH, TW, itemsize):
    """Samples per block: as many as keep 36·C·T transformed values within WINOGRAD_BLOCK_BYTES."""
    return max(1, min(N, WINOGRAD_BLOCK_BYTES // (36 * C * TH * TW * itemsize)))


def _scratch(TH, TW, dtype):
    """The tile kernels' scratch: a zero padded plane (4TH + 2, 4TW + 2), the six rows of one pass."""
    return np.zeros((4 * TH + 2, 4 * TW + 2), dtype=dtype), np.empty((6, 4 * TW + 2), dtype=dtype)


# start-conv-winograd
class WinogradTiles(NamedTuple):
    """The forward's transformed input tiles and filters, kept for the backward in ``ConvCache.cols``:
    V (36, C_in, N·TH·TW), U (36, C_out, C_in) and the input's shape."""
    V: np.ndarray
    U: np.ndarray
    x_shape: tuple


def _filters(w):
    """U (36, C_out, C_in): every filter transformed, u = G g Gᵀ, one GEMM factor per position ξ."""
    C_out, C_in = w.shape[:2]
    Gm = WINOGRAD_G.astype(w.dtype)
    t = (w.reshape(-1, 3) @ Gm.T).reshape(C_out, C_in, 3, 6)  # g Gᵀ: one GEMM over every filter row
    u = np.tensordot(Gm, t, axes=(1, 2))  # G (g Gᵀ): (6, C_out, C_in, 6)
    return np.ascontiguousarray(u.transpose(0, 3, 1, 2)).reshape(36, C_out, C_in)


def _filters_backward(dU):
    """dw (C_out, C_in, 3, 3) = Gᵀ du G for every filter, du[a, b] = dU[6a + b]: ``_filters`` transposed."""
    _, C_out, C_in = dU.shape
    Gm = WINOGRAD_G.astype(dU.dtype)
    t = np.tensordot(Gm, dU.reshape(6, 6, C_out, C_in), axes=(0, 0))  # Gᵀ du: (3, 6, C_out, C_in)
    dw = np.tensordot(t, Gm, axes=(1, 0))  # (Gᵀ du) G: (3, C_out, C_in, 3)
    return np.ascontiguousarray(dw.transpose(1, 2, 0, 3))


def conv2d_winograd(x, w, b, g):
    """y and the tiles to cache (a ``WinogradTiles``, or None when they pass WINOGRAD_CACHE_BYTES: the
    backward then transforms x again) of a 3×3 stride-1 conv2d by F(4×4, 3×3), a block of samples at a time."""
    N, C_in = x.shape[:2]
    C_out = w.shape[0]
    TH, TW = _tiles(g)
    U = _filters(w)
    x = np.ascontiguousarray(x)
    y = np.empty((N, C_out, g.oh, g.ow), dtype=x.dtype)
    consts = _consts(x.dtype)
    keep = 36 * C_in * N * TH * TW * x.dtype.itemsize <= WINOGRAD_CACHE_BYTES
    B = _block(N, max(C_in, C_out), TH, TW, x.dtype.itemsize)
    V = _planes(C_in, (N if keep else B) * TH * TW, x.dtype)  # every block's tiles, or one block's
    M = _planes(C_out, B * TH * TW, x.dtype)  # one block's products
    P, tmp = _scratch(TH, TW, x.dtype)
    bias = np.zeros(C_out, dtype=x.dtype) if b is None else np.ascontiguousarray(b, dtype=x.dtype)
    for n0 in range(0, N, B):  # transform a block's tiles, 36 GEMMs, transform back into y (+ the bias)
        n1 = min(n0 + B, N)
        T = (n1 - n0) * TH * TW
        Vb = V[:, :, n0 * TH * TW:n1 * TH * TW] if keep else V[:, :, :T]
        winograd_loops.input_tiles_kernel(x[n0:n1], Vb, TH, TW, g.ph, g.pw, consts, P, tmp)
        np.matmul(U, Vb, out=M[:, :, :T])
        winograd_loops.output_tiles_kernel(M[:, :, :T], bias, y[n0:n1], TH, TW, consts, tmp)
    return y, (WinogradTiles(V, U, x.shape) if keep else None)


def conv2d_winograd_backward(dy, x, w, g, tiles=None):
    """dx, dw of ``conv2d_winograd``: per block, the cached tiles (or x transformed again), dU summed
    over the blocks. x is None when ``tiles`` are given."""
    N, C_in, H, W = x.shape if tiles is None else tiles.x_shape
    C_out = w.shape[0]
    TH, TW = _tiles(g)
    U = _filters(w) if tiles is None else tiles.U
    dy = np.ascontiguousarray(dy)
    dx = np.empty((N, C_in, H, W), dtype=dy.dtype)
    dU = np.zeros((36, C_out, C_in), dtype=w.dtype)  # summed over the blocks
    part = np.empty((36, C_out, C_in), dtype=w.dtype)  # one block's dU
    consts = _consts(dy.dtype)
    B = _block(N, max(C_in, C_out), TH, TW, dy.dtype.itemsize)
    V = _planes(C_in, B * TH * TW, dy.dtype)  # one block's tiles of x (when not cached), then its dV
    dM = _planes(C_out, B * TH * TW, dy.dtype)  # one block's tiles of dy
    P, tmp = _scratch(TH, TW, dy.dtype)  # P: the input transform's zero-padded plane (when x is re-tiled)
    P_dx = np.empty_like(P)  # the adjoint's padded plane (P's padding must stay zero)
    for n0 in range(0, N, B):  # the block's tiles, its dU, its dV untiled into dx
        n1 = min(n0 + B, N)
        T = (n1 - n0) * TH * TW
        dMb, dVb = dM[:, :, :T], V[:, :, :T]
        if tiles is None:
            Vb = V[:, :, :T]
            winograd_loops.input_tiles_kernel(np.ascontiguousarray(x[n0:n1]), Vb, TH, TW, g.ph, g.pw, consts, P, tmp)
        else:
            Vb = tiles.V[:, :, n0 * TH * TW:n1 * TH * TW]
        winograd_loops.output_tiles_adjoint_kernel(dy[n0:n1], dMb, TH, TW, consts, tmp)
        np.matmul(dMb, Vb.swapaxes(1, 2), out=part)  # dM[ξ] V[ξ]ᵀ
        dU += part
        np.matmul(U.swapaxes(1, 2), dMb, out=dVb)  # dV[ξ] = U[ξ]ᵀ dM[ξ] (over the spent tiles of x)
        winograd_loops.input_tiles_adjoint_kernel(dVb, dx[n0:n1], TH, TW, g.ph, g.pw, consts, P_dx, tmp)
    return dx, _filters_backward(dU)
# end-conv-winograd


# -- the vectorised references of the four tile transforms ---------------------------------------
def _tile_view(padded, TH, TW):
    """(N, C, TH, TW, 6, 6) view of the 6×6 tiles of padded planes (N, C, 4TH + 2, 4TW + 2): tile (ty, tx)
    starts at row 4ty, column 4tx."""
    N, C = padded.shape[:2]
    s = padded.strides
    return np.lib.stride_tricks.as_strided(padded, (N, C, TH, TW, 6, 6), (s[0], s[1], 4 * s[2], 4 * s[3], s[2], s[3]),
                                           writeable=False)


def _padded(x, TH, TW, ph, pw):
    """x zero-padded to (N, C, 4TH + 2, 4TW + 2), x starting at (ph, pw)."""
    N, C, H, W = x.shape
    out = np.zeros((N, C, 4 * TH + 2, 4 * TW + 2), dtype=x.dtype)
    out[:, :, ph:ph + H, pw:pw + W] = x
    return out


def input_tiles_ref(x, TH, TW, ph, pw):
    """V (36, C, N·TH·TW): Bᵀ d B of every tile."""
    N, C = x.shape[:2]
    d = _tile_view(_padded(x, TH, TW, ph, pw), TH, TW)
    BT = WINOGRAD_BT.astype(x.dtype)
    v = BT @ d @ BT.T  # (N, C, TH, TW, 6, 6)
    return np.ascontiguousarray(v.transpose(4, 5, 1, 0, 2, 3)).reshape(36, C, N * TH * TW)


def output_tiles_ref(M, N, OH, OW, TH, TW):
    """y (N, C, OH, OW): Aᵀ m A of every tile, the blocks laid side by side and cut to OH × OW."""
    C = M.shape[1]
    m = M.reshape(6, 6, C, N, TH, TW).transpose(3, 2, 4, 5, 0, 1)  # (N, C, TH, TW, 6, 6)
    AT = WINOGRAD_AT.astype(M.dtype)
    Y = AT @ m @ AT.T  # (N, C, TH, TW, 4, 4)
    return np.ascontiguousarray(Y.transpose(0, 1, 2, 4, 3, 5).reshape(N, C, 4 * TH, 4 * TW)[:, :, :OH, :OW])


def output_tiles_adjoint_ref(dy, TH, TW):
    """dM (36, C, N·TH·TW): A dY Aᵀ of each 4×4 block of dy, zero-padded to 4TH × 4TW."""
    N, C, OH, OW = dy.shape
    full = np.zeros((N, C, 4 * TH, 4 * TW), dtype=dy.dtype)
    full[:, :, :OH, :OW] = dy
    blocks = full.reshape(N, C, TH, 4, TW, 4).transpose(0, 1, 2, 4, 3, 5)  # (N, C, TH, TW, 4, 4)
    AT = WINOGRAD_AT.astype(dy.dtype)
    dm = AT.T @ blocks @ AT  # (N, C, TH, TW, 6, 6)
    return np.ascontiguousarray(dm.transpose(4, 5, 1, 0, 2, 3)).reshape(36, C, N * TH * TW)


def input_tiles_adjoint_ref(dV, x_shape, TH, TW, ph, pw):
    """dx (N, C, H, W): B dv Bᵀ of every tile added at its place in the padded plane, padding dropped."""
    N, C, H, W = x_shape
    BT = WINOGRAD_BT.astype(dV.dtype)
    dv = dV.reshape(6, 6, C, N, TH, TW).transpose(3, 2, 4, 5, 0, 1)  # (N, C, TH, TW, 6, 6)
    dd = BT.T @ dv @ BT
    P = np.zeros((N, C, 4 * TH + 2, 4 * TW + 2), dtype=dV.dtype)
    for i in range(6):  # tile row offset i, column offset j: one strided add per (i, j)
        for j in range(6):
            P[:, :, i:i + 4 * TH:4, j:j + 4 * TW:4] += dd[..., i, j]
    return P[:, :, ph:ph + H, pw:pw + W].copy()
