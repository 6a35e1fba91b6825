"""Pooling (max, average, global average) and local response normalisation (AlexNet's LRN).

Legend: N batch, C channels, H, W input size, KH, KW window, K = KH·KW, OH, OW output size.
Pooling windows are im2col windows (``functional/conv.py``) with dilation 1 and a reduction over
the K taps instead of a GEMM. This file is the reference the chapter reads; each pooling op makes
one call into ``scratchnet/kernels/pool.py``, which picks the route (Numba loops, the 2×2 window).
See chapters/05-convolution.md#pooling.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._checks import check_float, check_grad, check_ndim
from ..backend import get_array_module
from ..kernels import pool as _kernels
from .conv import Geometry, _fold_ref, _pair, _unfold_ref, col2im, conv_output_size, im2col

__all__ = ["max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward",
           "global_avg_pool2d", "global_avg_pool2d_backward",
           "local_response_norm", "local_response_norm_backward"]


def _pool_geometry(op, x, kernel_size, stride, padding):
    """Validate a pooling window (PyTorch's rule: padding ≤ half the window) → Geometry."""
    check_float(op, "x", x)
    check_ndim(op, "x", x, 4)
    KH, KW = _pair(op, "kernel_size", kernel_size)
    sh, sw = _pair(op, "stride", kernel_size if stride is None else stride)
    ph, pw = _pair(op, "padding", padding)
    if min(KH, KW, sh, sw) < 1 or min(ph, pw) < 0:
        raise ValueError(f"{op}: need kernel_size, stride ≥ 1 and padding ≥ 0; got kernel_size={kernel_size}, "
                         f"stride={stride}, padding={padding}")
    if 2 * ph > KH or 2 * pw > KW:
        raise ValueError(f"{op}: padding {padding} must be at most half the window {kernel_size}")
    H, W = x.shape[2:]
    if KH > H + 2 * ph or KW > W + 2 * pw:
        raise ValueError(f"{op}: window {KH}×{KW} is larger than the padded input {H + 2 * ph}×{W + 2 * pw} "
                         f"(input shape {tuple(x.shape)})")
    return Geometry(KH, KW, sh, sw, ph, pw, 1, 1, conv_output_size(H, KH, sh, ph, 1),
                    conv_output_size(W, KW, sw, pw, 1))


class MaxPoolCache(NamedTuple):
    """What max_pool2d_backward needs: each window's winning tap, the window, the input's shape and dtype."""
    arg: object
    g: Geometry
    x_shape: tuple
    dtype: object


class AvgPoolCache(NamedTuple):
    """What avg_pool2d_backward needs: the divisor (a scalar, or (1, 1, OH, OW) counts), the window,
    the input's shape and dtype."""
    divisor: object
    g: Geometry
    x_shape: tuple
    dtype: object


# start-max-pool
def max_pool2d(x, *, kernel_size, stride=None, padding=0):
    """y[n,c,p,q] = max over the window of x_pad (padding is −∞, never selected).

    x (N, C, H, W) → y (N, C, OH, OW); stride defaults to kernel_size.
    Backward: dx[n,c,h,w] = Σ over the windows whose winner is (h, w) of dy (a scatter).
    See chapters/05-convolution.md#eq-maxpool-backward.
    """
    g = _pool_geometry("max_pool2d", x, kernel_size, stride, padding)
    y, arg = _kernels.max_pool2d(x, g, reference=_max_pool_ref)  # the Numba kernels, or the reference below
    return y, MaxPoolCache(arg, g, x.shape, x.dtype)


def max_pool2d_backward(dy, cache):
    """dx of ``max_pool2d``."""
    arg, g, x_shape, dtype = cache
    check_grad("max_pool2d_backward", "dy", dy, (*x_shape[:2], g.oh, g.ow), dtype)
    return _kernels.max_pool2d_backward(dy, arg, g, x_shape, reference=_max_pool_backward_ref)


def _max_pool_ref(x, g):
    """Vectorised forward (also the CuPy path): −∞ padding, unfold, argmax over the K taps."""
    xp = get_array_module(x)
    N, C = x.shape[:2]
    xpad = xp.pad(x, ((0, 0), (0, 0), (g.ph, g.ph), (g.pw, g.pw)), constant_values=-np.inf)
    cols = _unfold_ref(xpad, g._replace(ph=0, pw=0)).reshape(N, C, g.kh * g.kw, g.oh, g.ow)  # (N, C, K, OH, OW)
    arg = cols.argmax(axis=2)  # (N, C, OH, OW): first maximum, as PyTorch
    y = xp.take_along_axis(cols, arg[:, :, None], axis=2)[:, :, 0]  # (N, C, OH, OW)
    if g.ph or g.pw:  # a window of −∞ only: its first real tap wins, never the padding (as PyTorch)
        real = xp.pad(xp.ones((1, 1) + x.shape[2:], dtype=bool), ((0, 0), (0, 0), (g.ph, g.ph), (g.pw, g.pw)))
        first_real = _unfold_ref(real, g._replace(ph=0, pw=0)).reshape(1, 1, -1, g.oh, g.ow).argmax(axis=2)
        arg = xp.where(y == -np.inf, first_real, arg)  # (N, C, OH, OW)
    return y, arg


def _max_pool_backward_ref(dy, arg, g, H, W):
    """Vectorised backward: dy placed at each window's winner (a one-hot over K), then fold."""
    xp = get_array_module(dy)
    N, C = dy.shape[:2]
    onehot = xp.arange(g.kh * g.kw).reshape(1, 1, -1, 1, 1) == arg[:, :, None]  # (N, C, K, OH, OW)
    dcols = (onehot * dy[:, :, None]).reshape(N, C, g.kh, g.kw, g.oh, g.ow)  # (N, C, KH, KW, OH, OW)
    return _fold_ref(dcols, g, H, W)
# end-max-pool


# start-avg-pool
def avg_pool2d(x, *, kernel_size, stride=None, padding=0, count_include_pad=True):
    """y[n,c,p,q] = (1/d) Σ_window x_pad, d = K (count_include_pad) or the count of real pixels.

    x (N, C, H, W) → y (N, C, OH, OW). Backward: dx = col2im(dy/d broadcast over the K taps).
    See chapters/05-convolution.md#eq-avgpool-backward.
    """
    g = _pool_geometry("avg_pool2d", x, kernel_size, stride, padding)
    y, divisor = _kernels.avg_pool2d(x, g, count_include_pad, reference=_avg_pool_ref)  # or the 2×2 window's slices
    return y, AvgPoolCache(divisor, g, x.shape, x.dtype)


def avg_pool2d_backward(dy, cache):
    """dx of ``avg_pool2d``."""
    divisor, g, x_shape, dtype = cache
    check_grad("avg_pool2d_backward", "dy", dy, (*x_shape[:2], g.oh, g.ow), dtype)
    return _kernels.avg_pool2d_backward(dy, divisor, g, x_shape, reference=_avg_pool_backward_ref)


def _avg_pool_ref(x, g, count_include_pad):
    """Vectorised forward: every (n, c) plane as a channel of one image, unfold, mean over the K taps."""
    xp = get_array_module(x)
    N, C, H, W = x.shape
    cols = im2col(x.reshape(1, N * C, H, W), g)  # (NC, KH, KW, 1, OH, OW), zeros in the padding
    if count_include_pad or (g.ph == 0 and g.pw == 0):
        divisor = float(g.kh * g.kw)
    else:
        ones = xp.ones((1, 1, H, W), dtype=x.dtype)  # (1, 1, H, W)
        divisor = im2col(ones, g).sum(axis=(1, 2)).reshape(1, 1, g.oh, g.ow)  # real pixels per window
    y = cols.sum(axis=(1, 2)).reshape(N, C, g.oh, g.ow) / divisor  # (N, C, OH, OW)
    return y, divisor


def _avg_pool_backward_ref(dy, divisor, g, x_shape):
    """Vectorised backward: dy/d copied to the K taps of its window, then col2im."""
    xp = get_array_module(dy)
    N, C, H, W = x_shape
    dyd = (dy / divisor).reshape(N * C, 1, 1, 1, g.oh, g.ow)  # (NC, 1, 1, 1, OH, OW)
    dcols = xp.ascontiguousarray(xp.broadcast_to(dyd, (N * C, g.kh, g.kw, 1, g.oh, g.ow)))
    return col2im(dcols, g, H, W).reshape(N, C, H, W)  # (N, C, H, W)
# end-avg-pool


def global_avg_pool2d(x):
    """y[n, c] = mean over (h, w) of x. x (N, C, H, W) → (N, C). Backward: dx = dy / (H·W) broadcast."""
    check_float("global_avg_pool2d", "x", x)
    check_ndim("global_avg_pool2d", "x", x, 4)
    return x.mean(axis=(2, 3)), (x.shape, x.dtype)


def global_avg_pool2d_backward(dy, cache):
    """dx of ``global_avg_pool2d``."""
    x_shape, dtype = cache
    check_grad("global_avg_pool2d_backward", "dy", dy, x_shape[:2], dtype)
    xp = get_array_module(dy)
    H, W = x_shape[2:]
    return xp.broadcast_to((dy / float(H * W))[:, :, None, None], x_shape).copy()  # (N, C, H, W)


# -- local response normalisation (Krizhevsky et al. 2012, PyTorch's formula) ---------------------
def _channel_window_sum(a, before, after):
    """out[:, c] = Σ_{c' = c − before}^{c + after} a[:, c'] with zeros past the channel ends."""
    xp = get_array_module(a)
    C = a.shape[1]
    apad = xp.pad(a, [(0, 0), (before, after)] + [(0, 0)] * (a.ndim - 2))  # (N, C+before+after, ...)
    out = apad[:, 0:C].copy()  # (N, C, ...)
    for t in range(1, before + after + 1):  # one shifted slab per window offset
        out += apad[:, t:t + C]
    return out


class LRNCache(NamedTuple):
    """What local_response_norm_backward needs: x, s and s^{−β} (the power is the costly part), the options."""
    x: object
    s: object
    spow: object
    size: int
    alpha: float
    beta: float


# start-lrn
def _inverse_power(s, beta):
    """s^{−β} for s > 0. AlexNet's β = 3/4 as 1/(√s·√√s): three square roots and a reciprocal are
    several times faster than NumPy's general power, within a few ulp."""
    xp = get_array_module(s)
    if beta != 0.75:
        return s ** (-beta)
    r = xp.sqrt(s)  # s^{1/2}
    r *= xp.sqrt(r)  # s^{3/4}
    return xp.reciprocal(r, out=r)  # s^{−3/4}


def local_response_norm(x, *, size=5, alpha=1e-4, beta=0.75, k=2.0):
    """y_c = x_c / s_c^β with s_c = k + (α/size) Σ_{c' ∈ [c − ⌊size/2⌋, c + ⌊(size−1)/2⌋]} x_{c'}².

    x (N, C, ...) → y of the same shape (PyTorch's nn.LocalResponseNorm; AlexNet used
    size=5, α=1e-4, β=0.75, k=2). Backward, with W(c) the window of channel c:
    dx_j = dy_j s_j^{−β} − (2αβ/size) x_j Σ_{c : j ∈ W(c)} dy_c x_c s_c^{−β−1}.
    See chapters/07-alexnet.md#eq-lrn-backward.
    """
    check_float("local_response_norm", "x", x)
    check_ndim("local_response_norm", "x", x, (3, 4, 5))
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"local_response_norm: size must be a positive int, got {size!r}")
    sq = x * x  # (N, C, ...)
    s = k + (alpha / size) * _channel_window_sum(sq, size // 2, (size - 1) // 2)  # (N, C, ...)
    spow = _inverse_power(s, beta)  # s^{−β}
    y = x * spow
    return y, LRNCache(x, s, spow, size, alpha, beta)


def local_response_norm_backward(dy, cache):
    """dx of ``local_response_norm``."""
    x, s, spow, size, alpha, beta = cache
    check_grad("local_response_norm_backward", "dy", dy, x.shape, x.dtype)
    t = dy * x * spow / s  # dy_c x_c s_c^{−β−1}
    # channel j feeds the windows of c ∈ [j − ⌊(size−1)/2⌋, j + ⌊size/2⌋]: the transposed window
    back = _channel_window_sum(t, (size - 1) // 2, size // 2)
    dx = dy * spow - (2.0 * alpha * beta / size) * x * back
    return dx
# end-lrn
