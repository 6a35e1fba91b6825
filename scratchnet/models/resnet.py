"""Residual networks (He, Zhang, Ren & Sun 2016, "Deep residual learning for image recognition"),
the CIFAR-style family for small images, and the plain networks they were compared with.

Legend: N batch, C channels, H, W spatial size, n blocks per stage, k width multiplier.

A residual block computes y = relu(F(x) + S(x)): F is the residual branch (two 3×3 convs for the
basic block; 1×1 → 3×3 → 1×1 for the bottleneck), S the shortcut (the identity, or a 1×1 conv +
BN "projection" when the shape changes: the paper's option B). Backward, written by hand in the
reverse order of forward: ds = relu'(s)·dy, then dx = S'(x)ᵀ ds + F'(x)ᵀ ds — the identity path
hands ds to x unchanged. See chapters/10-resnet.md#eq-res-backward.

``ResNet(depth=6n+2)`` (basic) or ``depth=9n+2`` (bottleneck): a 3×3 stem conv, three stages of n
blocks with 16k/32k/64k channels (stride 2 entering stages 2 and 3), global average pooling and a
linear classifier. ``residual=False`` removes every shortcut: the plain network of the same depth.
"""
from __future__ import annotations

import numpy as np

from .._random import get_rng
from ..nn.conv import Conv2d, GlobalAvgPool2d
from ..nn.layers import BatchNorm2d, Linear, ReLU
from ..nn.module import Module, Sequential

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "resnet_depth_to_blocks", "conv_weight_grad_norms",
           "block_grad_norms"]


def _conv_bn(cin, cout, k, stride, rng, dtype):
    """[conv k×k (no bias: BN's β replaces it), BN] as a list (He init, padding keeps the size)."""
    return [Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False, init="he", rng=rng, dtype=dtype),
            BatchNorm2d(cout, dtype=dtype)]


class _ResidualBase(Module):
    """y = relu(branch(x) + shortcut(x)); ``shortcut`` None means a plain block y = relu(branch(x))."""

    def _make_shortcut(self, cin, cout, stride, residual, rng, dtype):
        if not residual:
            return None
        if stride != 1 or cin != cout:  # the shape changes: projection (option B)
            return Sequential(*_conv_bn(cin, cout, 1, stride, rng, dtype))
        return "identity"

    def _check(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__}: expected input (N, {self.in_channels}, H, W), got shape "
                             f"{tuple(x.shape)}")

    # start-block-forward
    def forward(self, x):
        self._check(x)
        f = self.branch(x)  # F(x): the residual branch, (N, C_out, H/stride, W/stride)
        if self.shortcut is None:  # a plain block
            s = f
        elif self.shortcut == "identity":
            s = f + x
        else:
            s = f + self.shortcut(x)  # projection W_s x
        return self.out_relu(s)

    def backward(self, dy):
        ds = self.out_relu.backward(dy)  # through the final relu: ds = dy ⊙ [s > 0]
        dx = self.branch.backward(ds)  # F'(x)ᵀ ds: the residual branch, in reverse
        if self.shortcut == "identity":
            dx = dx + ds  # the identity path: ds reaches x unchanged
        elif self.shortcut is not None:
            dx = dx + self.shortcut.backward(ds)  # W_sᵀ ds through BN and the 1×1 conv
        return dx
    # end-block-forward


class BasicBlock(_ResidualBase):
    """Two 3×3 conv-BN layers (relu between) plus a shortcut: (N, C_in, H, W) → (N, C_out, H/s, W/s)."""
    expansion = 1

    def __init__(self, in_channels, out_channels, stride=1, *, residual=True, rng=None, dtype=np.float32):
        super().__init__()
        rng = get_rng(rng)
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.branch = Sequential(*_conv_bn(in_channels, out_channels, 3, stride, rng, dtype), ReLU(),
                                 *_conv_bn(out_channels, out_channels, 3, 1, rng, dtype))
        self.shortcut = self._make_shortcut(in_channels, out_channels, stride, residual, rng, dtype)
        self.out_relu = ReLU()

    def extra_repr(self):
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}, shortcut={self._kind()}"

    def _kind(self):
        return "none" if self.shortcut is None else ("identity" if self.shortcut == "identity" else "projection")


