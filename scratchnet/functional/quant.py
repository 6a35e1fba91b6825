"""Affine (uniform) quantisation: ``quantize`` / ``dequantize``, calibration, and ``fake_quant`` with the
straight-through estimator (STE).

Legend: x a float array of any shape, C channels along ``axis`` (per-channel parameters have shape
(C,), per-tensor ones shape ()), s scale, z zero point (an integer), [q_min, q_max] the integer range
(int8: [−128, 127]; symmetric weights [−127, 127]). The real value of integer q is (q − z)·s.
See chapters/34-quantization.md#quant-affine.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._checks import check_float, check_grad
from ..backend import get_array_module

__all__ = ["qrange", "affine_params", "calibrate_minmax", "calibrate_percentile", "quantize", "dequantize",
           "fake_quant", "fake_quant_backward", "rounding_residual"]


def qrange(bits=8, *, signed=True, narrow=False):
    """(q_min, q_max) of a ``bits``-bit integer; ``narrow`` drops the most negative code (int8: [−127, 127])."""
    if signed:
        return -(2 ** (bits - 1)) + int(narrow), 2 ** (bits - 1) - 1
    return int(narrow), 2 ** bits - 1


def _along(p, ndim, axis):
    """A per-channel parameter (C,) shaped to broadcast against an ndim array along ``axis``; () unchanged."""
    p_ndim = getattr(p, "ndim", 0)
    if axis is None or p_ndim == 0:
        return p
    shape = [1] * ndim
    shape[axis] = -1
    return p.reshape(shape)


# start-affine-params
def affine_params(lo, hi, *, qmin=-128, qmax=127, symmetric=False, dtype=np.float32):
    """Scale and zero point mapping the real range [lo, hi] onto [q_min, q_max].

    Asymmetric: the range is first widened to contain 0 (so that real 0, a ReLU's output and a
    convolution's padding, is exactly representable), s = (hi − lo)/(q_max − q_min),
    z = round(q_min − lo/s). Symmetric: z = 0 and s = max(|lo|, |hi|)/q_max.
    ``lo``, ``hi``: floats (per-tensor) or (C,) arrays (per-channel). Returns (s float, z int32).
    See chapters/34-quantization.md#eq-affine-params.
    """
    lo, hi = np.minimum(np.asarray(lo, np.float64), 0.0), np.maximum(np.asarray(hi, np.float64), 0.0)
    tiny = np.finfo(np.float32).tiny  # an all-zero range still gets a usable, positive scale
    if symmetric:
        s = np.maximum(np.maximum(-lo, hi) / qmax, tiny)
        z = np.zeros_like(s, dtype=np.int32)
    else:
        s = np.maximum((hi - lo) / (qmax - qmin), tiny)
        z = np.clip(np.round(qmin - lo / s), qmin, qmax).astype(np.int32)
    return s.astype(dtype), z
# end-affine-params


def _reduce_axes(x, axis):
    return None if axis is None else tuple(a for a in range(x.ndim) if a != axis % x.ndim)


def calibrate_minmax(x, *, axis=None):
    """(lo, hi): the smallest and largest value of x, overall or per channel along ``axis``."""
    axes = _reduce_axes(x, axis)
    return x.min(axis=axes), x.max(axis=axes)


def calibrate_percentile(x, percentile=99.99, *, axis=None):
    """(lo, hi) at the (100 − p)-th and p-th percentiles: rare outliers no longer set the scale."""
    xp = get_array_module(x)
    if not 50.0 < percentile <= 100.0:
        raise ValueError(f"calibrate_percentile: percentile must be in (50, 100], got {percentile}")
    axes = _reduce_axes(x, axis)
    return xp.percentile(x, 100.0 - percentile, axis=axes), xp.percentile(x, percentile, axis=axes)


def _check_params(op, x, scale, zero_point, axis):
    check_float(op, "x", x)
    s_ndim = getattr(scale, "ndim", 0)
    want = () if axis is None else (x.shape[axis],)
    if tuple(getattr(scale, "shape", ())) != want or tuple(np.shape(zero_point)) not in (want, ()):
        raise ValueError(f"{op}: expected scale and zero_point of shape {want} (axis={axis}, x of shape "
                         f"{tuple(x.shape)}), got {tuple(getattr(scale, 'shape', ()))} and "
                         f"{tuple(np.shape(zero_point))}")
    if s_ndim and np.any(np.asarray(scale) <= 0) or not s_ndim and float(scale) <= 0:
        raise ValueError(f"{op}: scale must be positive")


def quantize(x, scale, zero_point, *, qmin=-128, qmax=127, axis=None, dtype=np.int8):
    """q = clip(round(x/s) + z, q_min, q_max) as integers (round half to even, as NumPy and PyTorch)."""
    _check_params("quantize", x, scale, zero_point, axis)
    xp = get_array_module(x)
    s, z = _along(scale, x.ndim, axis), _along(np.asarray(zero_point), x.ndim, axis)
    return xp.clip(xp.round(x / s) + z, qmin, qmax).astype(dtype)


def dequantize(q, scale, zero_point, *, axis=None, dtype=np.float32):
    """x̂ = (q − z)·s, computed in float (the integer difference first, so it is exact)."""
    s, z = _along(np.asarray(scale), q.ndim, axis), _along(np.asarray(zero_point), q.ndim, axis)
    return ((q.astype(np.int32) - z).astype(dtype) * s).astype(dtype)


def rounding_residual(x, scale, *, axis=None):
    """δ = round(x/s) − x/s ∈ [−½, ½]: what rounding adds (``fake_quant``'s ``residual``)."""
    u = x / _along(scale, x.ndim, axis)
    return get_array_module(x).round(u) - u


class FakeQuantCache(NamedTuple):
    inside: object  # (x.shape) bool: the clip passes the value through
    delta: object  # (x.shape) the rounding residual δ
    q_minus_z: object  # (x.shape) q − z, the integer code relative to the zero point
    scale: object  # () or (C,)
    axis: object  # None or the channel axis
    y_shape: tuple
    dtype: object


# start-fake-quant
def fake_quant(x, scale, zero_point, *, qmin=-128, qmax=127, axis=None, residual=None):
    """x̂ = (clip(round(x/s) + z, q_min, q_max) − z)·s: quantise and dequantise, in float.

    x any shape, scale float () or (C,) along ``axis``, zero_point int () or (C,) → x̂ like x.
    The rounding is written round(u) = u + δ with δ = round(u) − u; ``residual`` gives δ instead
    of computing it (frozen rounding: then the forward is smooth in x and s, which is what the
    gradient checks use). Backward, the straight-through estimator (δ held constant):
    dx = dy ⊙ [q_min ≤ u + δ + z ≤ q_max], ds = Σ dy ⊙ (δ inside, q_min − z or q_max − z where clipped).
    See chapters/34-quantization.md#eq-ste.
    """
    _check_params("fake_quant", x, scale, zero_point, axis)
    xp = get_array_module(x)
    s = _along(scale, x.ndim, axis)
    z = _along(xp.asarray(zero_point, dtype=x.dtype), x.ndim, axis)
    u = x / s  # the value in units of the step
    r = xp.round(u) if residual is None else u + residual  # round(u) = u + δ (given δ: frozen rounding)
    v = r + z  # the unclipped integer code
    q = xp.clip(v, qmin, qmax)  # the integer code, as a float
    y = (q - z) * s  # dequantised
    inside = (v >= qmin) & (v <= qmax)  # (x.shape) where the clip passes v through
    delta = r - u  # δ ∈ [−½, ½]: held constant by the backward (the STE)
    return y.astype(x.dtype), FakeQuantCache(inside, delta, q - z, scale, axis, y.shape, x.dtype)


def fake_quant_backward(dy, cache):
    """dx, dscale of ``fake_quant`` under the STE (zero_point is an integer: no gradient)."""
    inside, delta, q_minus_z, scale, axis, y_shape, dtype = cache
    check_grad("fake_quant_backward", "dy", dy, y_shape, dtype)
    xp = get_array_module(dy)
    dx = dy * inside  # ∂x̂/∂x = 1 inside the range (STE: round passes the gradient), 0 where clipped
    # ∂x̂/∂s = δ inside (from s·(x/s + δ) = x + s·δ), q − z where clipped (x̂ = s·(q_clip − z))
    ds_elem = dy * xp.where(inside, delta, q_minus_z)
    ds = ds_elem.sum(axis=_reduce_axes(dy, axis)) if axis is not None else ds_elem.sum()
    ds_dtype = scale.dtype if hasattr(scale, "dtype") else dtype
    return dx, xp.asarray(ds, dtype=ds_dtype).reshape(np.shape(scale))
# end-fake-quant
