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

import numpy as np

from .._jit import njit, prange

__all__ = ["unfold_kernel", "unfold_kernel_serial", "fold_kernel", "fold_kernel_serial", "unfold_wide_kernel",
           "fold_wide_kernel",
           "depthwise_forward_kernel", "depthwise_backward_input_kernel", "depthwise_backward_weight_kernel",
           "depthwise_forward_kernel_serial", "depthwise_backward_input_kernel_serial",
           "depthwise_backward_weight_kernel_serial"]


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


# -- wide columns: stride 1, any padding and dilation -----------------------------------------------
# With stride 1 the output can be laid out "wide": rows of Wp = W + 2pw numbers instead of OW, the
# columns past OW computed and discarded. Tap (i, j) then reads the zero-padded plane x_pad
# (Hp = H + 2ph rows of Wp) at the fixed offset i·dh·Wp + j·dw with unit stride, so its block of
# columns is ONE contiguous copy of Lw = OH·Wp numbers, where the exact layout needs OH copies of OW
# (LeNet's C3: one copy of 140 numbers per tap instead of ten of ten). The GEMM does Wp/OW times the
# work (C3 1.4×, a padded 32×32 layer 1.06×). A valid output never reads past the padded plane; a
# discarded one may, and reads zero there.
@njit
def _pad_plane(src, buf, H, W, Wp, ph, pw):
    """buf[(h + ph)·Wp + w + pw] = src[h·W + w]: the (H·W,) plane zero-padded into the (Hp·Wp,) buffer."""
    buf[:] = 0
    for h in range(H):  # one row of the plane
        d_row = buf[(h + ph) * Wp + pw:(h + ph) * Wp + pw + W]
        s_row = src[h * W:(h + 1) * W]
        for t in range(W):
            d_row[t] = s_row[t]


@njit
def unfold_wide_kernel(x, cols3, batch_first, KH, KW, Wp, ph, pw, dh, dw, pad):
    """cols[n, c·K + i·KW + j, t] = x_pad[n, c][t + i·dh·Wp + j·dw] for t < Lw = OH·Wp (0 past the plane).

    x (N, C, H, W) C-contiguous; cols3 (N, C·K, Lw) if batch_first else (C·K, N, Lw), C-contiguous,
    written in full; pad (Hp·Wp,) scratch.
    """
    N, C, H, W = x.shape
    K, Lw = KH * KW, cols3.shape[2]
    P = (H + 2 * ph) * Wp  # numbers in a padded plane
    x3 = x.reshape(N, C, H * W)  # (N, C, HW) view
    padded = ph > 0 or pw > 0
    for n in range(N):  # samples
        for c in range(C):  # channels: one (padded) plane each
            plane = x3[n, c]  # (HW,) view, or its padded copy
            if padded:
                _pad_plane(plane, pad, H, W, Wp, ph, pw)
                plane = pad
            for i in range(KH):  # kernel row
                for j in range(KW):  # kernel column: one contiguous copy
                    off = i * dh * Wp + j * dw
                    m = min(Lw, P - off)  # numbers inside the plane
                    r = c * K + i * KW + j
                    dst = cols3[n, r] if batch_first else cols3[r, n]  # (Lw,) view: tap (i, j)'s block
                    src = plane[off:off + m]
                    for t in range(m):
                        dst[t] = src[t]
                    for t in range(m, Lw):  # discarded outputs past the plane
                        dst[t] = 0


