"""EfficientNet (Tan & Le 2019, "EfficientNet: rethinking model scaling for convolutional neural
networks"): MBConv blocks with squeeze-and-excitation and stochastic depth, and compound scaling.

Legend: N batch, C channels, E expanded channels (C·t), R squeezed channels of SE, H, W spatial
size, k kernel, t expansion ratio, φ compound coefficient; d, w, r depth, width, resolution multipliers.

An MBConv block computes u = SiLU(BN(W_e x)) (the 1×1 expansion, absent when t = 1), v = SiLU(BN(W_d ⊛ u))
(depthwise k×k, stride here), g = SE(v) (a channel gate computed from v itself), f = BN(W_p g) (the 1×1
projection, *no* activation), and y = x + drop_path(f) when the shape is kept, else y = f. The SE block's
gate is computed from the map it scales, so its backward sums two paths:
dv = dy·s + ∂(pool, reduce, SiLU, expand, sigmoid)ᵀ ds. See chapters/13-efficientnet.md#eq-se-backward.

``EfficientNet.from_phi(φ)``: depth ×α^φ (repeats rounded up), width ×β^φ (channels rounded to a
multiple of 4), resolution 28·γ^φ (the images are resized in the data preparation, ``make_prepare``).
"""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .._random import get_rng
from ..data.augment import resize_bilinear
from ..nn.conv import Conv2d, GlobalAvgPool2d
from ..nn.layers import BatchNorm2d, Dropout, DropPath, Linear, Sigmoid, SiLU
from ..nn.module import Module, Sequential
from .alexnet import make_prepare as _base_prepare

__all__ = ["SqueezeExcite", "MBConv", "EfficientNet", "BASE_STAGES", "round_channels", "round_repeats",
           "compound_multipliers", "scaled_resolution", "resize_bilinear", "make_prepare"]

ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15  # the paper's grid-searched depth, width, resolution bases (α·β²·γ² ≈ 1.92)

# the 28×28 baseline ("B0" for Fashion-MNIST): (expansion t, channels, repeats, stride, kernel) per stage
BASE_STAGES = ((1, 16, 1, 2, 3), (4, 24, 2, 1, 3), (4, 40, 2, 2, 5), (4, 64, 1, 1, 3))
BASE_STEM, BASE_HEAD, BASE_RESOLUTION = 16, 192, 28


