"""Convolutional subsampling of a feature sequence: two stride-2 3×3 convolutions with ReLUs, then the
channels and the remaining frequency bins flattened into one feature vector per (4× slower) frame.

Legend: N batch, T frames, D features per frame (mel bins), C channels, T' = ⌊(T − 3)/2⌋ + 1,
T'' = ⌊(T' − 3)/2⌋ + 1 (likewise D', D''), kernel 3, stride 2, no padding.
See chapters/25-speech-transformer.md#st-subsampling.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._checks import check_grad
from ..backend import get_array_module
from .activation import relu, relu_backward
from .conv import conv2d, conv2d_backward

__all__ = ["conv_subsample", "conv_subsample_backward", "subsampled_length"]

KERNEL, STRIDE = 3, 2


def subsampled_length(lengths):
    """Frames left after the two convolutions: T'' = ⌊(⌊(T − 3)/2⌋ + 1 − 3)/2⌋ + 1 (int64, ≥ 0).

    Every output frame t'' reads input frames 4t'' .. 4t'' + 6 only, so with this length no valid
    output frame ever sees a padded input frame.
    """
    xp = get_array_module(lengths)  # the lengths' device (a list counts as NumPy)
    t1 = (xp.asarray(lengths, dtype=np.int64) - KERNEL) // STRIDE + 1  # after the first convolution
    return xp.maximum((t1 - KERNEL) // STRIDE + 1, 0)  # after the second


class ConvSubsampleCache(NamedTuple):
    c1: tuple  # first convolution's cache
    r1: tuple  # first ReLU's cache (the sign pattern)
    c2: tuple  # second convolution's cache
    r2: tuple  # second ReLU's cache
    shape: tuple  # (N, C, T'', D'') of the feature map before flattening
    x_shape: tuple  # (N, T, D)
    dtype: object


def _check_input(x, w1, w2):
    if x.ndim != 3 or w1.ndim != 4 or w1.shape[1:] != (1, KERNEL, KERNEL) or w2.ndim != 4 \
            or w2.shape[1:] != (w1.shape[0], KERNEL, KERNEL):
        raise ValueError(f"conv_subsample: expected x (N, T, D), w1 (C, 1, 3, 3), w2 (C, C, 3, 3); got x "
                         f"{tuple(x.shape)}, w1 {tuple(w1.shape)}, w2 {tuple(w2.shape)}")
    if x.shape[1] < 7 or x.shape[2] < 7:
        raise ValueError(f"conv_subsample: need at least 7 frames and 7 features to subsample twice, got x "
                         f"{tuple(x.shape)}")


# start-conv-subsample
def conv_subsample(x, w1, b1, w2, b2):
    """(N, T, D) → (N, T'', C·D''): h1 = relu(conv(x, w1) + b1), h2 = relu(conv(h1, w2) + b2), stride 2 each,
    then y[n, t, c·D'' + f] = h2[n, c, t, f] (time becomes the sequence axis, channels × bins the features).

    Backward: undo the flatten, then relu and conv backward twice in reverse;
    dx = conv1ᵀ(relu1ᵀ(conv2ᵀ(relu2ᵀ(unflatten(dy))))). See chapters/25-speech-transformer.md#eq-st-subsample.
    """
    _check_input(x, w1, w2)
    N, T, D = x.shape
    a1, c1 = conv2d(x[:, None], w1, b1, stride=STRIDE)  # (N, C, T', D') the image is time × frequency
    h1, r1 = relu(a1)
    a2, c2 = conv2d(h1, w2, b2, stride=STRIDE)  # (N, C, T'', D'')
    h2, r2 = relu(a2)
    _, C, T2, D2 = h2.shape
    y = h2.transpose(0, 2, 1, 3).reshape(N, T2, C * D2)  # (N, T'', C·D'') channel-major features per frame
    return y, ConvSubsampleCache(c1, r1, c2, r2, h2.shape, x.shape, x.dtype)


def conv_subsample_backward(dy, cache):
    """dx, dw1, db1, dw2, db2 of ``conv_subsample``."""
    c1, r1, c2, r2, (N, C, T2, D2), x_shape, dtype = cache
    check_grad("conv_subsample_backward", "dy", dy, (N, T2, C * D2), dtype)
    dh2 = dy.reshape(N, T2, C, D2).transpose(0, 2, 1, 3)  # (N, C, T'', D'') undo the flatten
    da2 = relu_backward(dh2, r2)  # through the second ReLU
    dh1, dw2, db2 = conv2d_backward(da2, c2)  # (N, C, T', D') and the second conv's weights
    da1 = relu_backward(dh1, r1)  # through the first ReLU
    dx1, dw1, db1 = conv2d_backward(da1, c1)  # (N, 1, T, D)
    return dx1[:, 0], dw1, db1, dw2, db2  # dx (N, T, D)
# end-conv-subsample