@njit
def fold_wide_kernel(cols3, dx, batch_first, KH, KW, Wp, ph, pw, dh, dw, pad):
    """dx[n, c, h, w] = Σ_{i, j} cols3[n, c·K + i·KW + j, (h + ph − i·dh)·Wp + w + pw − j·dw] over the taps
    that read (h, w): the adjoint of ``unfold_wide_kernel`` when the discarded columns hold zeros.

    cols3 as there; dx (N, C, H, W) C-contiguous, written in full; pad (Hp·Wp,) scratch.
    """
    N, C, H, W = dx.shape
    K, Lw = KH * KW, cols3.shape[2]
    P = (H + 2 * ph) * Wp
    d3 = dx.reshape(N, C, H * W)  # (N, C, HW) view
    for n in range(N):  # samples
        for c in range(C):  # channels: accumulate the padded plane, then keep its interior
            pad[:] = 0
            for i in range(KH):  # kernel row
                for j in range(KW):  # kernel column: one contiguous accumulation
                    off = i * dh * Wp + j * dw
                    m = min(Lw, P - off)
                    r = c * K + i * KW + j
                    src = cols3[n, r] if batch_first else cols3[r, n]  # (Lw,) view
                    dst = pad[off:off + m]
                    for t in range(m):
                        dst[t] += src[t]
            dst = d3[n, c]  # (HW,) view
            for h in range(H):  # the interior of the padded plane
                d_row = dst[h * W:(h + 1) * W]
                s_row = pad[(h + ph) * Wp + pw:(h + ph) * Wp + pw + W]
                for t in range(W):
                    d_row[t] = s_row[t]


