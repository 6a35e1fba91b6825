"""LeNet-5 (LeCun, Bottou, Bengio & Haffner 1998, "Gradient-based learning applied to document
recognition"), as published, and a modern variant.

Legend: N batch, C channels, H, W spatial size (32×32 inputs: MNIST padded by 2).

``LeNet5`` follows the paper's Section II.B: C1 6@5×5 → S2 trainable subsampling → C3 16@5×5
with Table I's partial connections → S4 → C5 120@5×5 → F6 84, every layer squashed by
f(a) = 1.7159·tanh(2a/3), weights U(±2.4/F_in). One departure: the paper's output layer of 10
Euclidean RBF units with fixed ±1 prototypes, trained with its MAP criterion, is replaced by a
trainable linear layer F6 → 10 logits and softmax cross-entropy.
``LeNet5Modern``: ReLU, 2×2 max pooling, full C3, He init, softmax cross-entropy.
See chapters/06-lenet5.md.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .._random import get_rng
from ..nn import init as nn_init
from ..nn.conv import Conv2d, MaxPool2d
from ..nn.layers import Flatten, Linear, ReLU
from ..nn.module import Module, Parameter, Sequential

__all__ = ["LeNet5", "LeNet5Modern", "ScaledTanh", "Subsampling", "ConnectionTableConv2d",
           "C3_TABLE", "lenet_input"]

# Table I of the paper: C3 map j (column) reads the S2 maps i (rows) listed here.
C3_TABLE = ([sorted((j + t) % 6 for t in range(3)) for j in range(6)]  # maps 0–5: 3 contiguous
            + [sorted((j + t) % 6 for t in range(4)) for j in range(6)]  # maps 6–11: 4 contiguous
            + [[0, 1, 3, 4], [1, 2, 4, 5], [0, 2, 3, 5]]  # maps 12–14: 4 non-contiguous
            + [[0, 1, 2, 3, 4, 5]])  # map 15: all six


def lenet_input(images):
    """uint8 MNIST (N, 28, 28) → float32 (N, 1, 32, 32): padded by 2, background −0.1, ink 1.175.

    The paper's normalisation (Section II.A): white −0.1, black 1.175, which it says makes the
    mean roughly 0 and the variance roughly 1 (on MNIST the standard deviation is nearer 0.34).
    """
    x = (-0.1 + 1.275 * (np.asarray(images, dtype=np.float32) / 255.0)).astype(np.float32)  # (N, 28, 28)
    x = np.pad(x, ((0, 0), (2, 2), (2, 2)), constant_values=np.float32(-0.1))  # (N, 32, 32)
    return x[:, None]  # (N, 1, 32, 32)


class ScaledTanh(Module):
    """f(a) = A·tanh(S·a) with A = 1.7159, S = 2/3 (so f(±1) = ±1). Backward: da = dy·A·S·(1 − tanh²(S a))."""
    A, S = 1.7159, 2.0 / 3.0

    def forward(self, a):
        t, cache = F.tanh(self.S * a)
        self.push(cache)
        return self.A * t

    def backward(self, dy):
        return F.tanh_backward(self.A * dy, self.pop()) * self.S


def _bound(fan_in, init):
    """Half-width of the uniform init: the paper's 2.4/F_in, or LeCun's √(3/F_in) (std 1/√F_in)."""
    if init == "paper":
        return 2.4 / fan_in
    if init == "lecun":
        return np.sqrt(3.0 / fan_in)
    raise ValueError(f"LeNet5: init must be 'paper' or 'lecun', got {init!r}")


class Subsampling(Module):
    """S2/S4: y_c = coef_c · Σ_{2×2} x_c + bias_c (the squashing is a separate ScaledTanh).

    Backward: dcoef_c = Σ dy_c·s_c, dbias_c = Σ dy_c, dx = each dy_c·coef_c copied to its 2×2 block.
    """

    def __init__(self, channels, *, init="paper", rng=None, dtype=np.float32):
        super().__init__()
        bound = _bound(4, init)  # F_in = 4
        rng = get_rng(rng)
        self.coef = Parameter(nn_init.uniform((channels,), -bound, bound, rng=rng, dtype=dtype))
        self.bias = Parameter(nn_init.uniform((channels,), -bound, bound, rng=rng, dtype=dtype))

    def forward(self, x):
        mean, pool_cache = F.avg_pool2d(x, kernel_size=2)  # (N, C, H/2, W/2)
        s = 4.0 * mean  # the 2×2 sum
        self.push((pool_cache, s))
        return s * self.coef.data.reshape(1, -1, 1, 1) + self.bias.data.reshape(1, -1, 1, 1)

    def backward(self, dy):
        pool_cache, s = self.pop()
        self.coef.grad += (dy * s).sum(axis=(0, 2, 3))
        self.bias.grad += dy.sum(axis=(0, 2, 3))
        ds = dy * self.coef.data.reshape(1, -1, 1, 1)
        return F.avg_pool2d_backward(4.0 * ds, pool_cache)


class ConnectionTableConv2d(Module):
    """A Conv2d whose output map j sees only the input maps ``table[j]``: w ⊙ mask; dw ⊙ mask."""

    def __init__(self, in_channels, out_channels, kernel_size, table, *, init="paper", rng=None, dtype=np.float32):
        super().__init__()
        mask = np.zeros((out_channels, in_channels, 1, 1), dtype)  # (C_out, C_in, 1, 1)
        for j, inputs in enumerate(table):  # one row of connections per output map
            mask[j, inputs] = 1
        fan_in = mask.sum(axis=(1, 2, 3)).reshape(-1, 1, 1, 1) * kernel_size ** 2  # per map
        u = get_rng(rng).uniform(-1, 1, (out_channels, in_channels, kernel_size, kernel_size))
        self.register_buffer("mask", mask)
        bound = _bound(fan_in, init)  # (C_out, 1, 1, 1)
        self.weight = Parameter((u * bound * mask).astype(dtype))
        self.bias = Parameter((get_rng(rng).uniform(-1, 1, out_channels) * bound.ravel()).astype(dtype))

    def forward(self, x):
        y, cache = F.conv2d(x, self.weight.data * self.mask, self.bias.data)
        self.push(cache)
        return y

    def backward(self, dy):
        dx, dw, db = F.conv2d_backward(dy, self.pop())
        self.weight.grad += dw * self.mask  # absent connections get no gradient and stay 0
        self.bias.grad += db
        return dx

    def num_connections(self) -> int:
        return int(self.mask.sum())


def _paper_init(layer, rng, init):
    """U(±2.4/F_in) (init='paper') or U(±√(3/F_in)) (init='lecun') for a Conv2d or Linear layer."""
    fan_in = int(np.prod(layer.weight.shape[1:])) if isinstance(layer, Conv2d) else layer.weight.shape[0]
    a = _bound(fan_in, init)
    layer.weight.data[...] = rng.uniform(-a, a, layer.weight.shape)
    layer.bias.data[...] = rng.uniform(-a, a, layer.bias.shape)
    return layer


class LeNet5(Sequential):
    """LeNet-5 as published (softmax-CE output instead of the RBF layer). Input (N, 1, 32, 32) → (N, 10) logits.

    init='paper': U(±2.4/F_in) as the paper states (small: training starts on a long plateau);
    init='lecun': U(±√(3/F_in)), unit-variance sums as in LeCun et al.'s "Efficient BackProp".
    """

    def __init__(self, num_classes=10, *, init="paper", rng=None, dtype=np.float32):
        rng = get_rng(rng)
        kw = dict(rng=rng, dtype=dtype)
        sub = dict(init=init, **kw)
        super().__init__(
            _paper_init(Conv2d(1, 6, 5, **kw), rng, init), ScaledTanh(),  # C1: 6@28×28
            Subsampling(6, **sub), ScaledTanh(),  # S2: 6@14×14
            ConnectionTableConv2d(6, 16, 5, C3_TABLE, **sub), ScaledTanh(),  # C3: 16@10×10
            Subsampling(16, **sub), ScaledTanh(),  # S4: 16@5×5
            _paper_init(Conv2d(16, 120, 5, **kw), rng, init), ScaledTanh(),  # C5: 120@1×1
            Flatten(),
            _paper_init(Linear(120, 84, **kw), rng, init), ScaledTanh(),  # F6: 84
            _paper_init(Linear(84, num_classes, **kw), rng, init),  # output logits (replaces the RBF layer)
        )

    def forward(self, x):
        if x.ndim != 4 or x.shape[1:] != (1, 32, 32):
            raise ValueError(f"LeNet5: expected input (N, 1, 32, 32) (MNIST padded by 2, see lenet_input), "
                             f"got shape {tuple(x.shape)}")
        return super().forward(x)

    def num_trainable(self) -> int:
        """Free parameters, counting only C3's connections that exist (the paper's 1,516 for C3)."""
        c3 = self.layers[4]
        return self.num_parameters() - (c3.weight.data.size - c3.num_connections() * 25)


class LeNet5Modern(Sequential):
    """ReLU, max pooling, full C3, He init, softmax CE. Input (N, 1, 32, 32) → (N, 10) logits."""

    def __init__(self, num_classes=10, *, rng=None, dtype=np.float32):
        rng = get_rng(rng)
        kw = dict(init="he", rng=rng, dtype=dtype)
        super().__init__(
            Conv2d(1, 6, 5, **kw), ReLU(), MaxPool2d(2),  # 6@14×14
            Conv2d(6, 16, 5, **kw), ReLU(), MaxPool2d(2),  # 16@5×5
            Conv2d(16, 120, 5, **kw), ReLU(), Flatten(),  # 120
            Linear(120, 84, rng=rng, dtype=dtype), ReLU(),
            Linear(84, num_classes, rng=rng, dtype=dtype),
        )

    def forward(self, x):
        if x.ndim != 4 or x.shape[1:] != (1, 32, 32):
            raise ValueError(f"LeNet5Modern: expected input (N, 1, 32, 32), got shape {tuple(x.shape)}")
        return super().forward(x)