def round_channels(channels, width=1.0, divisor=4):
    """Channels × width rounded to the nearest multiple of ``divisor``, never below 90 % of the product."""
    c = channels * width
    new = max(divisor, int(c + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * c else new


def round_repeats(repeats, depth=1.0):
    """Layer repeats × depth, rounded up (the paper's ceil)."""
    return int(math.ceil(repeats * depth - 1e-9))  # the tolerance keeps 2 × 2.5000000000000004 at 5


def compound_multipliers(phi, alpha=ALPHA, beta=BETA, gamma=GAMMA):
    """(depth, width, resolution) multipliers α^φ, β^φ, γ^φ. See chapters/13-efficientnet.md#eq-compound."""
    return alpha ** phi, beta ** phi, gamma ** phi


def scaled_resolution(resolution_mult, base=BASE_RESOLUTION):
    """The input side for a resolution multiplier: round(base · r)."""
    return int(round(base * resolution_mult))



def make_prepare(resolution=BASE_RESOLUTION, *, augment_data=True, padding=2, flip=True, rng=None,
                 dtype=np.float32):
    """``fit(prepare=...)``: standardise (and crop/flip when training) at 28×28, then resize to ``resolution``."""
    base = _base_prepare(augment_data=augment_data, padding=padding, flip=flip, rng=rng, dtype=dtype)

    def prepare(xb, yb, training):
        x, yb = base(xb, yb, training)
        return resize_bilinear(x, resolution), yb

    return prepare


def _conv_bn(cin, cout, k, stride, groups, rng, dtype, act=True):
    """[conv k×k (no bias), BN, SiLU] — or without the SiLU (the projection)."""
    layers = [Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False, init="he", rng=rng,
                     dtype=dtype), BatchNorm2d(cout, dtype=dtype)]
    return layers + [SiLU()] if act else layers


class SqueezeExcite(Module):
    """y = x · σ(W_2 SiLU(W_1 pool(x) + b_1) + b_2)[:, :, None, None]: (N, C, H, W) → (N, C, H, W)."""

    def __init__(self, channels, squeezed, *, rng=None, dtype=np.float32):
        super().__init__()
        rng = get_rng(rng)
        self.channels, self.squeezed = channels, squeezed
        self.pool = GlobalAvgPool2d()
        self.reduce = Linear(channels, squeezed, rng=rng, dtype=dtype)
        self.act = SiLU()
        self.expand = Linear(squeezed, channels, rng=rng, dtype=dtype)
        self.gate = Sigmoid()

    # start-se
    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"SqueezeExcite: expected input (N, {self.channels}, H, W), got shape {tuple(x.shape)}")
        p = self.pool(x)  # squeeze: (N, C), the mean of each map
        a = self.act(self.reduce(p))  # (N, R)
        s = self.gate(self.expand(a))  # excitation: (N, C) gates in (0, 1)
        y, cache = F.scale_channels(x, s)  # y = x · s
        self.push(cache)
        return y

    def backward(self, dy):
        dx_direct, ds = F.scale_channels_backward(dy, self.pop())  # dx = dy·s, ds = Σ_hw dy·x
        de = self.gate.backward(ds)  # de = ds · s(1 − s)
        da = self.expand.backward(de)  # da = de W_2ᵀ  (dW_2, db_2 added)
        dz = self.act.backward(da)  # SiLU'
        dp = self.reduce.backward(dz)  # dp = dz W_1ᵀ
        dx_gate = self.pool.backward(dp)  # spread dp / (H·W) over each map
        return dx_direct + dx_gate  # x fed the product and the gate: the two paths add
    # end-se

    def extra_repr(self):
        return f"{self.channels}, squeezed={self.squeezed}"


