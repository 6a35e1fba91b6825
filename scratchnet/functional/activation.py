"""Elementwise nonlinearities and the softmax family.

Legend: any shape; ``axis`` is the softmax axis. Every backward returns dx of x's shape and dtype.
The exact GELU makes one call into ``scratchnet/kernels/activation.py``, which runs either the
reference below or a fused Numba loop. See chapters/01-mlp.md#activations.
"""
from __future__ import annotations

import math

import numpy as np

from .._checks import check_float, check_grad
from ..backend import get_array_module
from ..kernels import activation as _kernels

__all__ = [
    "relu", "relu_backward", "hardtanh", "hardtanh_backward", "relu6", "relu6_backward",
    "leaky_relu", "leaky_relu_backward", "sigmoid", "sigmoid_backward",
    "tanh", "tanh_backward", "silu", "silu_backward", "softplus", "softplus_backward",
    "gelu", "gelu_backward", "softmax", "softmax_backward", "log_softmax", "log_softmax_backward",
    "stable_sigmoid", "stable_softplus",
]

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def stable_sigmoid(x):
    """σ(x) = 1/(1+e^{-x}) without overflow: e^{-|x|} is always ≤ 1."""
    xp = get_array_module(x)
    e = xp.exp(-xp.abs(x))  # (...)
    return xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def stable_softplus(x):
    """log(1 + e^x) = max(x, 0) + log1p(e^{-|x|}), finite for any x."""
    xp = get_array_module(x)
    return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))


def relu(x):
    """y = max(x, 0). Backward: dx = dy ⊙ [x > 0]."""
    check_float("relu", "x", x)
    xp = get_array_module(x)
    return xp.maximum(x, 0), (x > 0, x.dtype)


def relu_backward(dy, cache):
    positive, dtype = cache
    check_grad("relu_backward", "dy", dy, positive.shape, dtype)
    return dy * positive


def hardtanh(x, *, min_val=-1.0, max_val=1.0):
    """y = clip(x, min_val, max_val). Backward: dx = dy ⊙ [min_val < x < max_val].

    See chapters/12-mobilenet.md#eq-relu6 (ReLU6 is hardtanh on [0, 6]).
    """
    check_float("hardtanh", "x", x)
    if not min_val < max_val:
        raise ValueError(f"hardtanh: need min_val < max_val, got {min_val} and {max_val}")
    xp = get_array_module(x)
    inside = (x > min_val) & (x < max_val)  # where the clip is the identity
    return xp.clip(x, min_val, max_val), (inside, x.dtype)


def hardtanh_backward(dy, cache):
    inside, dtype = cache
    check_grad("hardtanh_backward", "dy", dy, inside.shape, dtype)
    return dy * inside


def relu6(x):
    """y = min(max(x, 0), 6), MobileNet's activation. Backward: dx = dy ⊙ [0 < x < 6]."""
    check_float("relu6", "x", x)
    return hardtanh(x, min_val=0.0, max_val=6.0)


def relu6_backward(dy, cache):
    inside, dtype = cache
    check_grad("relu6_backward", "dy", dy, inside.shape, dtype)
    return dy * inside


def leaky_relu(x, *, slope=0.01):
    """y = x if x > 0 else slope·x. Backward: dx = dy ⊙ (1 if x > 0 else slope)."""
    check_float("leaky_relu", "x", x)
    xp = get_array_module(x)
    positive = x > 0
    return xp.where(positive, x, slope * x), (positive, slope, x.dtype)


def leaky_relu_backward(dy, cache):
    positive, slope, dtype = cache
    check_grad("leaky_relu_backward", "dy", dy, positive.shape, dtype)
    xp = get_array_module(dy)
    return xp.where(positive, dy, slope * dy)


def sigmoid(x):
    """y = σ(x). Backward: dx = dy ⊙ y(1 − y) (cache y, not x)."""
    check_float("sigmoid", "x", x)
    y = stable_sigmoid(x)
    return y, (y,)


def sigmoid_backward(dy, cache):
    (y,) = cache
    check_grad("sigmoid_backward", "dy", dy, y.shape, y.dtype)
    return dy * y * (1.0 - y)


def tanh(x):
    """y = tanh(x). Backward: dx = dy ⊙ (1 − y²)."""
    check_float("tanh", "x", x)
    xp = get_array_module(x)
    y = xp.tanh(x)
    return y, (y,)


def tanh_backward(dy, cache):
    (y,) = cache
    check_grad("tanh_backward", "dy", dy, y.shape, y.dtype)
    return dy * (1.0 - y * y)


