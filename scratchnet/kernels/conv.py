"""The fast routes of the convolution. ``scratchnet/functional/conv.py`` holds the vectorised
reference (unfold/fold, the whole-batch GEMMs) and passes it here as ``reference=``.

Legend: N batch, C channels, G groups, m channel multiplier, H, W input size, KH, KW kernel,
K = KH·KW, OH, OW output size, L = OH·OW. Every route choice of the family is made here, and each
route computes the same numbers as the reference (tests/functional/test_conv.py and
test_depthwise.py compare every pair):

- unfold / fold (im2col / col2im): a 1×1, stride-1 window needs no copy (the columns are x), nor
  does a window covering the whole input once (LeNet's C5: the columns are x reshaped); otherwise
  the Numba kernels of ``conv_loops.py`` when ``jit_route`` allows (JIT on, NumPy, float32/float64),
  the parallel ones from UNFOLD_PARALLEL_MIN_SIZE column entries; else the reference (CuPy,
  float16, ``SCRATCHNET_JIT=0``).
- conv2d: on that same Numba route a depthwise layer (groups = C_in > 1, C_out = m·C_in: G GEMMs of
  one row each, too small for BLAS) runs the direct loops of ``conv_loops.depthwise_*_kernel``; a 3×3
  stride-1 layer with enough channels takes Winograd's F(4×4, 3×3) (``winograd.py``: 36 GEMMs on
  transformed tiles, 2.25× fewer multiply-adds, its tiles cached instead of columns or x);
  a layer whose columns are large (STREAM_MIN_SAMPLE_COLS numbers per sample, or STREAM_MIN_BATCH_BYTES
  for the whole batch), or a stride-1 layer of at most WIDE_MAX_FILTERS filters per group, is streamed
  in blocks of samples, caching x instead of the columns — a stride-1 layer's blocks as wide columns
  (``conv_loops.unfold_wide_kernel``: one contiguous copy per tap, the outputs past OW in each row
  computed and dropped); every other layer runs the reference's whole-batch GEMMs.

The timings behind the thresholds are in ``benchmarks/bench_conv.py``.
"""
from __future__ import annotations

import numpy as np

from .._jit import jit_route
from ..backend import get_array_module
from . import conv_loops, winograd

__all__ = ["unfold", "fold", "conv2d", "conv2d_backward", "UNFOLD_PARALLEL_MIN_SIZE", "STREAM_MIN_SAMPLE_COLS",
           "STREAM_MIN_BATCH_BYTES", "STREAM_BLOCK_BYTES", "WIDE_MAX_FILTERS", "DEPTHWISE_PARALLEL_MIN_MACS"]

# unfold/fold are copies between BLAS calls, and a parallel region leaves its workers spinning while
# the next GEMM wants the cores: only inputs far bigger than a ResNet layer's use the parallel kernels
UNFOLD_PARALLEL_MIN_SIZE = 1 << 25
# one sample's columns (C_in·K rows × L) from which conv2d streams: a 64-channel 3×3 layer from 16×16
STREAM_MIN_SAMPLE_COLS = 1 << 17
# bytes of the whole batch's columns above which conv2d streams even a small layer: a whole-batch
# unfold cached from the forward to the backward holds K copies of the layer's input (a ResNet-20
# step at batch 128 kept ~600 MB of them; benchmarks/memory.py), and on one thread the per-sample
# GEMMs of such a layer run faster than the whole batch's (benchmarks/bench_conv.py)
STREAM_MIN_BATCH_BYTES = 1 << 22
# bytes of one block of samples' columns on the streamed route: a small layer streams several samples
# per unfold, GEMM call and fold (LeNet's C1: 13 samples of 78 KB), which keeps the block in the
# core's L2 cache and runs the Python loop once per block instead of once per sample; a layer whose
# single sample passes this streams one sample at a time
STREAM_BLOCK_BYTES = 1 << 20
# filters per group up to which a stride-1 layer streams wide columns at any size: its GEMM does only
# 2·C_out/G flops per unfolded number, so the copies weigh more than the whole batch's two-thread GEMM
# gains (LeNet's C3, 16 filters at batch 64: 2.49 → 1.77 ms; 32 filters of 3×3 at 16×16: 19.7 → 22.8 ms)
WIDE_MAX_FILTERS = 16
# multiply-adds (N·C_out·L·K) from which the depthwise loops run in parallel: a thread team costs more
# than a small layer's whole work (gradient checks, tiny batches)
DEPTHWISE_PARALLEL_MIN_MACS = 1 << 20


