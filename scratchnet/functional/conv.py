"""2-D convolution and its adjoint, the transposed convolution, through im2col + GEMM.

Legend: N batch, C_in / C_out channels, G groups, H, W input size, KH, KW kernel, OH, OW output
size, K = KH·KW taps, L = OH·OW output positions. Images are (N, C, H, W); conv weights are
(C_out, C_in/G, KH, KW) and transposed-conv weights (C_in, C_out/G, KH, KW), as in PyTorch.
This file is the reference the chapter reads: the vectorised unfold/fold and the GEMM formulation.
Each op makes one call into ``scratchnet/kernels/conv.py``, which picks the route (Numba loops,
the 1×1 and whole-window shortcuts, streaming a large layer in blocks of samples).
See chapters/05-convolution.md.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._checks import check_float, check_grad, check_ndim, check_same_dtype
from ..backend import get_array_module
from ..kernels import conv as _kernels

__all__ = ["conv2d", "conv2d_backward", "conv_transpose2d", "conv_transpose2d_backward",
           "conv_output_size", "im2col", "col2im", "unfold", "fold"]


def _pair(op, name, v):
    """An int or a pair of ints → (a, b), with a clear error otherwise."""
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    if isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(t, (int, np.integer)) for t in v):
        return int(v[0]), int(v[1])
    raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {v!r}")


def conv_output_size(size, kernel, stride, padding, dilation):
    """⌊(size + 2·padding − dilation·(kernel − 1) − 1) / stride⌋ + 1. See #eq-conv-out-size."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


class Geometry(NamedTuple):
    """Everything im2col/col2im need: kernel, stride, padding, dilation, and the output grid."""
    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    dh: int
    dw: int
    oh: int
    ow: int


# -- unfold / fold -------------------------------------------------------------------------------
# The columns come batch-first, (N, C, KH, KW, OH, OW): sample n's block is a (C·K, L) matrix, or
# channel-first, (C, KH, KW, N, OH, OW) (``im2col``): one (C·K, N·L) matrix for one GEMM over the
# whole batch. In both a group is a contiguous block of rows.
# start-im2col
def _unfold_ref(x, g: Geometry):
    """Vectorised unfold (also the CuPy path): one strided slice of the padded input per tap."""
    xp = get_array_module(x)
    N, C = x.shape[:2]
    xpad = xp.pad(x, ((0, 0), (0, 0), (g.ph, g.ph), (g.pw, g.pw)))  # (N, C, H+2ph, W+2pw)
    cols = xp.empty((N, C, g.kh, g.kw, g.oh, g.ow), dtype=x.dtype)  # (N, C, KH, KW, OH, OW)
    for i in range(g.kh):  # one strided copy per kernel tap (i, j)
        for j in range(g.kw):
            h0, w0 = i * g.dh, j * g.dw
            cols[:, :, i, j] = xpad[:, :, h0:h0 + g.sh * (g.oh - 1) + 1:g.sh, w0:w0 + g.sw * (g.ow - 1) + 1:g.sw]
    return cols


def _fold_ref(cols, g: Geometry, H, W):
    """Vectorised fold, the adjoint of ``_unfold_ref``: strided accumulation per tap, then crop."""
    xp = get_array_module(cols)
    N, C = cols.shape[:2]
    dxpad = xp.zeros((N, C, H + 2 * g.ph, W + 2 * g.pw), dtype=cols.dtype)  # (N, C, H+2ph, W+2pw)
    for i in range(g.kh):  # each tap adds its slab back where it was read from
        for j in range(g.kw):
            h0, w0 = i * g.dh, j * g.dw
            dxpad[:, :, h0:h0 + g.sh * (g.oh - 1) + 1:g.sh, w0:w0 + g.sw * (g.ow - 1) + 1:g.sw] += cols[:, :, i, j]
    return xp.ascontiguousarray(dxpad[:, :, g.ph:g.ph + H, g.pw:g.pw + W])
