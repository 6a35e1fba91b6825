"""VGG (Simonyan & Zisserman 2015, "Very deep convolutional networks for large-scale image
recognition"), scaled down for 28×28 grayscale images (Fashion-MNIST).

Legend: N batch, C channels, H, W spatial size, k kernel size, n convs in a stack.

The idea kept from the paper: only 3×3 convolutions (stride 1, padding 1), stacked n at a time
between 2×2 max poolings, channels doubling after each pooling; ReLU after every conv; dropout 0.5
on the two hidden FC layers. A stack of n 3×3 convs sees a (2n+1)×(2n+1) window — the receptive
field of one (2n+1)×(2n+1) conv — with n·9·C² weights instead of (2n+1)²·C², and n ReLUs instead
of one (Section 2.3). Optional batch norm after each conv (Ioffe & Szegedy 2015, not in the
paper; ``batch_norm=True``). Spatial sizes: 28 → 14 → 7 → 3.
See chapters/08-vgg.md.
"""
from __future__ import annotations

import numpy as np

from .._random import get_rng
from ..nn.conv import Conv2d, MaxPool2d
from ..nn.layers import BatchNorm2d, Dropout, Flatten, Linear, ReLU
from ..nn.module import Sequential

__all__ = ["VGG", "VGGBlock", "VGG_CONFIGS", "receptive_field", "conv_params"]

# Channels per conv, "M" a 2×2 max pooling (the paper's Table 1 notation), for 28×28 inputs.
VGG_CONFIGS = {
    "A": (16, "M", 32, "M", 64, 64, "M"),  # 4 convs: VGG-11's pattern (one conv, then pairs)
    "B": (16, 16, "M", 32, 32, "M", 64, 64, "M"),  # 6 convs, two 3×3 per stage: VGG-13's pattern
    "D": (16, 16, "M", 32, 32, "M", 64, 64, 64, "M"),  # 7 convs: VGG-16's three-conv last stage
}


def receptive_field(layers):
    """Receptive field of a stack of (kernel, stride) layers: r = 1 + Σ_l (k_l − 1)·Π_{m<l} s_m.

    ``receptive_field([(3, 1), (3, 1)]) == 5``: two 3×3 convs see what one 5×5 sees.
    See chapters/08-vgg.md#eq-receptive-field.
    """
    r, jump = 1, 1
    for k, s in layers:  # each layer widens the window by (k − 1) input steps of size `jump`
        r += (k - 1) * jump
        jump *= s
    return r


def conv_params(c_in, c_out, k, *, bias=True):
    """Weights of one k×k conv: k²·c_in·c_out (+ c_out biases)."""
    return k * k * c_in * c_out + (c_out if bias else 0)


class VGGBlock(Sequential):
    """n × [3×3 conv (padding 1), optional BN, ReLU] then an optional 2×2 max pool."""

    def __init__(self, in_channels, out_channels, n_convs=2, *, batch_norm=False, pool=True, rng=None,
                 dtype=np.float32):
        rng = get_rng(rng)
        layers, cin = [], in_channels
        for _ in range(n_convs):  # one conv-[BN]-ReLU per step of the stack
            layers.append(Conv2d(cin, out_channels, 3, padding=1, bias=not batch_norm, init="he", rng=rng,
                                 dtype=dtype))
            if batch_norm:
                layers.append(BatchNorm2d(out_channels, dtype=dtype))
            layers.append(ReLU())
            cin = out_channels
        if pool:
            layers.append(MaxPool2d(2))
        super().__init__(*layers)


class VGG(Sequential):
    """Scaled-down VGG. Input (N, in_channels, S, S) → logits (N, num_classes).

    cfg: a key of VGG_CONFIGS or a tuple of channels and "M"; batch_norm: BN after each conv;
    hidden: size of the two hidden FC layers; dropout: their dropout rate (0 removes it).
    """

    def __init__(self, cfg="B", num_classes=10, *, in_channels=1, image_size=28, batch_norm=True, hidden=256,
                 dropout=0.5, rng=None, dtype=np.float32):
        rng = get_rng(rng)
        spec = VGG_CONFIGS[cfg] if isinstance(cfg, str) else tuple(cfg)
        layers, cin, s = [], in_channels, image_size
        for item in spec:  # the paper's column notation: a width is a conv, "M" a pooling
            if item == "M":
                layers.append(MaxPool2d(2))
                s //= 2
            else:
                layers += VGGBlock(cin, int(item), 1, batch_norm=batch_norm, pool=False, rng=rng, dtype=dtype).layers
                cin = int(item)
        if s < 1:
            raise ValueError(f"VGG: image_size {image_size} is too small for {spec.count('M')} poolings")
        drop = (lambda: [Dropout(dropout, rng=rng)]) if dropout else (lambda: [])
        super().__init__(
            *layers, Flatten(),
            Linear(cin * s * s, hidden, rng=rng, dtype=dtype), ReLU(), *drop(),
            Linear(hidden, hidden, rng=rng, dtype=dtype), ReLU(), *drop(),
            Linear(hidden, num_classes, rng=rng, dtype=dtype),
        )
        self.spec, self.in_channels, self.image_size = spec, in_channels, image_size
        self.options = dict(batch_norm=batch_norm, dropout=dropout)

    def forward(self, x):
        if x.ndim != 4 or x.shape[1:] != (self.in_channels, self.image_size, self.image_size):
            raise ValueError(f"VGG: expected input (N, {self.in_channels}, {self.image_size}, {self.image_size}), "
                             f"got shape {tuple(x.shape)}")
        return super().forward(x)

    def config(self):
        return {"class": "VGG", "cfg": [str(c) for c in self.spec], **self.options}
