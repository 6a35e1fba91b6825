"""MobileNets (Howard et al. 2017, "MobileNets: efficient convolutional neural networks for mobile
vision applications") and MobileNetV2 (Sandler et al. 2018, "MobileNetV2: inverted residuals and
linear bottlenecks"), scaled for 28×28 images, and the standard-conv network they are compared with.

Legend: N batch, C channels (C_in, C_out), E = t·C_in expanded channels, H, W spatial size, K = 3
kernel size, α width multiplier, ρ resolution multiplier, t expansion ratio.

A depthwise-separable block factors a K×K conv into a depthwise K×K conv (``groups=C_in``: each
channel filtered alone) and a 1×1 pointwise conv that mixes channels, each followed by BN and ReLU:
its mult-adds are H·W·C_in·(K² + C_out) instead of H·W·C_in·C_out·K², the fraction 1/C_out + 1/K².
The inverted residual (V2) expands C_in → E = t·C_in by a 1×1 conv (BN, ReLU6), filters depthwise
(BN, ReLU6) and projects E → C_out by a 1×1 conv with BN and *no* activation (the linear bottleneck);
y = x + f(x) when stride 1 and C_in = C_out. Backward is written by hand in the reverse order of
forward. See chapters/12-mobilenet.md#eq-dws-backward and #eq-ir-backward.
"""
from __future__ import annotations

import numpy as np

from .._random import get_rng
from ..data.augment import resize_bilinear
from ..nn.conv import Conv2d, GlobalAvgPool2d
from ..nn.layers import BatchNorm2d, Linear, ReLU, ReLU6
from ..nn.module import Module

__all__ = ["DepthwiseSeparable", "StandardConvBlock", "InvertedResidual", "MobileNet", "MobileNetV2",
           "V1_BLOCKS", "V2_STAGES", "width_channels", "scale_resolution", "separable_cost_ratio"]

# the 28×28 V1: (C_out, stride) per depthwise-separable block after a 3×3 stem of 32 channels (stride 1).
# The paper's 224×224 network halves the resolution five times (to 7×7); here the first block halves
# 28×28 to 14×14 and the third to 7×7, with the paper's channel doubling at each halving
V1_STEM, V1_BLOCKS = 32, ((64, 2), (128, 1), (256, 2), (256, 1), (256, 1))
# the 28×28 V2: (expansion t, C_out, repeats n, stride s) per stage, the first block of a stage strides;
# t = None takes the model's expansion (the paper's 6); a 1×1 head conv widens to 256 before pooling
V2_STEM, V2_STAGES, V2_HEAD = 16, ((1, 16, 1, 2), (None, 24, 2, 1), (None, 48, 2, 2), (None, 96, 2, 1)), 256


def width_channels(c, alpha, minimum=8):
    """α·c rounded to an int, never below ``minimum`` (the width multiplier of section 3.3)."""
    return max(minimum, int(round(c * alpha)))


def separable_cost_ratio(c_out, k=3):
    """Mult-adds of a depthwise-separable pair over a full k×k conv: 1/C_out + 1/k². See #eq-dws-ratio."""
    return 1.0 / c_out + 1.0 / (k * k)



def scale_resolution(x, rho, *, mode="resize"):
    """The resolution multiplier ρ: x (N, C, H, W) → (N, C, round(ρH), round(ρW)).

    ``mode="resize"`` interpolates bilinearly (the paper's reduced input resolution); ``"crop"`` keeps
    the central window (for Fashion-MNIST the border is background). See chapters/12-mobilenet.md#resolution.
    """
    if rho <= 0:
        raise ValueError(f"scale_resolution: ρ must be positive, got {rho}")
    H, W = x.shape[2:]
    oh, ow = max(1, int(round(rho * H))), max(1, int(round(rho * W)))
    if mode == "crop":
        if oh > H or ow > W:
            raise ValueError(f"scale_resolution: cannot crop {H}×{W} to {oh}×{ow} (ρ = {rho} > 1)")
        top, left = (H - oh) // 2, (W - ow) // 2
        return np.ascontiguousarray(x[:, :, top:top + oh, left:left + ow])
    if mode != "resize":
        raise ValueError(f"scale_resolution: mode must be 'resize' or 'crop', got {mode!r}")
    return resize_bilinear(x, (oh, ow))  # (N, C, OH, OW)


def _check(block, x):
    if x.ndim != 4 or x.shape[1] != block.in_channels:
        raise ValueError(f"{type(block).__name__}: expected input (N, {block.in_channels}, H, W), got shape "
                         f"{tuple(x.shape)}")