# end-im2col


def _cols_shape(N, C, g: Geometry, batch_first):
    """(N, C, KH, KW, OH, OW) batch-first, else (C, KH, KW, N, OH, OW)."""
    return (N, C, g.kh, g.kw, g.oh, g.ow) if batch_first else (C, g.kh, g.kw, N, g.oh, g.ow)


def _check_out(op, out, size):
    """``out`` must be a C-contiguous array of ``size`` numbers: it is written through a reshaped view."""
    if out.size != size or not out.flags.c_contiguous:
        raise ValueError(f"{op}: expected out to be a C-contiguous array of {size} numbers, got shape "
                         f"{tuple(out.shape)} (C-contiguous: {bool(out.flags.c_contiguous)})")


def unfold(x, g: Geometry, *, batch_first=True, out=None):
    """x (N, C, H, W) → cols (N, C, KH, KW, OH, OW): cols[n,c,i,j,p,q] = x_pad[n, c, p·sh + i·dh, q·sw + j·dw].

    ``batch_first=False`` returns the same numbers laid out (C, KH, KW, N, OH, OW) (``im2col``).
    ``out``: a C-contiguous array of that size to write the columns into (the result is a view of it).
    ``_unfold_ref`` is the reference; ``kernels/conv.py`` picks the route.
    """
    check_ndim("unfold", "x", x, 4)
    if out is not None:
        _check_out("unfold", out, int(np.prod(_cols_shape(*x.shape[:2], g, batch_first))))
    return _kernels.unfold(x, g, batch_first=batch_first, out=out, reference=_unfold_ref)


def fold(cols, g: Geometry, H, W, *, batch_first=True, out=None):
    """The adjoint of ``unfold``: cols (N, C, KH, KW, OH, OW) → dx (N, C, H, W), overlaps summed.

    ``batch_first=False`` reads cols laid out (C, KH, KW, N, OH, OW) (``col2im``). ``out``: a
    C-contiguous (N, C, H, W) array to write dx into (and return). ``_fold_ref`` is the reference.
    """
    check_ndim("fold", "cols", cols, 6)
    N, C = (cols.shape[0], cols.shape[1]) if batch_first else (cols.shape[3], cols.shape[0])
    check_grad("fold", "cols", cols, _cols_shape(N, C, g, batch_first))
    grid = (conv_output_size(H, g.kh, g.sh, g.ph, g.dh), conv_output_size(W, g.kw, g.sw, g.pw, g.dw))
    if grid != (g.oh, g.ow):
        raise ValueError(f"fold: an image of size H×W = {H}×{W} has a {grid[0]}×{grid[1]} output grid under "
                         f"this geometry, expected the columns' {g.oh}×{g.ow}")
    if out is not None:
        _check_out("fold", out, N * C * H * W)
        if tuple(out.shape) != (N, C, H, W):
            raise ValueError(f"fold: expected out of shape {(N, C, H, W)}, got {tuple(out.shape)}")
    return _kernels.fold(cols, g, H, W, batch_first=batch_first, out=out, reference=_fold_ref)


def im2col(x, g: Geometry):
    """x (N, C, H, W) → cols (C, KH, KW, N, OH, OW): as one (C·K, N·L) matrix, the whole batch is one GEMM."""
    return unfold(x, g, batch_first=False)


def col2im(cols, g: Geometry, H, W):
    """The adjoint of ``im2col``: cols (C, KH, KW, N, OH, OW) → dx (N, C, H, W), overlaps summed."""
    return fold(cols, g, H, W, batch_first=False)


