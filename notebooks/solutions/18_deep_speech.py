"""Reference solutions for notebooks/18-deep-speech.ipynb's "your turn" cells (chapter 18)."""
import numpy as np

from scratchnet.exercises import check_pair
from scratchnet.models.deepspeech import ClippedReLU, ContextWindow

YOUR_TURN = ["my_context_window", "my_context_window_backward", "my_clipped_relu", "my_clipped_relu_backward"]


def my_context_window(x, *, context, stride):
    """x (N, T, D) → (y (N, ceil(T/stride), (2·context+1)·D), cache)."""
    N, T, D = x.shape
    c = context
    x_pad = np.concatenate([np.zeros((N, c, D), x.dtype), x, np.zeros((N, c, D), x.dtype)], axis=1)  # (N, T+2c, D)
    starts = np.arange(-(-T // stride)) * stride  # first padded frame of each kept window
    y = np.concatenate([x_pad[:, starts + j] for j in range(2 * c + 1)], axis=2)  # slot j of every window
    return y, (x.shape, c, starts)


def my_context_window_backward(dy, cache):
    """Each slot of each window adds its gradient back into its frame."""
    (N, T, D), c, starts = cache
    dx_pad = np.zeros((N, T + 2 * c, D), dtype=dy.dtype)
    for j in range(2 * c + 1):  # within one slot the frames are distinct, so += with indexing accumulates
        dx_pad[:, starts + j] += dy[:, :, j * D:(j + 1) * D]
    return dx_pad[:, c:c + T]


def my_clipped_relu(z, *, clip=20.0):
    """g = min(max(z, 0), clip); the cache is the mask where the gradient flows."""
    return np.clip(z, 0.0, clip), (z > 0) & (z < clip)


def my_clipped_relu_backward(dg, cache):
    """dz = dg ⊙ 1[0 < z < clip]."""
    return dg * cache


def context_window_module(x, *, context, stride):
    window = ContextWindow(context, stride)
    return window(x), window


def context_window_module_backward(dy, window):
    return window.backward(dy)


def clipped_relu_module(z, *, clip=20.0):
    act = ClippedReLU(clip)
    return act(z), act


def clipped_relu_module_backward(dg, act):
    return act.backward(dg)


def check(strict=True):
    """The notebook's checks, run on these solutions."""
    r0 = np.random.default_rng(3)
    x = r0.standard_normal((2, 7, 3))
    z = r0.uniform(-5, 25, size=(3, 4, 5))
    return [
        check_pair((my_context_window, my_context_window_backward),
                   (context_window_module, context_window_module_backward), [x],
                   options={"context": 2, "stride": 2}, title="your context window", strict=strict),
        check_pair((my_clipped_relu, my_clipped_relu_backward), (clipped_relu_module, clipped_relu_module_backward),
                   [z], options={"clip": 20.0}, title="your clipped ReLU", strict=strict),
    ]
