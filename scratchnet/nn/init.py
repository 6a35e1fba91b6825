"""Weight initialisers. Each takes a shape, an explicit ``rng`` and a dtype, and returns an array.

Fans: a linear weight (D_in, D_out) has fan_in = D_in, fan_out = D_out; a conv weight
(C_out, C_in/groups, KH, KW) has fan_in = C_in/groups·KH·KW, fan_out = C_out·KH·KW.
"""
from __future__ import annotations

import math

import numpy as np

from .._random import get_rng

__all__ = ["fans", "uniform", "normal", "zeros", "ones", "glorot_uniform", "glorot_normal",
           "he_uniform", "he_normal", "lecun_uniform", "lecun_normal", "orthogonal",
           "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal"]


def fans(shape, layout="linear"):
    """(fan_in, fan_out) of a weight; ``layout`` is 'linear' (D_in, D_out) or 'conv' (C_out, C_in, kh, kw)."""
    shape = tuple(shape)
    if len(shape) == 1:
        return shape[0], shape[0]
    if layout == "linear" and len(shape) == 2:
        return shape[0], shape[1]
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def uniform(shape, low, high, *, rng=None, dtype=np.float32):
    return get_rng(rng).uniform(low, high, size=shape).astype(dtype)


def normal(shape, std, *, rng=None, dtype=np.float32):
    return (get_rng(rng).standard_normal(shape) * std).astype(dtype)


def zeros(shape, *, dtype=np.float32):
    return np.zeros(shape, dtype=dtype)


def ones(shape, *, dtype=np.float32):
    return np.ones(shape, dtype=dtype)


def glorot_uniform(shape, *, layout="linear", gain=1.0, rng=None, dtype=np.float32):
    """U(−a, a), a = gain·√(6/(fan_in + fan_out)) (Glorot & Bengio 2010)."""
    fi, fo = fans(shape, layout)
    a = gain * math.sqrt(6.0 / (fi + fo))
    return uniform(shape, -a, a, rng=rng, dtype=dtype)


def glorot_normal(shape, *, layout="linear", gain=1.0, rng=None, dtype=np.float32):
    """N(0, std²), std = gain·√(2/(fan_in + fan_out))."""
    fi, fo = fans(shape, layout)
    return normal(shape, gain * math.sqrt(2.0 / (fi + fo)), rng=rng, dtype=dtype)


def he_uniform(shape, *, layout="linear", rng=None, dtype=np.float32):
    """U(−a, a), a = √(6/fan_in): keeps ReLU activations' variance (He et al. 2015)."""
    fi, _ = fans(shape, layout)
    a = math.sqrt(6.0 / fi)
    return uniform(shape, -a, a, rng=rng, dtype=dtype)


def he_normal(shape, *, layout="linear", rng=None, dtype=np.float32):
    """N(0, 2/fan_in)."""
    fi, _ = fans(shape, layout)
    return normal(shape, math.sqrt(2.0 / fi), rng=rng, dtype=dtype)


def lecun_uniform(shape, *, layout="linear", rng=None, dtype=np.float32):
    """U(−a, a), a = √(3/fan_in) (LeCun et al. 1998, "Efficient BackProp")."""
    fi, _ = fans(shape, layout)
    a = math.sqrt(3.0 / fi)
    return uniform(shape, -a, a, rng=rng, dtype=dtype)


def lecun_normal(shape, *, layout="linear", rng=None, dtype=np.float32):
    """N(0, 1/fan_in)."""
    fi, _ = fans(shape, layout)
    return normal(shape, math.sqrt(1.0 / fi), rng=rng, dtype=dtype)


def orthogonal(shape, *, gain=1.0, rng=None, dtype=np.float32):
    """A (semi-)orthogonal matrix from the QR of a Gaussian matrix (Saxe et al. 2014); trailing axes flattened."""
    rows, cols = shape[0], int(np.prod(shape[1:]))
    a = get_rng(rng).standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))  # make the decomposition unique
    q = q if rows >= cols else q.T
    return (gain * q[:rows, :cols]).reshape(shape).astype(dtype)


# PyTorch's names for the same initialisers
xavier_uniform, xavier_normal = glorot_uniform, glorot_normal
kaiming_uniform, kaiming_normal = he_uniform, he_normal