def _is_pointwise(g):
    """A 1×1 window with stride 1 and no padding: the columns are the input itself."""
    return g.kh == g.kw == g.sh == g.sw == 1 and g.ph == g.pw == 0


def _is_dense(g, H, W):
    """The window covers the whole unpadded input once: the conv is a fully connected layer."""
    return g.oh == g.ow == 1 and g.ph == g.pw == 0 and (g.kh, g.kw) == (H, W) and g.dh == g.dw == 1


def _rows(N, C, g, batch_first):
    """The kernels' 3-D view of the columns: (N, C·K, L) batch-first, else (C·K, N, L)."""
    CK, L = C * g.kh * g.kw, g.oh * g.ow
    return (N, CK, L) if batch_first else (CK, N, L)


# -- unfold / fold ---------------------------------------------------------------------------------
def unfold(x, g, *, batch_first=True, out=None, reference):
    """The columns of ``functional.conv.unfold``: a shortcut, the Numba kernel, or ``reference(x, g)``
    (batch-first; transposed here for the channel-first layout)."""
    cols = _unfold_fast(x, g, batch_first, out, jit_route(x))
    if cols is not None:
        return cols
    xp = get_array_module(x)
    cols = reference(x, g)  # (N, C, KH, KW, OH, OW)
    if not batch_first:
        cols = xp.ascontiguousarray(cols.transpose(1, 2, 3, 0, 4, 5))  # (C, KH, KW, N, OH, OW)
    if out is None:
        return cols
    out = out.reshape(cols.shape)  # a view: out is C-contiguous
    out[...] = cols
    return out


def _unfold_fast(x, g, batch_first, out, jit):
    """The columns by a shortcut or (``jit``) the Numba kernel, into ``out`` when given; None when
    only the reference applies."""
    xp = get_array_module(x)
    N, C, H, W = x.shape
    shape = (N, C, g.kh, g.kw, g.oh, g.ow) if batch_first else (C, g.kh, g.kw, N, g.oh, g.ow)
    if out is not None:
        out = out.reshape(shape)  # a view: out is C-contiguous
    if _is_pointwise(g) and batch_first and out is None:  # 1×1, stride 1: the columns are the input itself
        return x.reshape(shape)
    if _is_dense(g, H, W):  # one window per sample (LeNet's C5): the columns are x as (N, C·K)
        cols = x.reshape(N, C, g.kh, g.kw, 1, 1)  # (N, C, KH, KW, 1, 1) view
        if not batch_first:
            cols = xp.ascontiguousarray(cols.transpose(1, 2, 3, 0, 4, 5))  # (C, KH, KW, N, 1, 1)
        if out is None:
            return cols
        out[...] = cols
        return out
    if not jit:
        return None
    cols = np.empty(shape, dtype=x.dtype) if out is None else out  # written in full by the kernel
    kernel = conv_loops.unfold_kernel if cols.size >= UNFOLD_PARALLEL_MIN_SIZE else conv_loops.unfold_kernel_serial
    kernel(np.ascontiguousarray(x), cols.reshape(_rows(N, C, g, batch_first)), batch_first, g.kh, g.kw, g.ow,
           g.sh, g.sw, g.ph, g.pw, g.dh, g.dw)
    return cols


def fold(cols, g, H, W, *, batch_first=True, out=None, reference):
    """dx of ``functional.conv.fold``: a shortcut, the Numba kernel, or ``reference(cols, g, H, W)``
    (batch-first cols; transposed here from the channel-first layout)."""
    dx = _fold_fast(cols, g, H, W, batch_first, out, jit_route(cols))
    if dx is not None:
        return dx
    dx = reference(cols if batch_first else cols.transpose(3, 0, 1, 2, 4, 5), g, H, W)  # (N, C, H, W)
    if out is None:
        return dx
    out[...] = dx
    return out


