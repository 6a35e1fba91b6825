"""2-D convolution and its adjoint, the transposed convolution, through im2col + GEMM.

Legend: N batch, C_in / C_out channels, G groups, H, W input size, KH, KW kernel, OH, OW output
size, K = KH·KW taps, L = OH·OW output positions. Images are (N, C, H, W); conv weights are
(C_out, C_in/G, KH, KW) and transposed-conv weights (C_in, C_out/G, KH, KW), as in PyTorch.
See chapters/05-convolution.md.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._checks import check_float, check_ndim, check_same_dtype
from .._jit import use_jit
from ..backend import get_array_module, require_numpy

__all__ = ["conv2d", "conv2d_backward", "conv_transpose2d", "conv_transpose2d_backward",
           "conv_output_size", "im2col", "col2im"]


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
# The columns are laid out (C, KH, KW, N, OH, OW): as a (C·K, N·L) matrix the whole batch is one
# GEMM with the (C_out, C·K) weights, and a group is a contiguous block of rows.
# start-im2col
def _im2col_ref(x, g: Geometry):
    """Vectorised im2col (also the CuPy path): one strided slice of the padded input per tap."""
    xp = get_array_module(x)
    N, C = x.shape[:2]
    xpad = xp.pad(x, ((0, 0), (0, 0), (g.ph, g.ph), (g.pw, g.pw)))  # (N, C, H+2ph, W+2pw)
    xpad_t = xpad.transpose(1, 0, 2, 3)  # (C, N, H+2ph, W+2pw) view
    cols = xp.empty((C, g.kh, g.kw, N, g.oh, g.ow), dtype=x.dtype)  # (C, KH, KW, N, OH, OW)
    for i in range(g.kh):  # one strided copy per kernel tap (i, j)
        for j in range(g.kw):
            h0, w0 = i * g.dh, j * g.dw
            cols[:, i, j] = xpad_t[:, :, h0:h0 + g.sh * (g.oh - 1) + 1:g.sh, w0:w0 + g.sw * (g.ow - 1) + 1:g.sw]
    return cols


def _col2im_ref(cols, g: Geometry, H, W):
    """Vectorised col2im, the adjoint of ``_im2col_ref``: strided accumulation per tap, then crop."""
    xp = get_array_module(cols)
    C, N = cols.shape[0], cols.shape[3]
    dxpad = xp.zeros((N, C, H + 2 * g.ph, W + 2 * g.pw), dtype=cols.dtype)  # (N, C, H+2ph, W+2pw)
    dxpad_t = dxpad.transpose(1, 0, 2, 3)  # (C, N, ...) view: writes land in dxpad
    for i in range(g.kh):  # each tap adds its slab back where it was read from
        for j in range(g.kw):
            h0, w0 = i * g.dh, j * g.dw
            dxpad_t[:, :, h0:h0 + g.sh * (g.oh - 1) + 1:g.sh, w0:w0 + g.sw * (g.ow - 1) + 1:g.sw] += cols[:, i, j]
    return xp.ascontiguousarray(dxpad[:, :, g.ph:g.ph + H, g.pw:g.pw + W])
# end-im2col


# below this many elements the single-threaded kernels win: thread start-up costs more than the loop
# (measured on 2 cores: a 2M-element max-pool runs 2× faster in parallel; LeNet-sized inputs do not)
PARALLEL_MIN_SIZE = 1 << 21


def _is_pointwise(g: Geometry):
    return g.kh == g.kw == g.sh == g.sw == 1 and g.ph == g.pw == 0


def im2col(x, g: Geometry):
    """x (N, C, H, W) → cols (C, KH, KW, N, OH, OW): cols[c,i,j,n,p,q] = x_pad[n, c, p·sh + i·dh, q·sw + j·dw].

    Numba loops when ``use_jit()`` and x is a NumPy array, else the vectorised reference.
    """
    xp = get_array_module(x)
    if _is_pointwise(g):  # 1×1, stride 1: only the batch and channel axes swap
        return xp.ascontiguousarray(x.transpose(1, 0, 2, 3)).reshape(x.shape[1], 1, 1, x.shape[0], g.oh, g.ow)
    if use_jit() and xp is np:
        from ..kernels.conv_loops import im2col_kernel, im2col_kernel_serial
        require_numpy("im2col", x)
        cols = np.empty((x.shape[1], g.kh, g.kw, x.shape[0], g.oh, g.ow), dtype=x.dtype)  # (C, KH, KW, N, OH, OW)
        kernel = im2col_kernel if cols.size >= PARALLEL_MIN_SIZE else im2col_kernel_serial
        kernel(np.ascontiguousarray(x), cols, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw)
        return cols
    return _im2col_ref(x, g)


def col2im(cols, g: Geometry, H, W):
    """The adjoint of ``im2col``: cols (C, KH, KW, N, OH, OW) → dx (N, C, H, W), overlaps summed."""
    xp = get_array_module(cols)
    C, N = cols.shape[0], cols.shape[3]
    if _is_pointwise(g):
        return xp.ascontiguousarray(cols.reshape(C, N, H, W).transpose(1, 0, 2, 3))
    if use_jit() and xp is np:
        from ..kernels.conv_loops import col2im_kernel, col2im_kernel_serial
        require_numpy("col2im", cols)
        dx = np.zeros((N, C, H, W), dtype=cols.dtype)  # (N, C, H, W)
        kernel = col2im_kernel if cols.size >= PARALLEL_MIN_SIZE else col2im_kernel_serial
        kernel(np.ascontiguousarray(cols), dx, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw)
        return dx
    return _col2im_ref(cols, g, H, W)


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
def _wg(w, G):
    """Weights as (G, rows, C/G·K): each group's filters are the rows of one matrix."""
    return w.reshape(G, w.shape[0] // G, -1)


def _channels_first(a, G):
    """(N, C, H, W) → (G, C/G, N·H·W): the layout of a GEMM's right/left factor (one copy)."""
    N, C, H, W = a.shape
    return a.transpose(1, 0, 2, 3).reshape(G, C // G, N * H * W)


def _batch_first(a, C, N, H, W):
    """(G, C/G, N·H·W) → a contiguous (N, C, H, W)."""
    xp = get_array_module(a)
    return xp.ascontiguousarray(a.reshape(C, N, H, W).transpose(1, 0, 2, 3))


# start-conv2d
def conv2d(x, w, b=None, *, stride=1, padding=0, dilation=1, groups=1):
    """Cross-correlation y[n,o] = b[o] + Σ_c Σ_ij w[o,c,i,j] x_pad[n, c, p·sh + i·dh, q·sw + j·dw].

    x (N, C_in, H, W), w (C_out, C_in/G, KH, KW), b (C_out,) or None → y (N, C_out, OH, OW).
    As one GEMM per group on the unfolded batch X = im2col(x) (C_in/G·K, N·L), W (C_out/G, C_in/G·K):
    Y = W X;  backward dW = dY Xᵀ,  dX = Wᵀ dY then dx = col2im(dX),  db = Σ_{n,p,q} dy.
    See chapters/05-convolution.md#eq-conv-backward.
    """
    C_out = _check_conv("conv2d", x, w, b, groups, 1, 0)
    N, C_in, H, W = x.shape
    g = _geometry("conv2d", (H, W), w.shape[2:], stride, padding, dilation, x.shape)
    cols = im2col(x, g).reshape(groups, -1, N * g.oh * g.ow)  # (G, C_in/G·K, N·L)
    yg = _wg(w, groups) @ cols  # (G, C_out/G, N·L): one GEMM per group
    if b is not None:
        yg += b.reshape(groups, -1, 1)
    y = _batch_first(yg, C_out, N, g.oh, g.ow)  # (N, C_out, OH, OW)
    # cols is K times the input: cached (not recomputed) because re-unfolding costs a full copy pass
    return y, (cols, w, b is not None, g, x.shape)


def conv2d_backward(dy, cache):
    """dx, dw, db of ``conv2d`` (db is None without a bias)."""
    cols, w, has_b, g, x_shape = cache
    G = cols.shape[0]
    N, C_in, H, W = x_shape
    dyg = _channels_first(dy, G)  # (G, C_out/G, N·L)
    db = dyg.sum(axis=-1).reshape(-1) if has_b else None  # (C_out,)
    dw = (cols @ dyg.swapaxes(-1, -2)).swapaxes(-1, -2).reshape(w.shape)  # dY Xᵀ = (X dYᵀ)ᵀ: tall GEMM, faster
    dcols = _wg(w, G).swapaxes(-1, -2) @ dyg  # Wᵀ dY: (G, C_in/G·K, N·L)
    dx = col2im(dcols.reshape(C_in, g.kh, g.kw, N, g.oh, g.ow), g, H, W)  # (N, C_in, H, W)
    return dx, dw, db
# end-conv2d


def _transpose_out_size(op, size, k, s, p, op_, d):
    """(size − 1)·s − 2p + d·(k − 1) + output_padding + 1, checked to be positive."""
    out = (size - 1) * s - 2 * p + d * (k - 1) + op_ + 1
    if out < 1:
        raise ValueError(f"{op}: output size {out} < 1 for input size {size}, kernel {k}, stride {s}, "
                         f"padding {p}, dilation {d}, output_padding {op_}")
    return out


# start-conv-transpose2d
def conv_transpose2d(x, w, b=None, *, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """The adjoint of conv2d: y = col2im(Wᵀ x) — what conv2d_backward does to dy to get dx.

    x (N, C_in, H, W), w (C_in, C_out/G, KH, KW), b (C_out,) or None → y (N, C_out, OH, OW),
    OH = (H − 1)·sh − 2ph + dh·(KH − 1) + output_padding + 1. Backward is the forward conv:
    dx = W·im2col(dy),  dw = Σ_n x·im2col(dy)ᵀ,  db = Σ dy.  See chapters/05-convolution.md#transposed.
    """
    C_out = _check_conv("conv_transpose2d", x, w, b, groups, 0, 1)
    N, C_in, H, W = x.shape
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
    ycols = _wg(w, groups).swapaxes(-1, -2) @ xg  # Wᵀ X: (G, C_out/G·K, N·HW)
    y = col2im(ycols.reshape(C_out, KH, KW, N, H, W), g, OH, OW)  # (N, C_out, OH, OW)
    if b is not None:
        y += b.reshape(1, C_out, 1, 1)
    return y, (xg, w, b is not None, g, x.shape)


def conv_transpose2d_backward(dy, cache):
    """dx, dw, db of ``conv_transpose2d`` (db is None without a bias)."""
    xg, w, has_b, g, x_shape = cache
    G = xg.shape[0]
    N, C_in, H, W = x_shape
    db = dy.sum(axis=(0, 2, 3)) if has_b else None  # (C_out,)
    dycols = im2col(dy, g).reshape(G, -1, N * H * W)  # (G, C_out/G·K, N·HW)
    dx = _batch_first(_wg(w, G) @ dycols, C_in, N, H, W)  # W·im2col(dy): a forward conv of dy
    dw = (dycols @ xg.swapaxes(-1, -2)).swapaxes(-1, -2).reshape(w.shape)  # (C_in, C_out/G, KH, KW)
    return dx, dw, db
# end-conv-transpose2d
