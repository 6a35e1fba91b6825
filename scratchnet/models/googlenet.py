"""GoogLeNet (Szegedy et al. 2015, "Going deeper with convolutions"), scaled for 28×28 images.

Legend: N batch, C channels, H, W spatial size, B branches of an Inception module, K classes.

An Inception module runs four branches on the same input x and stacks their outputs along the
channels: a 1×1 conv; a 1×1 reduction then a 3×3 conv; a 1×1 reduction then a 5×5 conv; a 3×3
max pool (stride 1) then a 1×1 "pool projection". Backward, by hand: dy is split by channel
slices (one slice per branch), each branch walks back its own slice, and because x fed all four
branches, dx is the SUM of the four branches' dx. Auxiliary classifiers on the outputs of 4a and
4d add 0.3·CE(aux) to the loss in training; their gradient is added to the trunk's at the tap.
Batch norm after every conv (Inception-v2, torchvision) unless ``batch_norm=False`` (the paper).
Spatial sizes: 28 → stem pool 14 (3a, 3b) → pool 7 (4a–4e) → pool 4 (5a, 5b) → global average.
See chapters/09-googlenet.md.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .._random import get_rng
from ..nn.conv import AvgPool2d, Conv2d, GlobalAvgPool2d, MaxPool2d
from ..nn.layers import BatchNorm2d, Dropout, Flatten, Linear, ReLU
from ..nn.module import Module, Sequential

__all__ = ["INCEPTION_TABLE", "LAYOUT", "AUX_TAPS", "Inception", "AuxClassifier", "GoogLeNet",
           "GoogLeNetLoss", "scaled_row"]

# The paper's Table 1: (#1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj) of every module.
INCEPTION_TABLE = {
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64), "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64), "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128), "5b": (384, 192, 384, 48, 128, 128),
}
LAYOUT = ("3a", "3b", "M", "4a", "4b", "4c", "4d", "4e", "M", "5a", "5b")  # "M": 3×3/2 max pool
AUX_TAPS = ("4a", "4d")  # the auxiliary classifiers read these modules' outputs


def scaled_row(row, width):
    """A Table 1 row with every width multiplied by ``width`` (at least 1 channel each)."""
    return tuple(max(1, int(round(c * width))) for c in row)


def conv_unit(cin, cout, k, *, batch_norm=True, rng=None, dtype=np.float32):
    """[k×k conv (padding keeps H, W), BN, ReLU] as a list; without BN the conv keeps its bias."""
    layers = [Conv2d(cin, cout, k, padding=k // 2, bias=not batch_norm, init="he", rng=rng, dtype=dtype)]
    if batch_norm:
        layers.append(BatchNorm2d(cout, dtype=dtype))
    return layers + [ReLU()]


class Inception(Module):
    """Four parallel branches, concatenated: (N, C_in, H, W) → (N, c1 + c3 + c5 + pool_proj, H, W).

    ``pool_proj=0`` drops the pool branch (three branches); ``kernel5`` is the big branch's kernel
    (5 in the paper; torchvision's GoogLeNet uses 3). Backward: dx = Σ_b J_bᵀ dy[:, o_b : o_b + C_b].
    See chapters/09-googlenet.md#eq-inception-backward.
    """

    def __init__(self, in_channels, c1, c3_reduce, c3, c5_reduce, c5, pool_proj, *, batch_norm=True, kernel5=5,
                 rng=None, dtype=np.float32):
        super().__init__()
        rng = get_rng(rng)
        unit = lambda cin, cout, k: conv_unit(cin, cout, k, batch_norm=batch_norm, rng=rng, dtype=dtype)  # noqa: E731
        self.in_channels, self.batch_norm = in_channels, batch_norm
        self.widths = (c1, c3_reduce, c3, c5_reduce, c5, pool_proj)
        self.branches = [
            Sequential(*unit(in_channels, c1, 1)),  # 1×1
            Sequential(*unit(in_channels, c3_reduce, 1), *unit(c3_reduce, c3, 3)),  # 1×1 reduce → 3×3
            Sequential(*unit(in_channels, c5_reduce, 1), *unit(c5_reduce, c5, kernel5)),  # 1×1 reduce → 5×5
        ]
        if pool_proj:  # 3×3 max pool, stride 1, then a 1×1 projection
            self.branches.append(Sequential(MaxPool2d(3, stride=1, padding=1), *unit(in_channels, pool_proj, 1)))
        self.out_channels = c1 + c3 + c5 + pool_proj

    def _check(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"Inception: expected input (N, {self.in_channels}, H, W), got shape {tuple(x.shape)}")

    # start-inception
    def forward(self, x):
        self._check(x)
        outs = [branch(x) for branch in self.branches]  # B maps (N, C_b, H, W), all from the same x
        y, cache = F.concat(outs, axis=1)  # (N, Σ C_b, H, W): the filter concatenation
        self.push(cache)
        return y

    def backward(self, dy):
        douts = F.concat_backward(dy, self.pop())  # dy split by channel slices: one (N, C_b, H, W) per branch
        dx = None
        for branch, dout in zip(reversed(self.branches), reversed(douts)):  # each branch walks back its slice
            dx_b = branch.backward(dout)  # this branch's contribution to ∂L/∂x
            dx = dx_b if dx is None else dx + dx_b  # x fed every branch: the contributions add
        return dx
    # end-inception

    def extra_repr(self):
        return f"{self.in_channels} → {self.out_channels}, widths={self.widths}, batch_norm={self.batch_norm}"


class AuxClassifier(Sequential):
    """The paper's auxiliary head, scaled: 3×3/2 average pool, 1×1 conv (+BN) + ReLU, FC + ReLU,
    dropout (0.7), FC → K logits. (N, C, map_size, map_size) → (N, K).
    See chapters/09-googlenet.md#aux-classifiers."""

    def __init__(self, in_channels, num_classes=10, *, conv_channels=32, hidden=256, map_size=7, dropout=0.7,
                 batch_norm=True, rng=None, dtype=np.float32):
        rng = get_rng(rng)
        s = (map_size - 3) // 2 + 1  # after the 3×3/2 average pool (paper: 5×5/3 on 14×14 → 4×4)
        if s < 1:
            raise ValueError(f"AuxClassifier: map_size {map_size} is smaller than its 3×3 pooling window")
        drop = [Dropout(dropout, rng=rng)] if dropout else []
        super().__init__(AvgPool2d(3, stride=2), *conv_unit(in_channels, conv_channels, 1, batch_norm=batch_norm,
                                                            rng=rng, dtype=dtype),
                         Flatten(), Linear(conv_channels * s * s, hidden, rng=rng, dtype=dtype), ReLU(), *drop,
                         Linear(hidden, num_classes, rng=rng, dtype=dtype))
        self.in_channels = in_channels


class GoogLeNet(Module):
    """Scaled GoogLeNet. Input (N, in_channels, S, S) → main logits (N, K).

    width: multiplies every channel count of the paper (stem 64-64-192, Table 1); layout: module
    names and "M" pools in order; aux: build the auxiliary classifiers on ``AUX_TAPS``. In
    training, ``model.aux_logits`` holds the auxiliary heads' logits of the last forward pass
    (empty in evaluation mode or without aux); ``backward`` takes dlogits, or the tuple
    (dlogits, daux_1, ..., daux_k) that ``GoogLeNetLoss.backward`` returns; at each tap the head's
    dx is added to the trunk's gradient. See chapters/09-googlenet.md#eq-aux-backward.
    """

    def __init__(self, num_classes=10, *, in_channels=1, image_size=28, width=0.125, layout=LAYOUT, aux=True,
                 batch_norm=True, dropout=0.4, aux_dropout=0.7, kernel5=5, rng=None, dtype=np.float32):
        super().__init__()
        rng = get_rng(rng)
        aux_rng = np.random.default_rng(rng.integers(2**63))  # drawn either way: aux=True/False share the trunk
        unit = lambda cin, cout, k: conv_unit(cin, cout, k, batch_norm=batch_norm, rng=rng, dtype=dtype)  # noqa: E731
        s1, s2, s3 = scaled_row((64, 64, 192), width)
        self.stem = Sequential(*unit(in_channels, s1, 3), MaxPool2d(3, stride=2, padding=1),  # 28 → 14
                               *unit(s1, s2, 1), *unit(s2, s3, 3))
        self.layout, self.blocks, self.aux_heads, self.aux_taps = tuple(layout), [], [], []
        cin, size = s3, (image_size + 1) // 2
        for name in self.layout:  # the body: Inception modules and 3×3/2 max pools
            if name == "M":
                self.blocks.append(MaxPool2d(3, stride=2, padding=1))
                size = (size + 1) // 2
                continue
            block = Inception(cin, *scaled_row(INCEPTION_TABLE[name], width), batch_norm=batch_norm,
                              kernel5=kernel5, rng=rng, dtype=dtype)
            self.blocks.append(block)
            cin = block.out_channels
            if aux and name in AUX_TAPS:
                self.aux_taps.append(name)
                self.aux_heads.append(AuxClassifier(cin, num_classes, conv_channels=scaled_row((128,), width)[0],
                                                    hidden=scaled_row((1024,), width)[0], map_size=size,
                                                    dropout=aux_dropout, batch_norm=batch_norm, rng=aux_rng,
                                                    dtype=dtype))
        self.head = Sequential(GlobalAvgPool2d(), *([Dropout(dropout, rng=rng)] if dropout else []),
                               Linear(cin, num_classes, rng=rng, dtype=dtype))
        self.in_channels, self.image_size, self.aux_logits = in_channels, image_size, []
        self.options = dict(width=width, aux=aux, batch_norm=batch_norm, dropout=dropout, kernel5=kernel5)

    def forward(self, x):
        if x.ndim != 4 or x.shape[1:] != (self.in_channels, self.image_size, self.image_size):
            raise ValueError(f"GoogLeNet: expected input (N, {self.in_channels}, {self.image_size}, "
                             f"{self.image_size}), got shape {tuple(x.shape)}")
        h = self.stem(x)
        self.aux_logits = []  # the auxiliary heads run in training only (the paper discards them at inference)
        for name, block in zip(self.layout, self.blocks):
            h = block(h)
            if self.training and name in self.aux_taps:
                self.aux_logits.append(self.aux_heads[self.aux_taps.index(name)](h))  # (N, K)
        self.push(len(self.aux_logits))  # backward must visit the heads that ran
        return self.head(h)

    def _split(self, dy, ran):
        """(dlogits, [daux_k or None]) from dy = dlogits or (dlogits, daux_1, ..., daux_ran)."""
        if not isinstance(dy, (tuple, list)):
            return dy, [None] * ran
        if len(dy) != ran + 1:
            raise ValueError(f"GoogLeNet.backward: expected dlogits and {ran} auxiliary gradients (the forward "
                             f"pass ran {ran} auxiliary heads), got a tuple of {len(dy)}")
        return dy[0], list(dy[1:])

    # start-googlenet-backward
    def backward(self, dy):
        ran = self.pop()  # how many auxiliary heads the forward pass ran
        dlogits, daux = self._split(dy, ran)
        dh = self.head.backward(dlogits)  # linear, dropout, global average pool
        taps = dict(zip(self.aux_taps[:ran], zip(self.aux_heads, daux)))
        for name, block in zip(reversed(self.layout), reversed(self.blocks)):
            if name in taps:  # h fed the trunk AND an auxiliary head: their gradients add
                head, dz = taps[name]
                if dz is None:
                    head.clear_caches()  # no gradient for this head: zero, drop its caches
                else:
                    dh = dh + head.backward(dz)  # 0.3·∂CE_aux/∂h joins the trunk's gradient at the tap
            dh = block.backward(dh)
        return self.stem.backward(dh)
    # end-googlenet-backward

    def config(self):
        return {"class": "GoogLeNet", "layout": list(self.layout), **self.options}


class GoogLeNetLoss(Module):
    """L = CE(main) + aux_weight · Σ_k CE(aux_k), reading ``model.aux_logits`` of the same forward pass.

    ``backward()`` returns dlogits when no auxiliary head ran (evaluation), else the tuple
    (dlogits, aux_weight·∂CE/∂aux_1, ...) that ``GoogLeNet.backward`` takes. ``last_terms`` holds
    (CE(main), [CE(aux_k)]) of the last call, and ``terms`` every such pair of the calls that had
    auxiliary logits (the training steps). See chapters/09-googlenet.md#eq-aux-loss.
    """

    def __init__(self, model, aux_weight=0.3, *, label_smoothing=0.0):
        super().__init__()
        self.aux_weight, self.label_smoothing = aux_weight, label_smoothing
        self._held = {"model": model}  # read, not owned (not a child): the loss holds no parameters
        self.last_terms, self.terms = None, []

    def forward(self, logits, target):
        main, cache = F.cross_entropy(logits, target, label_smoothing=self.label_smoothing)
        aux = [F.cross_entropy(a, target, label_smoothing=self.label_smoothing) for a in self._held["model"].aux_logits]
        self.push((cache, [c for _, c in aux]))
        self.last_terms = (float(main), [float(v) for v, _ in aux])
        if aux:
            self.terms.append(self.last_terms)
        loss = main
        for v, _ in aux:
            loss = loss + self.aux_weight * v
        return loss

    def backward(self, dloss=1.0):
        cache, aux_caches = self.pop()
        dlogits = F.cross_entropy_backward(dloss, cache)
        if not aux_caches:
            return dlogits
        return (dlogits, *(F.cross_entropy_backward(self.aux_weight * dloss, c) for c in aux_caches))

    def extra_repr(self):
        return f"aux_weight={self.aux_weight}, label_smoothing={self.label_smoothing}"
