"""Reference solutions for notebooks/05-convolution.ipynb's "your turn" cells (chapter 05)."""
import numpy as np

import scratchnet.functional as F
from scratchnet.exercises import check_pair

YOUR_TURN = ["my_conv2d", "my_conv2d_backward", "my_max_pool2d", "my_max_pool2d_backward"]


def my_conv2d(x, w, b, *, stride=1, padding=0):
    """y = W X + b with X the unfolded input: x (N, C, H, W), w (C_out, C, KH, KW), b (C_out,); int stride, padding."""
    N, C, H, W = x.shape
    C_out, _, KH, KW = w.shape
    s, P = stride, padding
    OH, OW = (H + 2 * P - KH) // s + 1, (W + 2 * P - KW) // s + 1
    xpad = np.pad(x, ((0, 0), (0, 0), (P, P), (P, P)))  # (N, C, H+2P, W+2P)
    cols = np.empty((C, KH, KW, N, OH, OW), dtype=x.dtype)  # unfold: one strided slice per tap (i, j)
    for i in range(KH):
        for j in range(KW):
            cols[:, i, j] = xpad[:, :, i:i + s * (OH - 1) + 1:s, j:j + s * (OW - 1) + 1:s].transpose(1, 0, 2, 3)
    X = cols.reshape(C * KH * KW, N * OH * OW)  # (C·KH·KW, N·OH·OW)
    Wm = w.reshape(C_out, -1)  # (C_out, C·KH·KW)
    Y = Wm @ X + b[:, None]  # GEMM + bias: (C_out, N·OH·OW)
    y = Y.reshape(C_out, N, OH, OW).transpose(1, 0, 2, 3)  # (N, C_out, OH, OW)
    return y, (X, w, x.shape, s, P)


def my_conv2d_backward(dy, cache):
    """The staged walk in reverse: bias, GEMM, fold (sum each pixel's copies), crop the padding."""
    X, w, (N, C, H, W), s, P = cache
    C_out, _, KH, KW = w.shape
    OH, OW = dy.shape[2:]
    dY = dy.transpose(1, 0, 2, 3).reshape(C_out, -1)  # (C_out, N·OH·OW)
    db = dY.sum(axis=1)  # (C_out,)
    dw = (dY @ X.T).reshape(w.shape)  # (C_out, C, KH, KW)
    dcols = (w.reshape(C_out, -1).T @ dY).reshape(C, KH, KW, N, OH, OW)
    dxpad = np.zeros((N, C, H + 2 * P, W + 2 * P), dtype=dy.dtype)
    for i in range(KH):  # fold: add every tap's copy back where it came from
        for j in range(KW):
            dxpad[:, :, i:i + s * (OH - 1) + 1:s, j:j + s * (OW - 1) + 1:s] += dcols[:, i, j].transpose(1, 0, 2, 3)
    dx = dxpad[:, :, P:P + H, P:P + W]  # crop: the padding's gradient is dropped
    return dx, dw, db


def my_max_pool2d(x, *, kernel_size, stride=None, padding=0):
    """y = max over each window of x padded with −∞; caches each window's winning tap."""
    N, C, H, W = x.shape
    K, s, P = kernel_size, stride or kernel_size, padding
    OH, OW = (H + 2 * P - K) // s + 1, (W + 2 * P - K) // s + 1
    xpad = np.pad(x, ((0, 0), (0, 0), (P, P), (P, P)), constant_values=-np.inf)
    taps = np.stack([xpad[:, :, i:i + s * (OH - 1) + 1:s, j:j + s * (OW - 1) + 1:s]
                     for i in range(K) for j in range(K)])  # (K·K, N, C, OH, OW), tap k = i·K + j
    arg = taps.argmax(axis=0)  # the first maximum in row-major order
    y = np.take_along_axis(taps, arg[None], axis=0)[0]  # (N, C, OH, OW)
    return y, (arg, x.shape, K, s, P)


def my_max_pool2d_backward(dy, cache):
    """Scatter-add each window's dy to its winner (overlapping windows can share one)."""
    arg, (N, C, H, W), K, s, P = cache
    OH, OW = dy.shape[2:]
    dxpad = np.zeros((N, C, H + 2 * P, W + 2 * P), dtype=dy.dtype)
    for i in range(K):
        for j in range(K):
            dxpad[:, :, i:i + s * (OH - 1) + 1:s, j:j + s * (OW - 1) + 1:s] += dy * (arg == i * K + j)
    return dxpad[:, :, P:P + H, P:P + W]


def check(strict=True):
    """The notebook's checks, run on these solutions."""
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)
    xp = rng.permutation(2 * 3 * 7 * 7).reshape(2, 3, 7, 7) / 10.0  # distinct values: no ties
    return [
        check_pair((my_conv2d, my_conv2d_backward), (F.conv2d, F.conv2d_backward), [x, w, b],
                   options=dict(stride=2, padding=1), strict=strict),
        check_pair((my_max_pool2d, my_max_pool2d_backward), (F.max_pool2d, F.max_pool2d_backward), [xp],
                   options=dict(kernel_size=3, stride=2, padding=1), strict=strict),
    ]
