"""Pooling (max, average, global average) and local response normalisation (AlexNet's LRN).

Legend: N batch, C channels, H, W input size, KH, KW window, K = KH·KW, OH, OW output size.
Pooling windows are im2col windows (``functional/conv.py``) with dilation 1 and a reduction over
the K taps instead of a GEMM. See chapters/05-convolution.md#pooling.
"""
from __future__ import annotations

import numpy as np

from .._checks import check_float, check_ndim
from .._jit import use_jit
from ..backend import get_array_module, require_numpy
from .conv import PARALLEL_MIN_SIZE, Geometry, _fold_ref, _pair, _unfold_ref, col2im, conv_output_size, im2col

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


def _is_2x2(g):
    """The 2×2 window with stride 2 and no padding, which has its own fast paths."""
    return tuple(g[:6]) == (2, 2, 2, 2, 0, 0)


def _tap(a, g, i, j):
    """The view of a (N, C, H, W) holding tap (i, j) of every 2×2 / stride-2 window: (N, C, OH, OW)."""
    return a[:, :, i:i + 2 * g.oh:2, j:j + 2 * g.ow:2]


# start-max-pool
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


def max_pool2d(x, *, kernel_size, stride=None, padding=0):
    """y[n,c,p,q] = max over the window of x_pad (padding is −∞, never selected).

    x (N, C, H, W) → y (N, C, OH, OW); stride defaults to kernel_size.
    Backward: dx[n,c,h,w] = Σ over the windows whose winner is (h, w) of dy (a scatter).
    See chapters/05-convolution.md#eq-maxpool-backward.
    """
    g = _pool_geometry("max_pool2d", x, kernel_size, stride, padding)
    xp = get_array_module(x)
    if use_jit() and xp is np:
        from ..kernels import pool_loops as K
        require_numpy("max_pool2d", x)
        x = np.ascontiguousarray(x)
        y = np.empty(x.shape[:2] + (g.oh, g.ow), dtype=x.dtype)  # (N, C, OH, OW)
        # winner's tap k = i·KW + j; one byte per output for windows up to 127 taps (less to write)
        arg = np.empty(y.shape, dtype=np.int8 if g.kh * g.kw <= 127 else np.int64)  # (N, C, OH, OW)
        if _is_2x2(g):  # the common 2×2 / stride 2 window: taps unrolled
            K.max_pool2x2_kernel_serial(x, y, arg)
        else:
            kernel = K.max_pool2d_kernel if x.size >= PARALLEL_MIN_SIZE else K.max_pool2d_kernel_serial
            kernel(x, y, arg, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw)
    else:
        y, arg = _max_pool_ref(x, g)
    return y, (arg, g, x.shape)


def max_pool2d_backward(dy, cache):
    """dx of ``max_pool2d``."""
    arg, g, x_shape = cache
    xp = get_array_module(dy)
    if use_jit() and xp is np:
        from ..kernels import pool_loops as K
        require_numpy("max_pool2d_backward", dy)
        dy = np.ascontiguousarray(dy)
        if _is_2x2(g):  # disjoint windows: dx written once, no zero pass, no scatter-add
            dx = np.empty(x_shape, dtype=dy.dtype)  # (N, C, H, W), written in full by the kernel
            K.max_pool2x2_backward_kernel_serial(dy, arg, dx)
            return dx
        dx = np.zeros(x_shape, dtype=dy.dtype)  # (N, C, H, W)
        kernel = K.max_pool2d_backward_kernel if dx.size >= PARALLEL_MIN_SIZE else K.max_pool2d_backward_kernel_serial
        kernel(dy, arg, dx, g.kw, g.sh, g.sw, g.ph, g.pw)
        return dx
    return _max_pool_backward_ref(dy, arg, g, x_shape[2], x_shape[3])
# end-max-pool


