"""AlexNet (Krizhevsky, Sutskever & Hinton 2012, "ImageNet classification with deep convolutional
neural networks"), scaled down for 28×28 grayscale images (Fashion-MNIST).

Legend: N batch, C channels, H, W spatial size.

What is kept from the paper: five conv layers then three fully connected ones; ReLU everywhere
(Section 3.1); local response normalisation after the first two convs (Section 3.3, k=2, n=5,
α=1e-4, β=0.75); overlapping max pooling, 3×3 windows with stride 2 (Section 3.4); dropout 0.5 on
the two hidden FC layers (Section 4.2); data augmentation by random crops and horizontal flips
(Section 4.1). What is scaled: 5×5/5×5/3×3/3×3/3×3 kernels at stride 1 on 28×28 instead of
11×11 stride 4 on 224×224, channel widths and FC sizes ≈ 1/8–1/16 of the paper's, He init instead
of N(0, 0.01), one tower instead of two GPUs, and the pools padded by 1 so that the classifier
still sees a 4×4 map (the paper's sees 6×6). Spatial sizes: 28 → pool 14 → pool 7 → pool 4
(unpadded pools, ``pool_padding=0``: 28 → 13 → 6 → 2).
See chapters/07-alexnet.md.
"""
from __future__ import annotations

import numpy as np

from .._random import get_rng
from ..data.augment import augment
from ..functional.conv import conv_output_size
from ..nn.conv import Conv2d, LocalResponseNorm, MaxPool2d
from ..nn.layers import Dropout, Flatten, Linear, ReLU
from ..nn.module import Sequential

__all__ = ["AlexNet", "FASHION_MEAN", "FASHION_STD", "fashion_input", "make_prepare"]

FASHION_MEAN, FASHION_STD = 0.2860, 0.3530  # Fashion-MNIST training-set pixel statistics (of x/255)


def fashion_input(images, *, dtype=np.float32):
    """uint8 (N, 28, 28) or (N, 1, 28, 28) → standardised float (N, 1, 28, 28): (x/255 − mean)/std."""
    x = np.asarray(images, dtype=dtype) / 255.0  # (N, [1,] 28, 28)
    x = ((x - FASHION_MEAN) / FASHION_STD).astype(dtype)
    return x if x.ndim == 4 else x[:, None]  # (N, 1, 28, 28)


def make_prepare(*, augment_data=True, padding=2, flip=True, rng=None, dtype=np.float32):
    """A ``fit(prepare=...)`` hook: uint8 batches → standardised floats, augmented when training.

    Augmentation (the paper's Section 4.1 scaled to 28×28): pad by ``padding`` and take a random
    28×28 crop (the background value is used for the padding), then mirror with probability ½.
    """
    rng = get_rng(rng)
    background = (0.0 - FASHION_MEAN) / FASHION_STD

    def prepare(xb, yb, training):
        x = fashion_input(xb, dtype=dtype)  # (B, 1, 28, 28)
        if training and augment_data:
            x = augment(x, padding=padding, flip=flip, rng=rng, fill=background)
        return x, yb

    return prepare


def _pool_size(s, padding):
    return conv_output_size(s, 3, 2, padding, 1)  # 3×3 window, stride 2: overlapping pooling


class AlexNet(Sequential):
    """Scaled-down AlexNet. Input (N, in_channels, S, S) → logits (N, num_classes).

    widths: channels of conv1..conv5; hidden: size of fc6 and fc7; lrn, dropout: the ablations
    (``lrn=False`` drops both LRN layers, ``dropout=0`` both dropout layers); pool_padding: of the
    three 3×3/2 max-pools (1: 28 → 14 → 7 → 4; 0: 28 → 13 → 6 → 2).
    """

    def __init__(self, num_classes=10, *, in_channels=1, image_size=28, widths=(32, 64, 96, 96, 64), hidden=512,
                 lrn=True, dropout=0.5, pool_padding=1, rng=None, dtype=np.float32):
        rng = get_rng(rng)
        c1, c2, c3, c4, c5 = widths
        kw = dict(init="he", rng=rng, dtype=dtype)
        drop = (lambda: [Dropout(dropout, rng=rng)]) if dropout else (lambda: [])
        norm = (lambda: [LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)]) if lrn else (lambda: [])
        s = _pool_size(_pool_size(_pool_size(image_size, pool_padding), pool_padding), pool_padding)
        pool = lambda: MaxPool2d(3, stride=2, padding=pool_padding)  # noqa: E731
        if s < 1:
            raise ValueError(f"AlexNet: image_size {image_size} is too small for three 3×3/2 poolings")
        super().__init__(
            Conv2d(in_channels, c1, 5, padding=2, **kw), ReLU(), *norm(), pool(),  # conv1
            Conv2d(c1, c2, 5, padding=2, **kw), ReLU(), *norm(), pool(),  # conv2
            Conv2d(c2, c3, 3, padding=1, **kw), ReLU(),  # conv3
            Conv2d(c3, c4, 3, padding=1, **kw), ReLU(),  # conv4
            Conv2d(c4, c5, 3, padding=1, **kw), ReLU(), pool(),  # conv5
            Flatten(),
            *drop(), Linear(c5 * s * s, hidden, rng=rng, dtype=dtype), ReLU(),  # fc6
            *drop(), Linear(hidden, hidden, rng=rng, dtype=dtype), ReLU(),  # fc7
            Linear(hidden, num_classes, rng=rng, dtype=dtype),  # fc8
        )
        self.in_channels, self.image_size = in_channels, image_size
        self.options = dict(lrn=lrn, dropout=dropout, pool_padding=pool_padding)

    def forward(self, x):
        if x.ndim != 4 or x.shape[1:] != (self.in_channels, self.image_size, self.image_size):
            raise ValueError(f"AlexNet: expected input (N, {self.in_channels}, {self.image_size}, "
                             f"{self.image_size}), got shape {tuple(x.shape)}")
        return super().forward(x)

    @property
    def conv1(self):
        """The first conv layer (its filters are the classic AlexNet picture)."""
        return self.layers[0]

    def config(self):
        return {"class": "AlexNet", **self.options}
