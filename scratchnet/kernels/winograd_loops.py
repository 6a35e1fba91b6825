"""Numba loop kernels of the Winograd convolution F(4×4, 3×3): the tile transforms around its GEMMs.

A 3×3 stride-1 convolution computes each 4×4 block of outputs from a 6×6 tile of the padded input
(tiles overlap by two rows and two columns). Winograd's minimal filtering algorithm (Lavin & Gray,
"Fast Algorithms for Convolutional Neural Networks", 2016) writes that block as

    Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A        d the 6×6 input tile, g the 3×3 filter, Y the 4×4 outputs

with the constant matrices Bᵀ (6×6), G (6×3) and Aᵀ (4×6) of ``winograd.WINOGRAD_BT``, ``WINOGRAD_G``
and ``WINOGRAD_AT`` (interpolation at the points 0, ±1, ±2 and ∞), written out in the loops below.
Summed over input channels, the elementwise product becomes 36 GEMMs, one per position ξ = 6i + j of
the 6×6 transformed tile:

    M[ξ] = U[ξ] V[ξ]     U (36, C_out, C_in) the transformed filters, V (36, C_in, T) the transformed
                          tiles, T = N·TH·TW tiles, tile t = (n·TH + ty)·TW + tx

36 products per 16 outputs instead of 9·16: 2.25× fewer multiply-adds than direct convolution.
Because every step is linear, the backward is the same steps transposed:

    dM[ξ] = (A dY Aᵀ)[ξ]  (``output_tiles_adjoint_kernel``)
    dU[ξ] = dM[ξ] V[ξ]ᵀ,  dV[ξ] = U[ξ]ᵀ dM[ξ]  (GEMMs)
    dd = B dV Bᵀ added into the tile's place in dx (``input_tiles_adjoint_kernel``), dg = Gᵀ dU G

These kernels are the four tile transforms; ``scratchnet/kernels/winograd.py`` calls them around
NumPy's GEMMs and holds their vectorised references. Each transform is done in two 1-D passes, one
down the columns of a whole row of tiles (a loop along the padded row, which the compiler
vectorises) and one along each tile's rows. A channel's planes are visited sample after sample, so
that its 36 rows of V are each written in order (visiting the channels of one sample instead: 4.6
against 3.4 ms for the benchmarks' ResNet layer). ``consts`` carries 2, 4, 5, 8 in the arrays' dtype
(a float literal would promote float32 arithmetic to float64). Kernels only: outputs and scratch are
preallocated by the caller.
"""
from __future__ import annotations

from .._jit import njit

__all__ = ["input_tiles_kernel", "output_tiles_kernel", "output_tiles_adjoint_kernel", "input_tiles_adjoint_kernel"]


@njit
def input_tiles_kernel(x, V, TH, TW, ph, pw, consts, P, tmp):
    """V[6i + j, c, t] = (Bᵀ d B)[i, j] for every 6×6 tile d of every padded plane of x.

    x (S, C, H, W); V (36, C, S·TH·TW); P (4TH + 2, 4TW + 2) scratch, zero on entry (the padding is
    never written, so it stays zero from plane to plane); tmp (6, 4TW + 2) scratch."""
    S, C, H, W = x.shape
    two, four, five = consts[0], consts[1], consts[2]
    Wp = 4 * TW + 2  # the padded plane's width
    for c in range(C):  # channel by channel
        Vc = V[:, c, :]  # (36, T)
        for n in range(S):  # its plane in every sample of the block
            xc = x[n, c]
            for h in range(H):  # copy the plane into the zero-padded one
                for w in range(W):  # each pixel of the row
                    P[h + ph, w + pw] = xc[h, w]
            for ty in range(TH):  # one row of tiles: padded rows 4ty … 4ty + 5
                r = 4 * ty
                for w in range(Wp):  # down the columns: tmp = Bᵀ d, every column of the row of tiles
                    d0, d1, d2 = P[r, w], P[r + 1, w], P[r + 2, w]
                    d3, d4, d5 = P[r + 3, w], P[r + 4, w], P[r + 5, w]
                    tmp[0, w] = four * d0 - five * d2 + d4
                    tmp[1, w] = d3 + d4 - four * (d1 + d2)
                    tmp[2, w] = four * (d1 - d2) + d4 - d3
                    tmp[3, w] = two * (d3 - d1) + d4 - d2
                    tmp[4, w] = two * (d1 - d3) + d4 - d2
                    tmp[5, w] = four * d1 - five * d3 + d5
                t0 = (n * TH + ty) * TW  # the tile index of tx = 0
                for i in range(6):  # along the rows: v = tmp B, tile tx reading columns 4tx … 4tx + 5
                    xi = 6 * i
                    for tx in range(TW):  # every tile of the row
                        o, t = 4 * tx, t0 + tx
                        d0, d1, d2 = tmp[i, o], tmp[i, o + 1], tmp[i, o + 2]
                        d3, d4, d5 = tmp[i, o + 3], tmp[i, o + 4], tmp[i, o + 5]
                        Vc[xi, t] = four * d0 - five * d2 + d4
                        Vc[xi + 1, t] = d3 + d4 - four * (d1 + d2)
                        Vc[xi + 2, t] = four * (d1 - d2) + d4 - d3
                        Vc[xi + 3, t] = two * (d3 - d1) + d4 - d2
                        Vc[xi + 4, t] = two * (d1 - d3) + d4 - d2
                        Vc[xi + 5, t] = four * d1 - five * d3 + d5