# -- checks --------------------------------------------------------------------------------------
def _geometry(op, in_hw, k_hw, stride, padding, dilation, x_shape):
    """Validate the options and build the Geometry of a convolution reading an in_hw image."""
    sh, sw = _pair(op, "stride", stride)
    ph, pw = _pair(op, "padding", padding)
    dh, dw = _pair(op, "dilation", dilation)
    if min(sh, sw, dh, dw) < 1 or min(ph, pw) < 0:
        raise ValueError(f"{op}: need stride ≥ 1, dilation ≥ 1, padding ≥ 0; got stride={stride}, "
                         f"padding={padding}, dilation={dilation}")
    (H, W), (KH, KW) = in_hw, k_hw
    if dh * (KH - 1) + 1 > H + 2 * ph or dw * (KW - 1) + 1 > W + 2 * pw:
        raise ValueError(f"{op}: kernel {KH}×{KW} (dilation {dh}×{dw}, effective "
                         f"{dh * (KH - 1) + 1}×{dw * (KW - 1) + 1}) is larger than the padded input "
                         f"{H + 2 * ph}×{W + 2 * pw} (input shape {tuple(x_shape)}, padding {ph}×{pw})")
    return Geometry(KH, KW, sh, sw, ph, pw, dh, dw, conv_output_size(H, KH, sh, ph, dh),
                    conv_output_size(W, KW, sw, pw, dw))


def _check_conv(op, x, w, b, groups, w_in_axis, w_out_axis):
    """Ranks, dtypes and the channel/group bookkeeping shared by conv2d and conv_transpose2d."""
    check_float(op, "x", x)
    check_ndim(op, "x", x, 4)
    check_ndim(op, "w", w, 4)
    check_same_dtype(op, x=x, w=w, b=b)
    if not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    C_in = x.shape[1]
    if C_in % groups:
        raise ValueError(f"{op}: input channels {C_in} are not divisible by groups={groups}")
    if w_in_axis == 1 and w.shape[1] * groups != C_in:
        raise ValueError(f"{op}: w of shape {tuple(w.shape)} expects {w.shape[1] * groups} input channels "
                         f"(C_in/groups = {w.shape[1]}, groups={groups}), x has {C_in} (shape {tuple(x.shape)})")
    if w_in_axis == 0 and w.shape[0] != C_in:
        raise ValueError(f"{op}: w of shape {tuple(w.shape)} expects {w.shape[0]} input channels "
                         f"(layout (C_in, C_out/groups, KH, KW)), x has {C_in} (shape {tuple(x.shape)})")
    if w_out_axis == 0 and w.shape[0] % groups:
        raise ValueError(f"{op}: output channels {w.shape[0]} are not divisible by groups={groups}")
    C_out = w.shape[0] if w_out_axis == 0 else w.shape[1] * groups
    if b is not None and tuple(b.shape) != (C_out,):
        raise ValueError(f"{op}: expected b of shape ({C_out},), got {tuple(b.shape)}")
    return C_out