def _fold_fast(cols, g, H, W, batch_first, out, jit):
    """dx by a shortcut or (``jit``) the Numba kernel, into ``out`` when given; None when only the
    reference applies."""
    xp = get_array_module(cols)
    N, C = (cols.shape[0], cols.shape[1]) if batch_first else (cols.shape[3], cols.shape[0])
    if _is_pointwise(g) and batch_first:
        dx = cols.reshape(N, C, H, W)
    elif _is_dense(g, H, W):  # each pixel is read by exactly one tap of one window
        dx = xp.ascontiguousarray(cols if batch_first else cols.transpose(3, 0, 1, 2, 4, 5)).reshape(N, C, H, W)
    elif jit and not _is_pointwise(g):
        dx = np.empty((N, C, H, W), dtype=cols.dtype) if out is None else out  # written in full by the kernel
        kernel = conv_loops.fold_kernel if cols.size >= UNFOLD_PARALLEL_MIN_SIZE else conv_loops.fold_kernel_serial
        kernel(np.ascontiguousarray(cols).reshape(_rows(N, C, g, batch_first)), dx, batch_first, g.kh, g.kw, g.ow,
               g.sh, g.sw, g.ph, g.pw, g.dh, g.dw)
        return dx
    else:
        return None
    if out is None:
        return dx
    out[...] = dx
    return out


# -- conv2d: the whole batch, or streamed ------------------------------------------------------------
def _streamed(x, w, g, groups):
    """True when conv2d streams the batch in blocks of samples: ≥ STREAM_MIN_SAMPLE_COLS column entries per
    sample, more than STREAM_MIN_BATCH_BYTES of columns for the whole batch, or a stride-1 layer of at
    most WIDE_MAX_FILTERS filters per group (wide columns, ``_is_wide``)."""
    N, rows_in, L = x.shape[0], x.shape[1] * g.kh * g.kw, g.oh * g.ow  # rows_in = C_in·K
    if rows_in * L >= STREAM_MIN_SAMPLE_COLS or N * rows_in * L * x.dtype.itemsize > STREAM_MIN_BATCH_BYTES:
        return True
    return _is_wide(g) and w.shape[0] // groups <= WIDE_MAX_FILTERS


def _is_depthwise(x, w):
    """groups = C_in > 1 (w has one input channel per group): each output channel reads one input
    channel. A single-channel input (LeNet's C1) keeps the GEMM route."""
    return w.shape[1] == 1 and x.shape[1] > 1


def conv2d(x, w, b, g, groups, *, reference):
    """y and the columns to cache of ``functional.conv.conv2d``: the direct depthwise loops or streamed
    (the columns then None: the backward reads x again) or ``reference(x, w, b, g, groups)``, the
    whole batch's GEMMs."""
    if jit_route(x, w, b) and _is_depthwise(x, w):
        return _depthwise(x, w, b, g), None
    if jit_route(x, w, b) and winograd.is_winograd(x, w, g, groups):
        return winograd.conv2d_winograd(x, w, b, g)  # the tiles, or None (x kept)
    if jit_route(x, w) and _streamed(x, w, g, groups):
        return _conv2d_streamed(x, w, b, g, groups), None
    return reference(x, w, b, g, groups)