class Bottleneck(BasicBlock):
    """1×1 reduce → 3×3 (stride here) → 1×1 expand to 4·mid channels, each with BN, plus a shortcut."""
    expansion = 4

    def __init__(self, in_channels, mid_channels, stride=1, *, residual=True, rng=None, dtype=np.float32):
        Module.__init__(self)
        rng = get_rng(rng)
        out_channels = mid_channels * self.expansion
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.branch = Sequential(*_conv_bn(in_channels, mid_channels, 1, 1, rng, dtype), ReLU(),
                                 *_conv_bn(mid_channels, mid_channels, 3, stride, rng, dtype), ReLU(),
                                 *_conv_bn(mid_channels, out_channels, 1, 1, rng, dtype))
        self.shortcut = self._make_shortcut(in_channels, out_channels, stride, residual, rng, dtype)
        self.out_relu = ReLU()


def resnet_depth_to_blocks(depth, block="basic"):
    """Blocks per stage n: depth = 6n + 2 (basic, 2 convs per block) or 9n + 2 (bottleneck, 3)."""
    per = {"basic": 6, "bottleneck": 9}.get(block)
    if per is None:
        raise ValueError(f"ResNet: block must be 'basic' or 'bottleneck', got {block!r}")
    if depth < per + 2 or (depth - 2) % per:
        raise ValueError(f"ResNet: depth {depth} is not {per}n + 2 for the {block} block "
                         f"(e.g. {', '.join(str(per * n + 2) for n in (1, 3, 5, 9))})")
    return (depth - 2) // per


class ResNet(Module):
    """CIFAR-style ResNet (or its plain twin): stem, 3 stages of n blocks, global pool, linear.

    Input (N, in_channels, H, W) → logits (N, num_classes). Channels 16k, 32k, 64k (k = ``width``
    multiplier as 16·k, so ``width=16`` is the paper's); bottleneck stages use mid channels
    16k/32k/64k and output 4× that.
    """

    def __init__(self, depth=20, num_classes=10, *, in_channels=1, width=16, block="basic", residual=True,
                 rng=None, dtype=np.float32):
        super().__init__()
        rng = get_rng(rng)
        n = resnet_depth_to_blocks(depth, block)
        self.depth, self.block_kind, self.residual, self.in_channels = depth, block, residual, in_channels
        Block = BasicBlock if block == "basic" else Bottleneck
        self.stem = Sequential(*_conv_bn(in_channels, width, 3, 1, rng, dtype), ReLU())
        self.blocks = []
        cin = width
        for stage, mult in enumerate((1, 2, 4)):  # three stages; the first block of stages 2, 3 halves H, W
            for i in range(n):
                stride = 2 if (stage > 0 and i == 0) else 1
                blk = Block(cin, width * mult, stride, residual=residual, rng=rng, dtype=dtype)
                self.blocks.append(blk)
                cin = blk.out_channels
        self.pool = GlobalAvgPool2d()
        self.fc = Linear(cin, num_classes, rng=rng, dtype=dtype)

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"ResNet: expected input (N, {self.in_channels}, H, W), got shape {tuple(x.shape)}")
        h = self.stem(x)
        for blk in self.blocks:  # stage by stage
            h = blk(h)
        return self.fc(self.pool(h))

    # start-resnet-backward
    def backward(self, dy, *, grad_norms=None):
        """dx, walking forward in reverse. ``grad_norms`` (a list) receives ‖∂L/∂h_l‖ at the input
        of every block, last block first, then the stem's output gradient norm last."""
        dh = self.pool.backward(self.fc.backward(dy))
        for blk in reversed(self.blocks):
            dh = blk.backward(dh)
            if grad_norms is not None:
                grad_norms.append(float((dh * dh).sum() ** 0.5))
        return self.stem.backward(dh)
    # end-resnet-backward

    def config(self):
        return {"class": "ResNet", "depth": self.depth, "block": self.block_kind, "residual": self.residual}

    def extra_repr(self):
        return f"depth={self.depth}, block={self.block_kind}, residual={self.residual}"


def conv_weight_grad_norms(model):
    """‖∂L/∂W‖ of every conv weight in forward order (after a backward), skipping 1×1 projections."""
    return [float(np.sqrt((p.grad.astype(np.float64) ** 2).sum())) for name, p in model.named_parameters()
            if p.grad.ndim == 4 and "shortcut" not in name]


def block_grad_norms(model, x, y, loss_fn):
    """One forward/backward in training mode; ‖∂L/∂h_l‖ at each block's input, first block first."""
    model.train()
    loss_fn(model(x), y)
    norms = []
    model.zero_grad()
    model.backward(loss_fn.backward(), grad_norms=norms)
    return norms[::-1]

