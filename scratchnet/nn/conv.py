"""Convolution, pooling and LRN layers over ``functional/conv.py`` and ``functional/pool.py``.

Legend: N batch, C channels, H, W spatial size, KH, KW kernel. Weights follow PyTorch's layouts:
Conv2d (C_out, C_in/groups, KH, KW), ConvTranspose2d (C_in, C_out/groups, KH, KW).
"""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .._random import get_rng
from ..functional.conv import _pair
from . import init
from .layers import _Stateless
from .module import Module, Parameter

__all__ = ["Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d", "LocalResponseNorm"]


def _conv_params(shape, fan_in, bias, init_name, rng, dtype):
    """Weight and bias: 'pytorch' = U(±1/√fan_in) for both (kaiming_uniform(a=√5)), 'he' = N(0, 2/fan_in), zero bias."""
    rng = get_rng(rng)
    if init_name == "pytorch":
        bound = 1.0 / math.sqrt(fan_in)
        w = init.uniform(shape, -bound, bound, rng=rng, dtype=dtype)
        b = init.uniform((bias,), -bound, bound, rng=rng, dtype=dtype) if bias else None
    elif init_name == "he":
        w = init.normal(shape, math.sqrt(2.0 / fan_in), rng=rng, dtype=dtype)
        b = np.zeros(bias, dtype) if bias else None
    else:
        raise ValueError(f"conv init must be 'pytorch' or 'he', got {init_name!r}")
    return Parameter(w), (Parameter(b) if b is not None else None)


class _ConvBase(Module):
    """Shared forward/backward of Conv2d and ConvTranspose2d: F.<op>, push, pop, accumulate."""
    _fn = _bwd = None

    def forward(self, x):
        y, cache = type(self)._fn(x, self.weight.data, None if self.bias is None else self.bias.data, **self.opts)
        self.push(cache)
        return y

    def backward(self, dy):
        dx, dw, db = type(self)._bwd(dy, self.pop())
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
        return dx

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                + ", ".join(f"{k}={v}" for k, v in self.opts.items()) + f", bias={self.bias is not None}")


class Conv2d(_ConvBase):
    """2-D convolution (cross-correlation) with weight (C_out, C_in/groups, KH, KW); init 'pytorch' or 'he'."""
    _fn, _bwd = staticmethod(F.conv2d), staticmethod(F.conv2d_backward)

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, *, init="pytorch", rng=None, dtype=np.float32):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: in_channels {in_channels} and out_channels {out_channels} must be "
                             f"divisible by groups={groups}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair("Conv2d", "kernel_size", kernel_size)
        self.opts = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight, self.bias = _conv_params(shape, shape[1] * shape[2] * shape[3], out_channels if bias else 0,
                                              init, rng, dtype)


class ConvTranspose2d(_ConvBase):
    """Transposed convolution (the adjoint of Conv2d), weight (C_in, C_out/groups, KH, KW)."""
    _fn, _bwd = staticmethod(F.conv_transpose2d), staticmethod(F.conv_transpose2d_backward)

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 groups=1, bias=True, dilation=1, *, init="pytorch", rng=None, dtype=np.float32):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"ConvTranspose2d: in_channels {in_channels} and out_channels {out_channels} "
                             f"must be divisible by groups={groups}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair("ConvTranspose2d", "kernel_size", kernel_size)
        self.opts = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups,
                         dilation=dilation)
        shape = (in_channels, out_channels // groups) + self.kernel_size
        # PyTorch computes the fan from weight.shape[1]·KH·KW here too
        self.weight, self.bias = _conv_params(shape, shape[1] * shape[2] * shape[3], out_channels if bias else 0,
                                              init, rng, dtype)


class MaxPool2d(_Stateless):
    """Max over KH×KW windows (stride defaults to the window)."""
    _fn, _bwd = staticmethod(F.max_pool2d), staticmethod(F.max_pool2d_backward)

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__(kernel_size=kernel_size, stride=stride, padding=padding)


class AvgPool2d(_Stateless):
    """Mean over KH×KW windows; ``count_include_pad`` as PyTorch."""
    _fn, _bwd = staticmethod(F.avg_pool2d), staticmethod(F.avg_pool2d_backward)

    def __init__(self, kernel_size, stride=None, padding=0, count_include_pad=True):
        super().__init__(kernel_size=kernel_size, stride=stride, padding=padding,
                         count_include_pad=count_include_pad)


class GlobalAvgPool2d(_Stateless):
    """(N, C, H, W) → (N, C): the mean of each feature map."""
    _fn, _bwd = staticmethod(F.global_avg_pool2d), staticmethod(F.global_avg_pool2d_backward)


class LocalResponseNorm(_Stateless):
    """Across-channel normalisation y_c = x_c / (k + α/size Σ_window x²)^β (AlexNet, PyTorch's formula)."""
    _fn, _bwd = staticmethod(F.local_response_norm), staticmethod(F.local_response_norm_backward)

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=2.0):
        super().__init__(size=size, alpha=alpha, beta=beta, k=k)