class DepthwiseSeparable(Module):
    """Depthwise 3×3 (stride here) → BN → ReLU → pointwise 1×1 → BN → ReLU: (N, C_in, H, W) → (N, C_out, H/s, W/s)."""

    def __init__(self, in_channels, out_channels, stride=1, *, rng=None, dtype=np.float32):
        super().__init__()
        rng = get_rng(rng)
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.dw = Conv2d(in_channels, in_channels, 3, stride=stride, padding=1, groups=in_channels, bias=False,
                         init="he", rng=rng, dtype=dtype)
        self.bn1, self.relu1 = BatchNorm2d(in_channels, dtype=dtype), ReLU()
        self.pw = Conv2d(in_channels, out_channels, 1, bias=False, init="he", rng=rng, dtype=dtype)
        self.bn2, self.relu2 = BatchNorm2d(out_channels, dtype=dtype), ReLU()

    # start-dws-forward
    def forward(self, x):
        _check(self, x)
        u = self.dw(x)  # depthwise: u[n, c] = w_c ⋆ x[n, c], (N, C_in, H/s, W/s)
        h = self.relu1(self.bn1(u))  # (N, C_in, H/s, W/s)
        v = self.pw(h)  # pointwise: v[n, o] = Σ_c P[o, c] h[n, c], (N, C_out, H/s, W/s)
        return self.relu2(self.bn2(v))

    def backward(self, dy):
        da2 = self.relu2.backward(dy)  # through the last ReLU: dy ⊙ [a2 > 0]
        dv = self.bn2.backward(da2)  # through BN (adds dγ, dβ)
        dh = self.pw.backward(dv)  # pointwise: dh = Pᵀ dv at every pixel (adds dP = Σ dv hᵀ)
        da1 = self.relu1.backward(dh)  # through the first ReLU
        du = self.bn1.backward(da1)  # through BN
        return self.dw.backward(du)  # depthwise: each channel's full correlation with its own filter
    # end-dws-forward

    def extra_repr(self):
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


class StandardConvBlock(Module):
    """The pair's standard twin: a full 3×3 conv (stride here) → BN → ReLU, same C_in, C_out and stride."""

    def __init__(self, in_channels, out_channels, stride=1, *, rng=None, dtype=np.float32):
        super().__init__()
        rng = get_rng(rng)
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.conv = Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False, init="he",
                           rng=rng, dtype=dtype)
        self.bn, self.relu = BatchNorm2d(out_channels, dtype=dtype), ReLU()

    def forward(self, x):
        _check(self, x)
        return self.relu(self.bn(self.conv(x)))

    def backward(self, dy):
        da = self.relu.backward(dy)  # through the ReLU
        dv = self.bn.backward(da)  # through BN
        return self.conv.backward(dv)  # through the full 3×3 conv

    def extra_repr(self):
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


class InvertedResidual(Module):
    """MobileNetV2's block: 1×1 expand to E = t·C_in → BN → ReLU6 → depthwise 3×3 (stride) → BN → ReLU6 →
    1×1 project to C_out → BN (linear); plus x when stride 1 and C_in = C_out."""

    def __init__(self, in_channels, out_channels, stride=1, expansion=6, *, rng=None, dtype=np.float32):
        super().__init__()
        rng = get_rng(rng)
        if expansion < 1:
            raise ValueError(f"InvertedResidual: expansion t must be ≥ 1, got {expansion}")
        E = int(round(in_channels * expansion))
        self.in_channels, self.out_channels, self.stride, self.expansion = in_channels, out_channels, stride, expansion
        self.use_shortcut = stride == 1 and in_channels == out_channels
        if expansion != 1:  # t = 1 has no expansion (the paper's first block)
            self.expand = Conv2d(in_channels, E, 1, bias=False, init="he", rng=rng, dtype=dtype)
            self.bn0, self.act0 = BatchNorm2d(E, dtype=dtype), ReLU6()
        self.dw = Conv2d(E, E, 3, stride=stride, padding=1, groups=E, bias=False, init="he", rng=rng, dtype=dtype)
        self.bn1, self.act1 = BatchNorm2d(E, dtype=dtype), ReLU6()
        self.project = Conv2d(E, out_channels, 1, bias=False, init="he", rng=rng, dtype=dtype)
        self.bn2 = BatchNorm2d(out_channels, dtype=dtype)

    # start-ir-forward
    def forward(self, x):
        _check(self, x)
        h = self.act0(self.bn0(self.expand(x))) if self.expansion != 1 else x  # (N, E, H, W)
        u = self.act1(self.bn1(self.dw(h)))  # depthwise, (N, E, H/s, W/s)
        f = self.bn2(self.project(u))  # the linear bottleneck: no activation, (N, C_out, H/s, W/s)
        return x + f if self.use_shortcut else f

    def backward(self, dy):
        df = dy  # y = x + f (or y = f): f receives dy unchanged
        du = self.project.backward(self.bn2.backward(df))  # through BN and the 1×1 projection (no activation)
        da1 = self.act1.backward(du)  # through ReLU6: du ⊙ [0 < a1 < 6]
        dh = self.dw.backward(self.bn1.backward(da1))  # through BN and the depthwise conv
        if self.expansion != 1:
            da0 = self.act0.backward(dh)  # through the expansion's ReLU6
            dx = self.expand.backward(self.bn0.backward(da0))  # through BN and the 1×1 expansion
        else:
            dx = dh
        return dx + dy if self.use_shortcut else dx  # the identity path hands dy to x unchanged
    # end-ir-forward

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, stride={self.stride}, t={self.expansion}, "
                f"shortcut={self.use_shortcut}")