@njit
def output_tiles_kernel(M, bias, y, TH, TW, consts, tmp):
    """y's 4×4 block of tile t = Aᵀ m A + bias[c], m[i, j] = M[6i + j, c, t]; blocks past OH, OW are cut.

    M (36, C, S·TH·TW); bias (C,); y (S, C, OH, OW); tmp (6, 4TW + 2) scratch."""
    S, C, OH, OW = y.shape
    two, four, eight = consts[0], consts[1], consts[3]
    for c in range(C):  # channel by channel
        Mc = M[:, c, :]  # (36, T)
        b = bias[c]
        for n in range(S):  # its plane in every sample of the block
            yc = y[n, c]
            for ty in range(TH):  # one row of tiles: output rows 4ty … 4ty + 3
                t0 = (n * TH + ty) * TW
                for i in range(6):  # along the rows: tmp_i = m_i A, four outputs per tile
                    xi = 6 * i
                    for tx in range(TW):  # every tile of the row
                        t, o = t0 + tx, 4 * tx
                        m1, m2, m3, m4 = Mc[xi + 1, t], Mc[xi + 2, t], Mc[xi + 3, t], Mc[xi + 4, t]
                        s12, d12, s34, d34 = m1 + m2, m1 - m2, m3 + m4, m3 - m4
                        tmp[i, o] = Mc[xi, t] + s12 + s34
                        tmp[i, o + 1] = d12 + two * d34
                        tmp[i, o + 2] = s12 + four * s34
                        tmp[i, o + 3] = d12 + eight * d34 + Mc[xi + 5, t]
                h = 4 * ty
                rows = min(4, OH - h)  # the last row of tiles may hang past OH
                for w in range(OW):  # down the columns: Y = Aᵀ tmp + the bias (columns past OW are cut)
                    s12, d12 = tmp[1, w] + tmp[2, w], tmp[1, w] - tmp[2, w]
                    s34, d34 = tmp[3, w] + tmp[4, w], tmp[3, w] - tmp[4, w]
                    yc[h, w] = tmp[0, w] + s12 + s34 + b
                    if rows > 1:
                        yc[h + 1, w] = d12 + two * d34 + b
                    if rows > 2:
                        yc[h + 2, w] = s12 + four * s34 + b
                    if rows > 3:
                        yc[h + 3, w] = d12 + eight * d34 + tmp[5, w] + b


