"""Reference solutions for notebooks/24-las.ipynb's "your turn" cells (chapter 24)."""
import numpy as np

import scratchnet.functional as F
from scratchnet.exercises import check_pair

YOUR_TURN = ["my_pyramid_concat", "my_pyramid_concat_backward"]


def my_pyramid_concat(x):
    """y[:, t] = [x[:, 2t]; x[:, 2t+1]]: (N, T, D) → (N, T // 2, 2D); an odd last frame is dropped."""
    N, T, D = x.shape
    Tr = T // 2
    return x[:, :2 * Tr].reshape(N, Tr, 2 * D), x.shape  # (N, T', 2D)


def my_pyramid_concat_backward(dy, cache):
    """dx (N, T, D): each half of dy[:, t] back to its frame, zero on a dropped last frame."""
    N, T, D = cache
    dx = np.zeros((N, T, D), dtype=dy.dtype)
    dx[:, :2 * (T // 2)] = dy.reshape(N, 2 * (T // 2), D)
    return dx


def monotonic_fraction(alignment):
    """Exercise 5: the fraction of consecutive steps whose attention peak does not move backwards."""
    peaks = np.asarray(alignment).argmax(axis=1)
    return 1.0 if len(peaks) < 2 else float(np.mean(peaks[1:] >= peaks[:-1]))


def check(strict=True):
    """The notebook's checks, run on these solutions."""
    x = np.random.default_rng(3).standard_normal((2, 9, 4))
    return [
        check_pair((my_pyramid_concat, my_pyramid_concat_backward), (F.pyramid_concat, F.pyramid_concat_backward),
                   [x], title="your pyramid_concat", strict=strict),
    ]