class _Net(Module):
    """stem (3×3 conv, BN, activation) → blocks → [head] → global average pool → linear."""

    def _finish(self, cin, num_classes, rng, dtype):
        self.pool = GlobalAvgPool2d()
        self.fc = Linear(cin, num_classes, rng=rng, dtype=dtype)

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__}: expected input (N, {self.in_channels}, H, W), got shape "
                             f"{tuple(x.shape)}")
        h = self.stem_act(self.stem_bn(self.stem(x)))
        for blk in self.blocks:  # block by block
            h = blk(h)
        if self.head is not None:
            h = self.head_act(self.head_bn(self.head(h)))
        return self.fc(self.pool(h))

    def backward(self, dy):
        dh = self.pool.backward(self.fc.backward(dy))  # through the classifier and the pooling
        if self.head is not None:
            dh = self.head.backward(self.head_bn.backward(self.head_act.backward(dh)))
        for blk in reversed(self.blocks):  # the blocks in reverse
            dh = blk.backward(dh)
        return self.stem.backward(self.stem_bn.backward(self.stem_act.backward(dh)))

    def _stem(self, in_channels, c, Act, rng, dtype):
        self.in_channels = in_channels
        self.stem = Conv2d(in_channels, c, 3, padding=1, bias=False, init="he", rng=rng, dtype=dtype)
        self.stem_bn, self.stem_act = BatchNorm2d(c, dtype=dtype), Act()


class MobileNet(_Net):
    """MobileNet V1 for small images: (N, in_channels, H, W) → logits (N, num_classes).

    ``alpha``: the width multiplier (every layer's channels × α); ``separable=False`` replaces each
    depthwise-separable pair by one full 3×3 conv of the same channels and stride (the comparison net).
    """

    def __init__(self, num_classes=10, *, in_channels=1, alpha=1.0, separable=True, blocks=V1_BLOCKS,
                 stem=V1_STEM, rng=None, dtype=np.float32):
        super().__init__()
        rng = get_rng(rng)
        self.alpha, self.separable, self.block_cfg = alpha, separable, tuple(tuple(b) for b in blocks)
        cin = width_channels(stem, alpha)
        self._stem(in_channels, cin, ReLU, rng, dtype)
        Block = DepthwiseSeparable if separable else StandardConvBlock
        self.blocks = []
        for c, s in self.block_cfg:
            self.blocks.append(Block(cin, width_channels(c, alpha), s, rng=rng, dtype=dtype))
            cin = self.blocks[-1].out_channels
        self.head = None
        self._finish(cin, num_classes, rng, dtype)

    def config(self):
        return {"class": "MobileNet", "alpha": self.alpha, "separable": self.separable,
                "blocks": [list(b) for b in self.block_cfg]}

    def extra_repr(self):
        return f"alpha={self.alpha}, separable={self.separable}"


class MobileNetV2(_Net):
    """MobileNetV2 for small images: stem, inverted-residual stages, 1×1 head conv, pool, linear.

    ``alpha`` scales every layer's channels (the head's only when α > 1, as in the paper);
    ``expansion`` is t of every stage but the first (t = 1).
    """

    def __init__(self, num_classes=10, *, in_channels=1, alpha=1.0, expansion=6, stages=V2_STAGES, stem=V2_STEM,
                 head=V2_HEAD, rng=None, dtype=np.float32):
        super().__init__()
        rng = get_rng(rng)
        self.alpha, self.expansion = alpha, expansion
        self.stage_cfg = tuple(tuple(s) for s in stages)
        cin = width_channels(stem, alpha)
        self._stem(in_channels, cin, ReLU6, rng, dtype)
        self.blocks = []
        for t, c, n, s in self.stage_cfg:
            for i in range(n):  # the first block of a stage strides and changes the width
                blk = InvertedResidual(cin, width_channels(c, alpha), s if i == 0 else 1,
                                       expansion if t is None else t, rng=rng, dtype=dtype)
                self.blocks.append(blk)
                cin = blk.out_channels
        c_head = width_channels(head, max(alpha, 1.0))
        self.head = Conv2d(cin, c_head, 1, bias=False, init="he", rng=rng, dtype=dtype)
        self.head_bn, self.head_act = BatchNorm2d(c_head, dtype=dtype), ReLU6()
        self._finish(c_head, num_classes, rng, dtype)

    def config(self):
        return {"class": "MobileNetV2", "alpha": self.alpha, "expansion": self.expansion,
                "stages": [list(s) for s in self.stage_cfg]}

    def extra_repr(self):
        return f"alpha={self.alpha}, expansion={self.expansion}"