class MBConv(Module):
    """Inverted residual: expand 1×1 → depthwise k×k → SE → project 1×1 (+ skip).

    (N, C_in, H, W) → (N, C_out, H/s, W/s).

    ``expand_ratio`` t (1: no expansion conv), ``se_ratio`` (SE width = C_in · se_ratio; 0: no SE),
    ``drop_rate`` the stochastic-depth probability of the residual branch (only with a skip).
    """

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, expand_ratio=6, *, se_ratio=0.25,
                 drop_rate=0.0, rng=None, dtype=np.float32):
        super().__init__()
        rng = get_rng(rng)
        E = in_channels * expand_ratio
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.kernel_size, self.expand_ratio, self.drop_rate = kernel_size, expand_ratio, drop_rate
        self.expand = Sequential(*_conv_bn(in_channels, E, 1, 1, 1, rng, dtype)) if expand_ratio != 1 else None
        self.depthwise = Sequential(*_conv_bn(E, E, kernel_size, stride, E, rng, dtype))  # groups = E
        self.se = SqueezeExcite(E, max(1, int(in_channels * se_ratio)), rng=rng, dtype=dtype) if se_ratio else None
        self.project = Sequential(*_conv_bn(E, out_channels, 1, 1, 1, rng, dtype, act=False))
        self.skip = stride == 1 and in_channels == out_channels
        self.drop = DropPath(drop_rate, rng=rng) if self.skip else None

    # start-mbconv
    def forward(self, x, drop_mask=None):
        """``drop_mask`` (N,), scaled keep values, overrides the block's generator (gradchecks)."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"MBConv: expected input (N, {self.in_channels}, H, W), got shape {tuple(x.shape)}")
        u = self.expand(x) if self.expand is not None else x  # (N, E, H, W)
        v = self.depthwise(u)  # (N, E, H/s, W/s)
        g = self.se(v) if self.se is not None else v  # channel-gated v
        f = self.project(g)  # (N, C_out, H/s, W/s): linear bottleneck, no activation
        if not self.skip:
            return f
        return x + self.drop(f, mask=drop_mask)  # stochastic depth on the branch, identity skip

    def backward(self, dy):
        df = self.drop.backward(dy) if self.skip else dy  # dropped samples get df = 0
        dg = self.project.backward(df)  # BN, then W_pᵀ
        dv = self.se.backward(dg) if self.se is not None else dg  # both SE paths
        du = self.depthwise.backward(dv)  # SiLU', BN, depthwise W_dᵀ
        dx = self.expand.backward(du) if self.expand is not None else du  # SiLU', BN, W_eᵀ
        return dx + dy if self.skip else dx  # the identity hands dy to x unchanged
    # end-mbconv

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, k={self.kernel_size}, stride={self.stride}, "
                f"t={self.expand_ratio}, skip={self.skip}, drop={self.drop_rate:g}")


class EfficientNet(Module):
    """Stem → MBConv stages → 1×1 head → global pool → dropout → linear: (N, 1, S, S) → (N, num_classes).

    ``width``, ``depth`` scale channels and repeats of ``stages`` (rounded); ``resolution`` is the
    input side the model is meant for (the data preparation resizes to it; the layers accept any size).
    ``drop_connect`` is the stochastic-depth rate of the last block, rising linearly from 0.
    """

    def __init__(self, num_classes=10, *, width=1.0, depth=1.0, resolution=BASE_RESOLUTION, stages=BASE_STAGES,
                 stem=BASE_STEM, head=BASE_HEAD, in_channels=1, se_ratio=0.25, dropout=0.2, drop_connect=0.1,
                 rng=None, dtype=np.float32):
        super().__init__()
        rng = get_rng(rng)
        self.width, self.depth, self.resolution, self.in_channels = width, depth, resolution, in_channels
        self.stem_channels = cin = round_channels(stem, width)
        self.stem = Sequential(*_conv_bn(in_channels, cin, 3, 1, 1, rng, dtype))
        plan = [(t, round_channels(c, width), s if i == 0 else 1, k)
                for t, c, n, s, k in stages for i in range(round_repeats(n, depth))]
        self.blocks = []
        for b, (t, cout, s, k) in enumerate(plan):
            p = drop_connect * b / len(plan)  # linearly increasing stochastic depth
            self.blocks.append(MBConv(cin, cout, k, s, t, se_ratio=se_ratio, drop_rate=p, rng=rng, dtype=dtype))
            cin = cout
        self.head_channels = round_channels(head, width)
        self.head = Sequential(*_conv_bn(cin, self.head_channels, 1, 1, 1, rng, dtype))
        self.pool = GlobalAvgPool2d()
        self.dropout = Dropout(dropout, rng=rng)
        self.fc = Linear(self.head_channels, num_classes, rng=rng, dtype=dtype)

    @classmethod
    def from_phi(cls, phi, num_classes=10, *, alpha=ALPHA, beta=BETA, gamma=GAMMA, **kwargs):
        """The compound-scaled member φ: depth α^φ, width β^φ, resolution round(28 γ^φ)."""
        d, w, r = compound_multipliers(phi, alpha, beta, gamma)
        return cls(num_classes, width=w, depth=d, resolution=scaled_resolution(r), **kwargs)

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"EfficientNet: expected input (N, {self.in_channels}, H, W), got shape "
                             f"{tuple(x.shape)}")
        h = self.stem(x)
        for blk in self.blocks:
            h = blk(h)
        return self.fc(self.dropout(self.pool(self.head(h))))

    # start-efficientnet-backward
    def backward(self, dy):
        dh = self.head.backward(self.pool.backward(self.dropout.backward(self.fc.backward(dy))))
        for blk in reversed(self.blocks):  # every block's hand-written backward, last block first
            dh = blk.backward(dh)
        return self.stem.backward(dh)
    # end-efficientnet-backward

    def config(self):
        return {"class": "EfficientNet", "width": self.width, "depth": self.depth, "resolution": self.resolution,
                "blocks": len(self.blocks)}

    def extra_repr(self):
        return (f"width={self.width:.3g}, depth={self.depth:.3g}, resolution={self.resolution}, "
                f"blocks={len(self.blocks)}")