@njit
def output_tiles_adjoint_kernel(dy, dM, TH, TW, consts, tmp):
    """dM[6i + j, c, t] = (A dY Aᵀ)[i, j], dY the 4×4 block of dy under tile t (zero past OH, OW):
    the transpose of ``output_tiles_kernel``.

    dy (S, C, OH, OW); dM (36, C, S·TH·TW); tmp (6, 4TW + 2) scratch."""
    S, C, OH, OW = dy.shape
    two, four, eight = consts[0], consts[1], consts[3]
    zero = consts[0] * 0
    for c in range(C):  # channel by channel
        dMc = dM[:, c, :]  # (36, T)
        for n in range(S):  # its plane in every sample of the block
            dyc = dy[n, c]
            for ty in range(TH):  # one row of tiles: dy rows 4ty … 4ty + 3
                h = 4 * ty
                rows = min(4, OH - h)  # rows past OH read as zero
                for w in range(4 * TW):  # down the columns: tmp = A dY, six from four
                    a0 = a1 = a2 = a3 = zero
                    if w < OW:  # columns past OW read as zero
                        a0 = dyc[h, w]
                        if rows > 1:
                            a1 = dyc[h + 1, w]
                        if rows > 2:
                            a2 = dyc[h + 2, w]
                        if rows > 3:
                            a3 = dyc[h + 3, w]
                    s02, s13 = a0 + a2, a1 + a3
                    e, f = a0 + four * a2, two * a1 + eight * a3
                    tmp[0, w] = a0
                    tmp[1, w] = s02 + s13
                    tmp[2, w] = s02 - s13
                    tmp[3, w] = e + f
                    tmp[4, w] = e - f
                    tmp[5, w] = a3
                t0 = (n * TH + ty) * TW
                for i in range(6):  # along the rows: dm_i = tmp_i Aᵀ, tile tx reading columns 4tx … 4tx + 3
                    xi = 6 * i
                    for tx in range(TW):  # every tile of the row
                        o, t = 4 * tx, t0 + tx
                        a0, a1, a2, a3 = tmp[i, o], tmp[i, o + 1], tmp[i, o + 2], tmp[i, o + 3]
                        s02, s13 = a0 + a2, a1 + a3
                        e, f = a0 + four * a2, two * a1 + eight * a3
                        dMc[xi, t] = a0
                        dMc[xi + 1, t] = s02 + s13
                        dMc[xi + 2, t] = s02 - s13
                        dMc[xi + 3, t] = e + f
                        dMc[xi + 4, t] = e - f
                        dMc[xi + 5, t] = a3


@njit
def input_tiles_adjoint_kernel(dV, dx, TH, TW, ph, pw, consts, P, tmp):
    """dx = the sum over tiles of B dv Bᵀ, each 6×6 result added at its tile's place in the padded
    plane (overlapping tiles add), the padding then dropped: the transpose of ``input_tiles_kernel``.

    dV (36, C, S·TH·TW); dx (S, C, H, W), written in full; P (4TH + 2, 4TW + 2), tmp (6, 4TW + 2)
    scratch."""
    S, C, H, W = dx.shape
    two, four, five = consts[0], consts[1], consts[2]
    Wp = 4 * TW + 2
    zero = consts[0] * 0
    for c in range(C):  # channel by channel
        dVc = dV[:, c, :]  # (36, T)
        for n in range(S):  # its plane in every sample of the block
            for w in range(Wp):  # padded rows 0, 1 start at zero: every later row is first written by its tile
                P[0, w] = zero
                P[1, w] = zero
            for ty in range(TH):  # one row of tiles: adds into padded rows 4ty … 4ty + 5
                t0 = (n * TH + ty) * TW
                for i in range(6):  # along the rows: tmp_i = dv_i Bᵀ, neighbouring tiles adding where they overlap
                    xi = 6 * i
                    tmp[i, 0] = zero
                    tmp[i, 1] = zero
                    for tx in range(TW):  # every tile of the row
                        t, o = t0 + tx, 4 * tx
                        a0, a1, a2 = dVc[xi, t], dVc[xi + 1, t], dVc[xi + 2, t]
                        a3, a4, a5 = dVc[xi + 3, t], dVc[xi + 4, t], dVc[xi + 5, t]
                        tmp[i, o] += four * a0  # columns 4tx, 4tx + 1 hold the tile to the left's last two
                        tmp[i, o + 1] += four * (a2 - a1 + a5) + two * (a4 - a3)
                        tmp[i, o + 2] = -five * a0 - four * (a1 + a2) - a3 - a4
                        tmp[i, o + 3] = a1 - a2 + two * (a3 - a4) - five * a5
                        tmp[i, o + 4] = a0 + a1 + a2 + a3 + a4
                        tmp[i, o + 5] = a5
                r = 4 * ty
                for w in range(Wp):  # down the columns: the padded rows += B tmp (rows r, r + 1 hold the tiles above's)
                    a0, a1, a2 = tmp[0, w], tmp[1, w], tmp[2, w]
                    a3, a4, a5 = tmp[3, w], tmp[4, w], tmp[5, w]
                    P[r, w] += four * a0
                    P[r + 1, w] += four * (a2 - a1 + a5) + two * (a4 - a3)
                    P[r + 2, w] = -five * a0 - four * (a1 + a2) - a3 - a4
                    P[r + 3, w] = a1 - a2 + two * (a3 - a4) - five * a5
                    P[r + 4, w] = a0 + a1 + a2 + a3 + a4
                    P[r + 5, w] = a5
            dxc = dx[n, c]
            for h in range(H):  # drop the padding
                for w in range(W):  # each pixel of the row
                    dxc[h, w] = P[h + ph, w + pw]