# -- depthwise: groups = C, each output channel o = c·m + k reads input channel c alone -------------
# A depthwise conv is G = C GEMMs of one row each: far too small for BLAS, so the direct loops below
# replace unfold + GEMM. Legend as above, plus m the channel multiplier (C_out = m·C), o an output
# channel, S = sh·sw phases. Each padded input plane is split into its S stride phases,
# phase (a, b)[u, v] = x_pad[u·sh + a, v·sw + b], each stored as rows of Wq = ⌈(W + 2pw)/sw⌉ numbers:
# tap (i, j) then reads one phase at a fixed offset with unit stride, and a whole output plane, laid
# out "wide" with rows of Wq (the columns past OW are discarded), is ONE contiguous loop per tap —
# long enough to vectorise, where a 14-wide row is not. Each kernel runs one prange over outputs no
# other iteration writes.
@njit
def _phase_geometry(H, W, KH, KW, OH, sh, sw, ph, pw, dh, dw):
    """(Wq, the length of one phase buffer): every tap's read of a wide output plane stays inside it."""
    Hq, Wq = (H + 2 * ph + sh - 1) // sh, (W + 2 * pw + sw - 1) // sw
    reach = (OH + (KH - 1) * dh // sh) * Wq + (KW - 1) * dw // sw  # the last tap's last index + 1
    return Wq, max(Hq * Wq, reach)


@njit
def _tap(i, j, Wq, sh, sw, dh, dw):
    """(phase index, offset) read by tap (i, j): input row/column p·sh + i·dh = sh·(p + ⌊i·dh/sh⌋) + i·dh mod sh."""
    return (i * dh % sh) * sw + j * dw % sw, (i * dh // sh) * Wq + j * dw // sw


@njit
def _split_phases(src, buf, H, W, Wq, sh, sw, ph, pw):
    """buf[phase, row·Wq + col] = x_pad of the (H·W,) plane ``src``; zero elsewhere (the padding)."""
    buf[:] = 0
    for h in range(H):
        a, r = (h + ph) % sh, (h + ph) // sh  # the row's phase and its row in that phase
        for b in range(sw):  # the columns w with (w + pw) mod sw = b, in order
            w0 = (b - pw) % sw
            dst = buf[a * sw + b, r * Wq + (w0 + pw) // sw:]  # view: consecutive in the phase
            s0 = h * W + w0
            if sw == 1:  # a contiguous copy
                row = src[s0:s0 + W]
                for t in range(W):
                    dst[t] = row[t]
            else:
                for t in range((W - w0 + sw - 1) // sw):
                    dst[t] = src[s0 + t * sw]


@njit
def _merge_phases(buf, dst, H, W, Wq, sh, sw, ph, pw):
    """dst[h·W + w] = buf at x_pad's (h + ph, w + pw): the adjoint of ``_split_phases`` on the real pixels."""
    for h in range(H):
        a, r = (h + ph) % sh, (h + ph) // sh
        for b in range(sw):
            w0 = (b - pw) % sw
            src = buf[a * sw + b, r * Wq + (w0 + pw) // sw:]
            d0 = h * W + w0
            if sw == 1:  # a contiguous copy
                row = dst[d0:d0 + W]
                for t in range(W):
                    row[t] = src[t]
            else:
                for t in range((W - w0 + sw - 1) // sw):
                    dst[d0 + t * sw] = src[t]


@njit
def _narrow_rows(wide, dst, OH, OW, Wq):
    """dst[oh·OW + ow] = wide[oh·Wq + ow]: the OW real columns of each wide row."""
    for oh in range(OH):
        d, w = dst[oh * OW:oh * OW + OW], wide[oh * Wq:oh * Wq + OW]  # (OW,) views
        for t in range(OW):
            d[t] = w[t]


@njit
def _widen_rows(src, wide, OH, OW, Wq):
    """wide[oh·Wq + ow] = src[oh·OW + ow]; the columns past OW keep their (zero) values."""
    for oh in range(OH):
        w, s = wide[oh * Wq:oh * Wq + OW], src[oh * OW:oh * OW + OW]  # (OW,) views
        for t in range(OW):
            w[t] = s[t]


def _depthwise_forward(x, w, b, y, m, sh, sw, ph, pw, dh, dw):
    """y[n, o, oh, ow] = b[o] + Σ_ij w[o, 0, i, j]·x_pad[n, o // m, oh·sh + i·dh, ow·sw + j·dw].

    x (N, C, H, W), w (m·C, 1, KH, KW), b (m·C,), y (N, m·C, OH, OW) written in full; all C-contiguous.
    """
    N, C, H, W = x.shape
    C_out, _, KH, KW = w.shape
    OH, OW = y.shape[2], y.shape[3]
    Wq, P = _phase_geometry(H, W, KH, KW, OH, sh, sw, ph, pw, dh, dw)
    T = OH * Wq  # one wide output plane
    x3 = x.reshape(N, C, H * W)  # (N, C, HW) view
    y3 = y.reshape(N, C_out, OH * OW)  # (N, C_out, L) view
    for nc in prange(N * C):  # independent (sample, input channel) planes and their m outputs
        n, c = nc // C, nc % C
        buf = np.empty((sh * sw, P), dtype=x.dtype)  # the plane's stride phases
        _split_phases(x3[n, c], buf, H, W, Wq, sh, sw, ph, pw)
        wide = np.empty(T, dtype=x.dtype)  # (OH·Wq,) one output plane, wide rows
        for o in range(c * m, c * m + m):
            wide[:] = b[o]
            for i in range(KH):
                for j in range(KW):
                    q, off = _tap(i, j, Wq, sh, sw, dh, dw)
                    a, src = w[o, 0, i, j], buf[q, off:off + T]  # (T,) view
                    for t in range(T):  # the whole tap in one unit-stride loop
                        wide[t] += a * src[t]
            _narrow_rows(wide, y3[n, o], OH, OW, Wq)  # keep the OW real columns of each wide row


def _depthwise_backward_input(dy, w, dx, m, sh, sw, ph, pw, dh, dw):
    """dx[n, c] = Σ_k the adjoint of the forward taps applied to dy[n, c·m + k]: each tap adds w·dy back
    into the phase it read, and the real pixels are gathered from the phases at the end.

    dy (N, m·C, OH, OW), w (m·C, 1, KH, KW), dx (N, C, H, W) written in full; all C-contiguous.
    """
    N, C, H, W = dx.shape
    C_out, _, KH, KW = w.shape
    OH, OW = dy.shape[2], dy.shape[3]
    Wq, P = _phase_geometry(H, W, KH, KW, OH, sh, sw, ph, pw, dh, dw)
    T = OH * Wq
    d3 = dx.reshape(N, C, H * W)  # (N, C, HW) view
    g3 = dy.reshape(N, C_out, OH * OW)  # (N, C_out, L) view
    for nc in prange(N * C):  # independent (sample, input channel) planes: no write conflicts
        n, c = nc // C, nc % C
        buf = np.zeros((sh * sw, P), dtype=dx.dtype)  # the gradient of the plane's phases
        wide = np.zeros(T, dtype=dx.dtype)  # dy[n, o] in wide rows, zero past column OW
        for o in range(c * m, c * m + m):  # the m output channels that read channel c
            _widen_rows(g3[n, o], wide, OH, OW, Wq)
            for i in range(KH):
                for j in range(KW):
                    q, off = _tap(i, j, Wq, sh, sw, dh, dw)
                    a, dst = w[o, 0, i, j], buf[q, off:off + T]  # (T,) view
                    for t in range(T):  # the tap's adjoint: scatter back where it read
                        dst[t] += a * wide[t]
        _merge_phases(buf, d3[n, c], H, W, Wq, sh, sw, ph, pw)  # padding's gradient dropped


def _depthwise_backward_weight(dy, x, dwt, m, sh, sw, ph, pw, dh, dw):
    """dwt[o, 0, i, j] = Σ_n Σ_{oh, ow} dy[n, o, oh, ow]·x_pad[n, o // m, oh·sh + i·dh, ow·sw + j·dw].

    dy (N, m·C, OH, OW), x (N, C, H, W), dwt (m·C, 1, KH, KW) written in full; all C-contiguous. Each
    tap's products are summed per position of the wide plane (an elementwise, vectorisable loop)
    and those partial sums added up at the end.
    """
    N, C, H, W = x.shape
    C_out, _, KH, KW = dwt.shape
    OH, OW = dy.shape[2], dy.shape[3]
    Wq, P = _phase_geometry(H, W, KH, KW, OH, sh, sw, ph, pw, dh, dw)
    T = OH * Wq
    x3 = x.reshape(N, C, H * W)  # (N, C, HW) view
    g3 = dy.reshape(N, C_out, OH * OW)  # (N, C_out, L) view
    for o in prange(C_out):  # independent output channels: each owns its KH·KW weights
        buf = np.empty((sh * sw, P), dtype=x.dtype)
        wide = np.zeros(T, dtype=x.dtype)  # dy[n, o] in wide rows, zero past column OW
        acc = np.zeros((KH * KW, T), dtype=x.dtype)  # per-position partial sums of each tap
        for n in range(N):
            _split_phases(x3[n, o // m], buf, H, W, Wq, sh, sw, ph, pw)
            _widen_rows(g3[n, o], wide, OH, OW, Wq)
            for i in range(KH):
                for j in range(KW):
                    q, off = _tap(i, j, Wq, sh, sw, dh, dw)
                    xs, a = buf[q, off:off + T], acc[i * KW + j]  # (T,) views
                    for t in range(T):
                        a[t] += wide[t] * xs[t]
        for i in range(KH):
            for j in range(KW):
                dwt[o, 0, i, j] = acc[i * KW + j].sum()


depthwise_forward_kernel = njit(parallel=True)(_depthwise_forward)  # prange over (sample, channel) planes
depthwise_backward_input_kernel = njit(parallel=True)(_depthwise_backward_input)  # prange over (sample, channel)
depthwise_backward_weight_kernel = njit(parallel=True)(_depthwise_backward_weight)  # prange over output channels
depthwise_forward_kernel_serial = njit(_depthwise_forward)  # the same loops on one thread: small layers
depthwise_backward_input_kernel_serial = njit(_depthwise_backward_input)
depthwise_backward_weight_kernel_serial = njit(_depthwise_backward_weight)
