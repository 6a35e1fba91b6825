"""Reference solutions for notebooks/25-speech-transformer.ipynb's "your turn" cells (chapter 25)."""
import numpy as np

import scratchnet.functional as F
from scratchnet.exercises import check_pair

YOUR_TURN = ["my_conv_subsample", "my_conv_subsample_backward"]


def my_conv_subsample(x, w1, b1, w2, b2):
    """(N, T, D) → (N, T'', C·D''): two stride-2 3×3 convolutions with ReLUs, then time-major flattening."""
    a1, c1 = F.conv2d(x[:, None], w1, b1, stride=2)  # (N, C, T', D') one input channel: the spectrogram
    h1, r1 = F.relu(a1)
    a2, c2 = F.conv2d(h1, w2, b2, stride=2)  # (N, C, T'', D'')
    h2, r2 = F.relu(a2)
    N, C, T2, D2 = h2.shape
    y = h2.transpose(0, 2, 1, 3).reshape(N, T2, C * D2)  # (N, T'', C·D'') frame t holds every channel's bins
    return y, (c1, r1, c2, r2, h2.shape)


def my_conv_subsample_backward(dy, cache):
    """dx, dw1, db1, dw2, db2: undo the flattening, then ReLU and convolution backward twice, in reverse."""
    c1, r1, c2, r2, (N, C, T2, D2) = cache
    dh2 = dy.reshape(N, T2, C, D2).transpose(0, 2, 1, 3)  # (N, C, T'', D'') the inverse permutation
    dh1, dw2, db2 = F.conv2d_backward(F.relu_backward(dh2, r2), c2)
    dx1, dw1, db1 = F.conv2d_backward(F.relu_backward(dh1, r1), c1)
    return dx1[:, 0], dw1, db1, dw2, db2


def check_inputs(seed=1):
    """The inputs of the notebook's check: x (2, 11, 9), three channels, biases small enough to keep the
    ReLUs off their kink."""
    r = np.random.default_rng(seed)
    return [r.standard_normal((2, 11, 9)), r.standard_normal((3, 1, 3, 3)), 0.1 * r.standard_normal(3),
            r.standard_normal((3, 3, 3, 3)) / np.sqrt(27), 0.1 * r.standard_normal(3)]


def check(strict=True):
    """The notebook's checks, run on these solutions."""
    return [check_pair((my_conv_subsample, my_conv_subsample_backward),
                       (F.conv_subsample, F.conv_subsample_backward), check_inputs(),
                       title="your convolutional subsampling", strict=strict)]