def silu(x):
    """y = x σ(x) (swish). Backward: dx = dy ⊙ σ(x)(1 + x(1 − σ(x)))."""
    check_float("silu", "x", x)
    s = stable_sigmoid(x)
    return x * s, (x, s)


def silu_backward(dy, cache):
    x, s = cache
    check_grad("silu_backward", "dy", dy, x.shape, x.dtype)
    return dy * s * (1.0 + x * (1.0 - s))


def softplus(x):
    """y = log(1 + eˣ). Backward: dx = dy ⊙ σ(x)."""
    check_float("softplus", "x", x)
    return stable_softplus(x), (x,)


def softplus_backward(dy, cache):
    (x,) = cache
    check_grad("softplus_backward", "dy", dy, x.shape, x.dtype)
    return dy * stable_sigmoid(x)


# start-gelu
def gelu(x, *, approximate="none"):
    """y = x Φ(x) (exact, with erf) or the tanh approximation 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))).

    Backward (exact): dx = dy ⊙ (Φ(x) + x φ(x)); (tanh): dx = dy ⊙ (0.5(1+t) + 0.5x(1−t²)·√(2/π)(1 + 3·0.044715x²)).
    See chapters/01-mlp.md#gelu.
    """
    check_float("gelu", "x", x)
    xp = get_array_module(x)
    if approximate == "none":
        y, phi_cdf = _kernels.gelu(x, reference=_gelu_exact)  # (...), (...) Φ(x), cached for the backward
        return y, (x, phi_cdf, approximate)
    if approximate == "tanh":
        u = _SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)  # inner argument
        t = xp.tanh(u)
        return 0.5 * x * (1.0 + t), (x, t, approximate)
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def gelu_backward(dy, cache):
    x, s, approximate = cache
    check_grad("gelu_backward", "dy", dy, x.shape, x.dtype)
    if approximate == "none":
        return _kernels.gelu_backward(dy, x, s, reference=_gelu_exact_backward)
    t = s
    du = _SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * x * x)  # du/dx
    return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)


def _gelu_exact(x):
    """The exact GELU, vectorised: (y, Φ(x)) with Φ(x) = ½(1 + erf(x/√2))."""
    xp = get_array_module(x)
    phi_cdf = (0.5 * (1.0 + _erf(xp)(x * _INV_SQRT_2))).astype(x.dtype, copy=False)  # Φ(x): erf may widen float16
    return x * phi_cdf, phi_cdf


def _gelu_exact_backward(dy, x, phi_cdf):
    """dx = dy ⊙ (Φ(x) + x φ(x)), φ(x) = e^{−x²/2}/√(2π), vectorised."""
    xp = get_array_module(x)
    phi_pdf = _INV_SQRT_2PI * xp.exp(-0.5 * x * x)  # φ(x)
    return dy * (phi_cdf + x * phi_pdf)
# end-gelu


def _erf(xp):
    """erf for NumPy (scipy.special when present, else math.erf vectorised) and CuPy."""
    if xp.__name__ == "cupy":
        import cupyx.scipy.special as sp  # type: ignore
        return sp.erf
    try:
        from scipy.special import erf
        return erf
    except ImportError:  # pragma: no cover
        verf = np.vectorize(math.erf, otypes=[float])
        return lambda z: verf(z).astype(z.dtype)


def softmax(x, *, axis=-1):
    """y = exp(x − max) / Σ exp(x − max) along ``axis``.

    Backward: dx = y ⊙ (dy − Σ_axis dy ⊙ y). See chapters/01-mlp.md#eq-softmax-backward.
    """
    check_float("softmax", "x", x)
    xp = get_array_module(x)
    z = x - x.max(axis=axis, keepdims=True)  # shift for stability
    e = xp.exp(z)
    y = e / e.sum(axis=axis, keepdims=True)
    return y, (y, axis)


def softmax_backward(dy, cache):
    y, axis = cache
    check_grad("softmax_backward", "dy", dy, y.shape, y.dtype)
    return y * (dy - (dy * y).sum(axis=axis, keepdims=True))


def log_softmax(x, *, axis=-1):
    """y = x − logsumexp(x) along ``axis``.

    Backward: dx = dy − softmax(x) Σ_axis dy.
    """
    check_float("log_softmax", "x", x)
    xp = get_array_module(x)
    z = x - x.max(axis=axis, keepdims=True)
    y = z - xp.log(xp.exp(z).sum(axis=axis, keepdims=True))
    return y, (y, axis)


def log_softmax_backward(dy, cache):
    y, axis = cache
    check_grad("log_softmax_backward", "dy", dy, y.shape, y.dtype)
    xp = get_array_module(dy)
    return dy - xp.exp(y) * dy.sum(axis=axis, keepdims=True)