# start-avg-pool
def avg_pool2d(x, *, kernel_size, stride=None, padding=0, count_include_pad=True):
    """y[n,c,p,q] = (1/d) Σ_window x_pad, d = K (count_include_pad) or the count of real pixels.

    x (N, C, H, W) → y (N, C, OH, OW). Backward: dx = col2im(dy/d broadcast over the K taps).
    See chapters/05-convolution.md#eq-avgpool-backward.
    """
    g = _pool_geometry("avg_pool2d", x, kernel_size, stride, padding)
    xp = get_array_module(x)
    N, C, H, W = x.shape
    if _is_2x2(g):  # LeNet's subsampling: four strided slices, no unfold (2.5× faster)
        y = _tap(x, g, 0, 0) + _tap(x, g, 0, 1)  # (N, C, OH, OW)
        y += _tap(x, g, 1, 0)
        y += _tap(x, g, 1, 1)
        y *= 0.25
        return y, (4.0, g, x.shape)
    cols = im2col(x.reshape(1, N * C, H, W), g)  # (NC, KH, KW, 1, OH, OW), zeros in the padding
    if count_include_pad or (g.ph == 0 and g.pw == 0):
        divisor = float(g.kh * g.kw)
    else:
        ones = xp.ones((1, 1, H, W), dtype=x.dtype)  # (1, 1, H, W)
        divisor = im2col(ones, g).sum(axis=(1, 2)).reshape(1, 1, g.oh, g.ow)  # real pixels per window
    y = cols.sum(axis=(1, 2)).reshape(N, C, g.oh, g.ow) / divisor  # (N, C, OH, OW)
    return y, (divisor, g, x.shape)


def avg_pool2d_backward(dy, cache):
    """dx of ``avg_pool2d``."""
    divisor, g, x_shape = cache
    xp = get_array_module(dy)
    N, C, H, W = x_shape
    if _is_2x2(g):  # each pixel is in at most one window: four strided writes
        dx = (xp.zeros if H % 2 or W % 2 else xp.empty)(x_shape, dtype=dy.dtype)  # (N, C, H, W)
        dyd = dy / divisor
        for i in range(2):  # tap (i, j) of every window
            for j in range(2):
                _tap(dx, g, i, j)[...] = dyd
        return dx
    dyd = (dy / divisor).reshape(N * C, 1, 1, 1, g.oh, g.ow)  # (NC, 1, 1, 1, OH, OW)
    dcols = xp.ascontiguousarray(xp.broadcast_to(dyd, (N * C, g.kh, g.kw, 1, g.oh, g.ow)))
    return col2im(dcols, g, H, W).reshape(N, C, H, W)  # (N, C, H, W)
# end-avg-pool


def global_avg_pool2d(x):
    """y[n, c] = mean over (h, w) of x. x (N, C, H, W) → (N, C). Backward: dx = dy / (H·W) broadcast."""
    check_float("global_avg_pool2d", "x", x)
    check_ndim("global_avg_pool2d", "x", x, 4)
    return x.mean(axis=(2, 3)), (x.shape,)


def global_avg_pool2d_backward(dy, cache):
    """dx of ``global_avg_pool2d``."""
    (x_shape,) = cache
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


# start-lrn
def _inverse_power(s, beta):
    """s^{−β} for s > 0. AlexNet's β = 3/4 as 1/(√s·√√s): three square roots and a reciprocal run
    ~4× faster than NumPy's general power (measured on 2.4M float32: 14 ms → 3 ms), within a few ulp."""
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
    See chapters/05-convolution.md#eq-lrn-backward.
    """
    check_float("local_response_norm", "x", x)
    check_ndim("local_response_norm", "x", x, (3, 4, 5))
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"local_response_norm: size must be a positive int, got {size!r}")
    sq = x * x  # (N, C, ...)
    s = k + (alpha / size) * _channel_window_sum(sq, size // 2, (size - 1) // 2)  # (N, C, ...)
    spow = _inverse_power(s, beta)  # s^{−β}
    y = x * spow
    return y, (x, s, spow, size, alpha, beta)


def local_response_norm_backward(dy, cache):
    """dx of ``local_response_norm``."""
    x, s, spow, size, alpha, beta = cache
    t = dy * x * spow / s  # dy_c x_c s_c^{−β−1}
    # channel j feeds the windows of c ∈ [j − ⌊(size−1)/2⌋, j + ⌊size/2⌋]: the transposed window
    back = _channel_window_sum(t, (size - 1) // 2, size // 2)
    dx = dy * spow - (2.0 * alpha * beta / size) * x * back
    return dx
# end-lrn
