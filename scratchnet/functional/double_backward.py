"""Double backward: each layer's input gradient as an op of its own, with ITS backward, and the
WGAN-GP gradient penalty.

Legend: N batch, D / M features in / out, C channels, H, W input size, OH, OW output size,
g = dy the upstream gradient that a layer's ordinary backward receives, gg = dL/dg its own upstream.

A layer y = f(x; θ) has an ordinary backward dx = B(dy; x, θ). To differentiate a loss of dx (the
gradient penalty), B itself is treated as a forward op whose inputs are dy and the forward's inputs
x, θ it reads; its backward (the "double backward") returns one gradient per such input:

    dx, cache = F.linear_input_grad(dy, w)            # dx = dy wᵀ, as linear_backward computes it
    ddy, dw = F.linear_input_grad_backward(ddx, cache)

Linear and conv2d are bilinear in (dy, w): their double backward is the same two products again.
LeakyReLU's dx = dy·s(x) has a piecewise-constant s, so x gets no gradient (almost everywhere);
the smooth leaky ReLU's s is smooth, and x gets ddx·dy·s'(x). See chapters/31-wgan.md#double-backward.
"""
from __future__ import annotations

from typing import NamedTuple

from .._checks import check_float, check_grad, check_ndim, check_same_dtype
from ..backend import get_array_module
from .activation import stable_sigmoid, stable_softplus
from .conv import _pair, conv_output_size, conv_transpose2d, conv_transpose2d_backward
from .loss import check_dloss

__all__ = ["linear_input_grad", "linear_input_grad_backward", "conv2d_input_grad", "conv2d_input_grad_backward",
           "leaky_relu_input_grad", "leaky_relu_input_grad_backward", "smooth_leaky_relu",
           "smooth_leaky_relu_backward", "smooth_leaky_relu_input_grad", "smooth_leaky_relu_input_grad_backward",
           "gradient_penalty", "gradient_penalty_backward"]


# start-linear-input-grad
def linear_input_grad(dy, w):
    """dx = dy wᵀ: the input gradient of ``linear`` (it reads w, not x, and not the bias).

    dy (..., M), w (D, M) → dx (..., D). Backward (bilinear): ddy = ddx w, dw = ddxᵀ dy.
    See chapters/31-wgan.md#eq-dd-linear.
    """
    check_float("linear_input_grad", "dy", dy)
    check_ndim("linear_input_grad", "w", w, 2)
    check_same_dtype("linear_input_grad", dy=dy, w=w)
    if dy.shape[-1] != w.shape[1]:
        raise ValueError(f"linear_input_grad: dy has {dy.shape[-1]} features (shape {tuple(dy.shape)}) but w "
                         f"of shape {tuple(w.shape)} has {w.shape[1]} outputs (layout (D_in, D_out))")
    D, M = w.shape
    dx = (dy.reshape(-1, M) @ w.T).reshape(*dy.shape[:-1], D)  # (..., D)
    return dx, (dy, w)


def linear_input_grad_backward(ddx, cache):
    """ddy, dw of ``linear_input_grad``."""
    dy, w = cache
    D, M = w.shape
    check_grad("linear_input_grad_backward", "ddx", ddx, dy.shape[:-1] + (D,), w.dtype)
    ddy = (ddx.reshape(-1, D) @ w).reshape(dy.shape)  # ddy = ddx w: (..., M)
    dw = ddx.reshape(-1, D).T @ dy.reshape(-1, M)  # dw = ddxᵀ dy: (D, M)
    return ddy, dw
# end-linear-input-grad


class ConvInputGradCache(NamedTuple):
    """The transposed convolution that computed dx, and the shape of dy."""
    t_cache: object
    dy_shape: tuple


# start-conv2d-input-grad
def conv2d_input_grad(dy, w, *, input_size, stride=1, padding=0, dilation=1, groups=1):
    """dx = conv_transpose2d(dy, w): the input gradient of ``conv2d`` as its own op.

    dy (N, C_out, OH, OW), w (C_out, C_in/G, KH, KW) — read as a transposed-conv weight (C_in', C_out'/G)
    with C_in' = C_out — and input_size (H, W) of the conv's input → dx (N, C_in, H, W).
    Backward is the transposed conv's: ddy = conv2d(ddx, w) (the forward conv), dw = the same
    outer sum as conv2d_backward's with ddx in the place of x. See chapters/31-wgan.md#eq-dd-conv.
    """
    check_float("conv2d_input_grad", "dy", dy)
    check_ndim("conv2d_input_grad", "dy", dy, 4)
    check_ndim("conv2d_input_grad", "w", w, 4)
    check_same_dtype("conv2d_input_grad", dy=dy, w=w)
    H, W = _pair("conv2d_input_grad", "input_size", input_size)
    (sh, sw), (ph, pw) = _pair("conv2d_input_grad", "stride", stride), _pair("conv2d_input_grad", "padding", padding)
    dh, dw_ = _pair("conv2d_input_grad", "dilation", dilation)
    KH, KW = w.shape[2:]
    grid = (conv_output_size(H, KH, sh, ph, dh), conv_output_size(W, KW, sw, pw, dw_))
    if tuple(dy.shape[2:]) != grid:
        raise ValueError(f"conv2d_input_grad: a {H}×{W} input gives a {grid[0]}×{grid[1]} output under this "
                         f"geometry, but dy has shape {tuple(dy.shape)}")
    # the rows and columns that the conv's floor division dropped come back as output padding
    extra = (H - ((grid[0] - 1) * sh - 2 * ph + dh * (KH - 1) + 1),
             W - ((grid[1] - 1) * sw - 2 * pw + dw_ * (KW - 1) + 1))
    dx, t_cache = conv_transpose2d(dy, w, None, stride=stride, padding=padding, output_padding=extra,
                                   groups=groups, dilation=dilation)  # (N, C_in, H, W)
    return dx, ConvInputGradCache(t_cache, tuple(dy.shape))


