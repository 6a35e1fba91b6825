"""Gradient-check cases of the convolutional family: conv2d, conv_transpose2d, pooling, LRN, LeNet-5.

Float64, small shapes; pooling inputs are a random permutation of distinct values (no ties).
"""
from __future__ import annotations

import numpy as np

from ... import functional as F
from ..checker import check_function, check_module
from ..registry import register_case

# (x shape, C_out, kernel, options): every option that changes the math, odd and non-square sizes
CONV_CONFIGS = [
    ((2, 3, 7, 6), 4, (3, 3), dict()),
    ((2, 3, 7, 6), 4, (3, 2), dict(stride=2, padding=1)),
    ((1, 2, 9, 8), 3, (2, 3), dict(stride=(2, 3), padding=(2, 1), dilation=(2, 1))),
    ((2, 4, 6, 5), 6, (3, 3), dict(padding=1, groups=2)),
    ((2, 4, 5, 7), 4, (3, 3), dict(stride=2, padding=1, groups=4)),  # depthwise
    ((1, 2, 3, 2), 3, (3, 3), dict(padding=3)),  # padding large relative to the input
    ((2, 3, 5, 5), 2, (1, 1), dict()),  # pointwise
    ((2, 3, 8, 7), 4, (3, 2), dict(padding=(2, 1), dilation=2)),  # stride 1, dilated, uneven padding
]

TRANSPOSE_CONFIGS = [
    ((2, 3, 4, 5), 4, (3, 3), dict()),
    ((2, 4, 3, 4), 2, (3, 2), dict(stride=2, padding=1, output_padding=1)),
    ((1, 2, 4, 3), 3, (2, 3), dict(stride=(2, 3), padding=(1, 0), dilation=(2, 1), output_padding=(1, 2))),
    ((2, 4, 3, 3), 6, (3, 3), dict(stride=2, groups=2)),
    ((2, 4, 3, 4), 4, (3, 3), dict(padding=1, groups=4)),  # depthwise
]

POOL_CONFIGS = [
    ((2, 3, 6, 6), dict(kernel_size=2)),
    ((2, 2, 7, 5), dict(kernel_size=3, stride=2, padding=1)),
    ((1, 3, 5, 6), dict(kernel_size=(3, 2), stride=(1, 2), padding=(1, 1))),
    ((2, 2, 5, 5), dict(kernel_size=3, stride=1)),  # overlapping windows
]


def _rng():
    return np.random.default_rng(4321)


def conv_inputs(xs, C_out, k, opts, r, bias=True):
    """x, w, b for conv2d with the given config."""
    G = opts.get("groups", 1)
    return [r.standard_normal(xs), r.standard_normal((C_out, xs[1] // G) + tuple(k)),
            r.standard_normal(C_out) if bias else None]


def transpose_inputs(xs, C_out, k, opts, r, bias=True):
    """x, w, b for conv_transpose2d (w is (C_in, C_out/G, KH, KW))."""
    G = opts.get("groups", 1)
    return [r.standard_normal(xs), r.standard_normal((xs[1], C_out // G) + tuple(k)),
            r.standard_normal(C_out) if bias else None]


def distinct(shape, r):
    """A random permutation of distinct, well-separated values: pooling without ties."""
    return (r.permutation(int(np.prod(shape))).reshape(shape) / 3.0 - 1.0).astype(np.float64)


@register_case("conv.conv2d")
def conv2d_cases():
    r = _rng()
    return [check_function(F.conv2d, F.conv2d_backward, conv_inputs(xs, co, k, o, r), title=f"conv2d{o}", **o)
            for xs, co, k, o in CONV_CONFIGS]


@register_case("conv.conv2d[no bias]")
def conv2d_nobias_case():
    r = _rng()
    xs, co, k, o = CONV_CONFIGS[1]
    return check_function(F.conv2d, F.conv2d_backward, conv_inputs(xs, co, k, o, r, bias=False),
                          title="conv2d[no bias]", **o)


@register_case("conv.conv2d[winograd]")
def conv2d_winograd_cases():
    """3×3 stride-1 layers with enough channels (8 → 16) take the Winograd route on the Numba path
    (``kernels/winograd.py``): odd sizes, padding 1 and 2."""
    r = _rng()
    return [check_function(F.conv2d, F.conv2d_backward, conv_inputs(xs, 16, (3, 3), o, r), title=f"conv2d[winograd]{o}",
                           **o) for xs, o in [((2, 8, 6, 7), dict(padding=1)), ((1, 8, 5, 4), dict(padding=2))]]


@register_case("conv.conv_transpose2d")
def conv_transpose2d_cases():
    r = _rng()
    return [check_function(F.conv_transpose2d, F.conv_transpose2d_backward, transpose_inputs(xs, co, k, o, r),
                           title=f"conv_transpose2d{o}", **o)
            for xs, co, k, o in TRANSPOSE_CONFIGS]


@register_case("conv.max_pool2d")
def max_pool_cases():
    r = _rng()
    return [check_function(F.max_pool2d, F.max_pool2d_backward, [distinct(xs, r)], title=f"max_pool2d{o}", **o)
            for xs, o in POOL_CONFIGS]


@register_case("conv.avg_pool2d")
def avg_pool_cases():
    r = _rng()
    return [check_function(F.avg_pool2d, F.avg_pool2d_backward, [r.standard_normal(xs)],
                           title=f"avg_pool2d{o}, count_include_pad={c}", count_include_pad=c, **o)
            for xs, o in POOL_CONFIGS for c in (True, False)]


@register_case("conv.global_avg_pool2d")
def global_avg_pool_case():
    r = _rng()
    return check_function(F.global_avg_pool2d, F.global_avg_pool2d_backward, [r.standard_normal((2, 3, 4, 5))],
                          title="global_avg_pool2d")


@register_case("conv.local_response_norm")
def lrn_cases():
    r = _rng()
    return [check_function(F.local_response_norm, F.local_response_norm_backward, [r.standard_normal((2, 7, 3, 2))],
                           title=f"local_response_norm[size={s}]", size=s, alpha=0.5, beta=0.75, k=1.0)
            for s in (1, 2, 5)]


@register_case("conv.lenet5")
def lenet_cases():
    from ...models.lenet import LeNet5, LeNet5Modern
    out = []
    for cls in (LeNet5, LeNet5Modern):
        model = cls(rng=0).astype(np.float64)
        x = _rng().standard_normal((2, 1, 32, 32))
        out.append(check_module(model, x, fast=True))
    return out