def conv2d_backward(dy, cache, *, reference):
    """dx, dw of ``functional.conv.conv2d_backward``, by the route its forward took:
    depthwise, streamed, or ``reference(dy, cols, w, g, x_shape)``."""
    if cache.cols is None and _is_depthwise(cache.x, cache.w):
        return _depthwise_backward(dy, cache.x, cache.w, cache.g)
    if isinstance(cache.cols, winograd.WinogradTiles):
        return winograd.conv2d_winograd_backward(dy, None, cache.w, cache.g, tiles=cache.cols)
    if cache.cols is None and winograd.is_winograd(cache.x, cache.w, cache.g, cache.x.shape[1] // cache.w.shape[1]):
        return winograd.conv2d_winograd_backward(dy, cache.x, cache.w, cache.g)
    if cache.cols is None:
        return _conv2d_backward_streamed(dy, cache.x, cache.w, cache.g)
    return reference(dy, cache.cols, cache.w, cache.g, cache.x_shape)


# start-conv-streamed
# A layer whose columns are large streams them: a block of samples is unfolded into one reused
# buffer (at most STREAM_BLOCK_BYTES, or one sample: small enough to stay in cache), multiplied and
# dropped, and the backward unfolds it again instead of caching N·C_in·K·L numbers. A whole-batch
# unfold would write K times the input to main memory, and its GEMMs would read it back from there.
# A 1×1 stride-1 layer's columns are the samples themselves: nothing is unfolded or folded.
def _block_size(N, rows_in, L, itemsize):
    """Samples per block: as many as fit in STREAM_BLOCK_BYTES of columns, at least 1, at most N."""
    return max(1, min(N, STREAM_BLOCK_BYTES // (rows_in * L * itemsize)))


def _block_cols(x, n0, n1, g, buf):
    """Samples n0…n1−1's columns (S, G, C_in/G·K, L): x itself for a 1×1 stride-1 window, else unfolded
    into the buffer's first S = n1 − n0 slots."""
    S = n1 - n0
    if _is_pointwise(g):
        return x[n0:n1].reshape((S,) + buf.shape[1:])
    return _unfold_fast(x[n0:n1], g, True, buf[:S], jit=True).reshape((S,) + buf.shape[1:])


def _is_wide(g):
    """Stride 1, a window to unfold, and at most one dropped output per two kept in a wide row
    (dw·(KW − 1) ≤ OW/2; LeNet's C5, one output per row, is not): the layer streams wide columns
    (``conv_loops.unfold_wide_kernel``: one contiguous copy per tap)."""
    return g.sh == g.sw == 1 and not _is_pointwise(g) and 2 * g.dw * (g.kw - 1) <= g.ow


def _conv2d_streamed(x, w, b, g, G):
    """y of conv2d a block of samples at a time: Y[n] = W X[n], the block's X unfolded into a reused buffer."""
    N = x.shape[0]
    C_out, L = w.shape[0], g.oh * g.ow
    wg = w.reshape(G, C_out // G, -1)  # (G, C_out/G, C_in/G·K): each group's filters as rows
    if _is_wide(g):
        return _conv2d_wide(x, wg, b, g)
    B = _block_size(N, x.shape[1] * g.kh * g.kw, L, x.dtype.itemsize)  # C_in·K rows of columns per sample
    y = np.empty((N, G, C_out // G, L), dtype=x.dtype)  # (N, G, C_out/G, L)
    buf = np.empty((B, G, wg.shape[2], L), dtype=x.dtype)  # one block's columns (B, G, C_in/G·K, L)
    for n0 in range(0, N, B):  # unfold a block into the buffer, one GEMM per sample and group into y
        n1 = min(n0 + B, N)
        np.matmul(wg, _block_cols(x, n0, n1, g, buf), out=y[n0:n1])
    if b is not None:
        y += b.reshape(G, C_out // G, 1)
    return y.reshape(N, C_out, g.oh, g.ow)


def _conv2d_backward_streamed(dy, x, w, g):
    """dx, dw of a streamed conv2d: the same dW = Σ_n dY[n] X[n]ᵀ and dx[n] = fold(Wᵀ dY[n]), a block of
    samples at a time, the block's X unfolded again into a reused buffer."""
    N, C_in, H, W = x.shape
    C_out, L = w.shape[0], g.oh * g.ow
    G = C_in // w.shape[1]
    wg = w.reshape(G, C_out // G, -1)  # (G, C_out/G, C_in/G·K)
    if _is_wide(g):
        return _conv2d_backward_wide(dy, x, wg, g)
    B = _block_size(N, C_in * g.kh * g.kw, L, x.dtype.itemsize)  # the forward's blocks
    dyg = dy.reshape(N, G, C_out // G, L)  # (N, G, C_out/G, L): each sample's groups as GEMM factors
    dx = np.empty(x.shape, dtype=x.dtype)  # (N, C_in, H, W), C-contiguous: dx[n0:n1] is a fold's out
    dwt = np.zeros(wg.swapaxes(-1, -2).shape, dtype=w.dtype)  # (G, C_in/G·K, C_out/G): dWᵀ, summed
    part = np.empty((B,) + dwt.shape, dtype=w.dtype)  # each sample's dWᵀ in the block
    buf = np.empty((B, G, wg.shape[2], L), dtype=x.dtype)  # one block's columns, then its dX columns
    for n0 in range(0, N, B):  # re-unfold the block, add its dW, fold its dX
        n1 = min(n0 + B, N)
        S = n1 - n0
        np.matmul(_block_cols(x, n0, n1, g, buf), dyg[n0:n1].swapaxes(-1, -2), out=part[:S])  # X[n] dY[n]ᵀ
        dwt += part[:S].sum(axis=0)  # (the transposed product: BLAS's faster orientation for these shapes)
        if _is_pointwise(g):  # Wᵀ dY[n] is dx[n] itself
            np.matmul(wg.swapaxes(-1, -2), dyg[n0:n1], out=dx[n0:n1].reshape((S,) + buf.shape[1:]))
            continue
        np.matmul(wg.swapaxes(-1, -2), dyg[n0:n1], out=buf[:S])  # Wᵀ dY[n], over the spent columns
        _fold_fast(buf[:S].reshape(S, C_in, g.kh, g.kw, g.oh, g.ow), g, H, W, True, dx[n0:n1], jit=True)
    return dx, np.ascontiguousarray(dwt.swapaxes(-1, -2)).reshape(w.shape)


# A stride-1 layer streams wide columns: rows of Wp = W + 2pw outputs, the last Wp − OW of each row
# computed and dropped, so that every tap's block is one contiguous copy of the padded plane (see
# ``conv_loops.unfold_wide_kernel``). The backward writes dy into the same wide rows, zeros in the
# dropped columns: they then add nothing to dW, and fold back nothing.
def _conv2d_wide(x, wg, b, g):
    """y of a streamed stride-1 conv2d: per block, Y[n] = W X[n] on wide columns, then each row's OW outputs."""
    N, C_in, H, W = x.shape
    G, Cg, R = wg.shape  # Cg = C_out/G filters of R = C_in/G·K taps per group
    Wp = W + 2 * g.pw
    Lw = g.oh * Wp  # wide outputs per channel
    x = np.ascontiguousarray(x)
    y = np.empty((N, G * Cg, g.oh, g.ow), dtype=x.dtype)  # (N, C_out, OH, OW)
    B = _block_size(N, C_in * g.kh * g.kw, Lw, x.dtype.itemsize)
    buf = np.empty((B, G, R, Lw), dtype=x.dtype)  # one block's wide columns
    yw = np.empty((B, G, Cg, Lw), dtype=x.dtype)  # one block's wide outputs
    pad = np.empty((H + 2 * g.ph) * Wp, dtype=x.dtype)  # one padded plane (scratch)
    for n0 in range(0, N, B):  # unfold a block wide, one GEMM per sample and group, keep OW of each row
        n1 = min(n0 + B, N)
        S = n1 - n0
        conv_loops.unfold_wide_kernel(x[n0:n1], buf[:S].reshape(S, G * R, Lw), True, g.kh, g.kw, Wp, g.ph, g.pw,
                                      g.dh, g.dw, pad)
        np.matmul(wg, buf[:S], out=yw[:S])
        y[n0:n1] = yw[:S].reshape(S, G * Cg, g.oh, Wp)[..., :g.ow]
    if b is not None:
        y += b.reshape(G * Cg, 1, 1)
    return y


def _conv2d_backward_wide(dy, x, wg, g):
    """dx, dw of ``_conv2d_wide``: per block, the wide columns again, dWᵀ += X dYᵀ, dX = Wᵀ dY folded."""
    N, C_in, H, W = x.shape
    G, Cg, R = wg.shape
    Wp = W + 2 * g.pw
    Lw = g.oh * Wp
    x = np.ascontiguousarray(x)
    dx = np.empty(x.shape, dtype=x.dtype)  # (N, C_in, H, W), C-contiguous: dx[n0:n1] is a fold's out
    dwt = np.zeros((G, R, Cg), dtype=wg.dtype)  # dWᵀ, summed over the samples
    B = _block_size(N, C_in * g.kh * g.kw, Lw, x.dtype.itemsize)  # the forward's blocks
    buf = np.empty((B, G, R, Lw), dtype=x.dtype)  # one block's wide columns, then its dX columns
    part = np.empty((B, G, R, Cg), dtype=wg.dtype)  # each sample's dWᵀ in the block
    dyw = np.zeros((B, G * Cg, g.oh, Wp), dtype=x.dtype)  # one block's dy in wide rows: the dropped columns stay 0
    pad = np.empty((H + 2 * g.ph) * Wp, dtype=x.dtype)  # one padded plane (scratch)
    for n0 in range(0, N, B):  # re-unfold the block, add its dW, fold its dX
        n1 = min(n0 + B, N)
        S = n1 - n0
        conv_loops.unfold_wide_kernel(x[n0:n1], buf[:S].reshape(S, G * R, Lw), True, g.kh, g.kw, Wp, g.ph, g.pw,
                                      g.dh, g.dw, pad)
        dyw[:S, :, :, :g.ow] = dy[n0:n1]
        dys = dyw[:S].reshape(S, G, Cg, Lw)
        np.matmul(buf[:S], dys.swapaxes(-1, -2), out=part[:S])  # X[n] dY[n]ᵀ
        dwt += part[:S].sum(axis=0)
        np.matmul(wg.swapaxes(-1, -2), dys, out=buf[:S])  # Wᵀ dY[n], over the spent columns
        conv_loops.fold_wide_kernel(buf[:S].reshape(S, G * R, Lw), dx[n0:n1], True, g.kh, g.kw, Wp, g.ph, g.pw,
                                    g.dh, g.dw, pad)
    return dx, np.ascontiguousarray(dwt.swapaxes(-1, -2)).reshape(G * Cg, C_in // G, g.kh, g.kw)
# end-conv-streamed


# start-conv-depthwise
# groups = C_in: output channel o = c·m + k reads input channel c alone through its KH×KW taps. The
# reference's GEMMs shrink to G = C_in products of a (1, K) row and a (K, N·L) matrix, and its unfold
# still writes K copies of the input; the direct loops read each plane in place. The backward keeps
# x (cached by ``functional.conv.conv2d`` when the columns are None) and reads it again for dw.
def _depthwise_parallel(y_shape, w):
    """True when the layer is large enough for the parallel loops (DEPTHWISE_PARALLEL_MIN_MACS)."""
    return int(np.prod(y_shape)) * w.shape[2] * w.shape[3] >= DEPTHWISE_PARALLEL_MIN_MACS


def _depthwise(x, w, b, g):
    """y of a depthwise conv2d by the direct loops: (N, C_in, H, W) → (N, m·C_in, OH, OW)."""
    N, C_in = x.shape[:2]
    C_out = w.shape[0]
    y = np.empty((N, C_out, g.oh, g.ow), dtype=x.dtype)  # (N, C_out, OH, OW), written in full
    bias = np.zeros(C_out, dtype=x.dtype) if b is None else np.ascontiguousarray(b)  # (C_out,)
    kernel = (conv_loops.depthwise_forward_kernel if _depthwise_parallel(y.shape, w)
              else conv_loops.depthwise_forward_kernel_serial)
    kernel(np.ascontiguousarray(x), np.ascontiguousarray(w), bias, y, C_out // C_in, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw)
    return y


def _depthwise_backward(dy, x, w, g):
    """dx, dw of ``_depthwise``: dx scattered per (sample, input channel), dw reduced per output channel."""
    dy, x, w = np.ascontiguousarray(dy), np.ascontiguousarray(x), np.ascontiguousarray(w)
    m = w.shape[0] // x.shape[1]
    dx = np.empty(x.shape, dtype=x.dtype)  # (N, C_in, H, W), written in full
    dw = np.empty(w.shape, dtype=w.dtype)  # (C_out, 1, KH, KW), written in full
    if _depthwise_parallel(dy.shape, w):
        dx_kernel, dw_kernel = conv_loops.depthwise_backward_input_kernel, conv_loops.depthwise_backward_weight_kernel
    else:
        dx_kernel = conv_loops.depthwise_backward_input_kernel_serial
        dw_kernel = conv_loops.depthwise_backward_weight_kernel_serial
    dx_kernel(dy, w, dx, m, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw)
    dw_kernel(dy, x, dw, m, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw)
    return dx, dw
# end-conv-depthwise