def conv2d_input_grad_backward(ddx, cache):
    """ddy, dw of ``conv2d_input_grad``."""
    t_cache, dy_shape = cache
    check_grad("conv2d_input_grad_backward", "ddx", ddx, t_cache.y_shape, t_cache.w.dtype)  # dx's shape
    ddy, dw, _ = conv_transpose2d_backward(ddx, t_cache)  # ddy = conv2d(ddx, w), dw = Σ dy ⊗ unfold(ddx)
    return ddy, dw
# end-conv2d-input-grad


# start-leaky-input-grad
def leaky_relu_input_grad(dy, x, *, slope=0.01):
    """dx = dy·s(x), s = 1 where x > 0 else slope: the input gradient of ``leaky_relu``.

    dy, x (...) → dx (...). Backward: ddy = ddx·s(x); x gets zero, because s is piecewise constant
    (its derivative is 0 except at x = 0, where it does not exist). See chapters/31-wgan.md#eq-dd-leaky.
    """
    check_float("leaky_relu_input_grad", "dy", dy)
    check_same_dtype("leaky_relu_input_grad", dy=dy, x=x)
    if dy.shape != x.shape:
        raise ValueError(f"leaky_relu_input_grad: dy shape {tuple(dy.shape)} != x shape {tuple(x.shape)}")
    xp = get_array_module(dy, x)
    s = xp.where(x > 0, 1.0, slope).astype(x.dtype)  # (...) the local slope
    return dy * s, (s,)


def leaky_relu_input_grad_backward(ddx, cache):
    """ddy, dx of ``leaky_relu_input_grad`` (dx is zeros: s(x) is locally constant)."""
    (s,) = cache
    check_grad("leaky_relu_input_grad_backward", "ddx", ddx, s.shape, s.dtype)
    xp = get_array_module(ddx)
    return ddx * s, xp.zeros_like(s)
# end-leaky-input-grad


# start-smooth-leaky
def smooth_leaky_relu(x, *, slope=0.2, beta=5.0):
    """y = slope·x + (1 − slope)·softplus(βx)/β: leaky ReLU with its kink rounded (→ leaky_relu as β → ∞).

    x (...) → y (...). Backward: dx = dy·s(x), s(x) = slope + (1 − slope)·σ(βx).
    """
    check_float("smooth_leaky_relu", "x", x)
    y = slope * x + (1.0 - slope) * stable_softplus(beta * x) / beta
    return y.astype(x.dtype, copy=False), (x, slope, beta)


def smooth_leaky_relu_backward(dy, cache):
    x, slope, beta = cache
    check_grad("smooth_leaky_relu_backward", "dy", dy, x.shape, x.dtype)
    return dy * (slope + (1.0 - slope) * stable_sigmoid(beta * x))


def smooth_leaky_relu_input_grad(dy, x, *, slope=0.2, beta=5.0):
    """dx = dy·s(x) of ``smooth_leaky_relu`` as its own op.

    Backward: ddy = ddx·s(x) and, because s is smooth, dx = ddx·dy·s'(x) with
    s'(x) = (1 − slope)·β·σ(βx)(1 − σ(βx)). See chapters/31-wgan.md#eq-dd-leaky.
    """
    check_float("smooth_leaky_relu_input_grad", "dy", dy)
    check_same_dtype("smooth_leaky_relu_input_grad", dy=dy, x=x)
    if dy.shape != x.shape:
        raise ValueError(f"smooth_leaky_relu_input_grad: dy shape {tuple(dy.shape)} != x shape {tuple(x.shape)}")
    sig = stable_sigmoid(beta * x)  # (...)
    s = slope + (1.0 - slope) * sig  # s(x)
    ds = (1.0 - slope) * beta * sig * (1.0 - sig)  # s'(x)
    return dy * s, (dy, s, ds)


def smooth_leaky_relu_input_grad_backward(ddx, cache):
    """ddy, dx of ``smooth_leaky_relu_input_grad``."""
    dy, s, ds = cache
    check_grad("smooth_leaky_relu_input_grad_backward", "ddx", ddx, s.shape, s.dtype)
    return ddx * s, ddx * dy * ds  # ddy = ddx·s(x);  dx = ddx·dy·s'(x)
# end-smooth-leaky


# start-gradient-penalty
def gradient_penalty(g, *, lam=10.0, target=1.0, eps=1e-12):
    """P = λ · mean_n (‖g_n‖ − target)², g_n = ∂D/∂x at sample n (WGAN-GP, Gulrajani et al. 2017).

    g (N, ...) → P scalar. Backward: dg_n = (2λ/N)·(‖g_n‖ − target)·g_n/‖g_n‖ (eps guards ‖g_n‖ = 0).
    See chapters/31-wgan.md#eq-gp.
    """
    check_float("gradient_penalty", "g", g)
    xp = get_array_module(g)
    N = g.shape[0]
    norm = xp.sqrt((g.reshape(N, -1) ** 2).sum(axis=1) + eps)  # (N,) ‖g_n‖
    P = lam * ((norm - target) ** 2).mean()
    return P.astype(g.dtype)[()], (g, norm, lam, target)


def gradient_penalty_backward(dP, cache):
    """dg of ``gradient_penalty``."""
    g, norm, lam, target = cache
    check_dloss("gradient_penalty_backward", dP, (), g.dtype, name="dP")
    N = g.shape[0]
    coef = dP * 2.0 * lam / N * (norm - target) / norm  # (N,)
    return (coef.reshape((N,) + (1,) * (g.ndim - 1)) * g).astype(g.dtype, copy=False)
# end-gradient-penalty