# -- the GEMMs shared by both directions -----------------------------------------------------------
# A conv is one GEMM per group over the whole batch, X as (C_in/G·K, N·L): one large product that
# BLAS spreads over every core.
def _wg(w, G):
    """Weights as (G, rows, C/G·K): each group's filters are the rows of one matrix."""
    return w.reshape(G, w.shape[0] // G, -1)


def _channels_first(a, G):
    """(N, C, H, W) → (G, C/G, N·H·W): the layout of a whole-batch GEMM's factor (one copy)."""
    N, C, H, W = a.shape
    return a.transpose(1, 0, 2, 3).reshape(G, C // G, N * H * W)


def _batch_first(a, C, N, H, W):
    """(G, C/G, N·H·W) → a contiguous (N, C, H, W)."""
    xp = get_array_module(a)
    return xp.ascontiguousarray(a.reshape(C, N, H, W).transpose(1, 0, 2, 3))


def _outer_sum(a, b):
    """Σ over samples and positions of a bᵀ: a (G, P, N·L), b (G, Q, N·L) → (G, P, Q) by one tall GEMM
    (b aᵀ)ᵀ, whose long inner dimension N·L BLAS streams well."""
    return (b @ a.swapaxes(-1, -2)).swapaxes(-1, -2)


class ConvCache(NamedTuple):
    """What conv2d_backward needs. cols: the unfolded input, None when streamed; x: the input itself
    when streamed (its columns are recomputed), else None."""
    cols: object
    x: object
    w: object
    has_b: bool
    g: Geometry
    x_shape: tuple


# start-conv2d
def conv2d(x, w, b=None, *, stride=1, padding=0, dilation=1, groups=1):
    """Cross-correlation y[n,o] = b[o] + Σ_c Σ_ij w[o,c,i,j] x_pad[n, c, p·sh + i·dh, q·sw + j·dw].

    x (N, C_in, H, W), w (C_out, C_in/G, KH, KW), b (C_out,) or None → y (N, C_out, OH, OW).
    A GEMM per group on the unfolded input X = unfold(x) (C_in/G·K, N·L), W (C_out/G, C_in/G·K):
    Y = W X;  backward dW = dY Xᵀ,  dX = Wᵀ dY then dx = fold(dX),  db = Σ_{n,p,q} dy.
    See chapters/05-convolution.md#eq-conv-backward.
    """
    _check_conv("conv2d", x, w, b, groups, 1, 0)
    g = _geometry("conv2d", x.shape[2:], w.shape[2:], stride, padding, dilation, x.shape)
    # the whole batch's GEMMs below, or, for a large layer, streamed in blocks of samples (cols None)
    y, cols = _kernels.conv2d(x, w, b, g, groups, reference=_conv2d_gemm)
    # cols is K times the input: cached (not recomputed) when it is small, because re-unfolding costs
    # a full copy pass; a streamed layer caches x instead and unfolds each sample again
    return y, ConvCache(cols, x if cols is None else None, w, b is not None, g, x.shape)


def conv2d_backward(dy, cache):
    """dx, dw, db of ``conv2d`` (db is None without a bias)."""
    cols, x, w, has_b, g, x_shape = cache
    check_grad("conv2d_backward", "dy", dy, (x_shape[0], w.shape[0], g.oh, g.ow), w.dtype)
    db = dy.sum(axis=(0, 2, 3)) if has_b else None  # (C_out,)
    dx, dw = _kernels.conv2d_backward(dy, cache, reference=_conv2d_gemm_backward)  # by the forward's route
    return dx, dw, db


def _conv2d_gemm(x, w, b, g: Geometry, groups):
    """y (N, C_out, OH, OW) and the columns X (G, C_in/G·K, N·L): one GEMM per group for the whole batch."""
    N, C_in = x.shape[:2]
    C_out, L = w.shape[0], g.oh * g.ow
    cols = im2col(x, g).reshape(groups, C_in // groups * g.kh * g.kw, N * L)  # (G, C_in/G·K, N·L)
    y = _wg(w, groups) @ cols  # Y = W X: (G, C_out/G, N·L)
    if b is not None:
        y += b.reshape(groups, C_out // groups, 1)
    return _batch_first(y, C_out, N, g.oh, g.ow), cols  # (N, C_out, OH, OW)


def _conv2d_gemm_backward(dy, cols, w, g: Geometry, x_shape):
    """dx, dw of ``_conv2d_gemm``: dW = dY Xᵀ, dx = col2im(Wᵀ dY)."""
    G = cols.shape[0]
    N, C_in, H, W = x_shape
    dyg = _channels_first(dy, G)  # (G, C_out/G, N·L), laid out as the GEMM's factor
    dw = _outer_sum(dyg, cols).reshape(w.shape)  # dW = dY Xᵀ
    dcols = _wg(w, G).swapaxes(-1, -2) @ dyg  # Wᵀ dY: (G, C_in/G·K, N·L), laid out as cols
    dx = col2im(dcols.reshape(C_in, g.kh, g.kw, N, g.oh, g.ow), g, H, W)  # (N, C_in, H, W)
    return dx, dw
# end-conv2d


def _transpose_out_size(op, size, k, s, p, op_, d):
    """(size − 1)·s − 2p + d·(k − 1) + output_padding + 1, checked to be positive."""
    out = (size - 1) * s - 2 * p + d * (k - 1) + op_ + 1
    if out < 1:
        raise ValueError(f"{op}: output size {out} < 1 for input size {size}, kernel {k}, stride {s}, "
                         f"padding {p}, dilation {d}, output_padding {op_}")
    return out


class ConvTransposeCache(NamedTuple):
    """What conv_transpose2d_backward needs: the input in GEMM layout, the weight, the shapes."""
    xg: object
    w: object
    has_b: bool
    g: Geometry
    x_shape: tuple
    y_shape: tuple


# start-conv-transpose2d
def conv_transpose2d(x, w, b=None, *, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """The adjoint of conv2d: y = fold(Wᵀ x) — what conv2d_backward does to dy to get dx.

    x (N, C_in, H, W), w (C_in, C_out/G, KH, KW), b (C_out,) or None → y (N, C_out, OH, OW),
    OH = (H − 1)·sh − 2ph + dh·(KH − 1) + output_padding + 1. Backward is the forward conv:
    dx = W·unfold(dy),  dw = Σ_n x·unfold(dy)ᵀ,  db = Σ dy.  See chapters/05-convolution.md#transposed.
    """
    C_out = _check_conv("conv_transpose2d", x, w, b, groups, 0, 1)
    N, _, H, W = x.shape
    oph, opw = _pair("conv_transpose2d", "output_padding", output_padding)
    sh, sw = _pair("conv_transpose2d", "stride", stride)
    dh, dw = _pair("conv_transpose2d", "dilation", dilation)
    if oph >= max(sh, dh) or opw >= max(sw, dw) or min(oph, opw) < 0:
        raise ValueError(f"conv_transpose2d: output_padding {output_padding} must be ≥ 0 and smaller than "
                         f"stride {stride} or dilation {dilation}")
    ph, pw = _pair("conv_transpose2d", "padding", padding)
    KH, KW = w.shape[2:]
    OH = _transpose_out_size("conv_transpose2d", H, KH, sh, ph, oph, dh)
    OW = _transpose_out_size("conv_transpose2d", W, KW, sw, pw, opw, dw)
    # the conv2d that this op is the adjoint of reads an (OH, OW) image and returns (H, W)
    g = _geometry("conv_transpose2d", (OH, OW), (KH, KW), stride, padding, dilation, (N, C_out, OH, OW))
    xg = _channels_first(x, groups)  # (G, C_in/G, N·HW)
    ycols = _wg(w, groups).swapaxes(-1, -2) @ xg  # Wᵀ X: (G, C_out/G·K, N·HW), one GEMM per group
    y = col2im(ycols.reshape(C_out, KH, KW, N, H, W), g, OH, OW)  # (N, C_out, OH, OW)
    if b is not None:
        y += b.reshape(1, C_out, 1, 1)
    return y, ConvTransposeCache(xg, w, b is not None, g, x.shape, y.shape)


def conv_transpose2d_backward(dy, cache):
    """dx, dw, db of ``conv_transpose2d`` (db is None without a bias)."""
    xg, w, has_b, g, x_shape, y_shape = cache
    check_grad("conv_transpose2d_backward", "dy", dy, y_shape, w.dtype)
    G = xg.shape[0]
    N, C_in, H, W = x_shape
    db = dy.sum(axis=(0, 2, 3)) if has_b else None  # (C_out,)
    dycols = im2col(dy, g).reshape(G, w[0].size, N * H * W)  # (G, C_out/G·K, N·HW)
    dx = _batch_first(_wg(w, G) @ dycols, C_in, N, H, W)  # W·unfold(dy): a forward conv of dy
    dw = _outer_sum(xg, dycols).reshape(w.shape)  # X unfold(dy)ᵀ: (C_in, C_out/G, KH, KW)
    return dx, dw, db
# end-conv-transpose2d
