"""Reference solutions for notebooks/33-pruning.ipynb's "your turn" cells (chapter 33)."""
import numpy as np

import scratchnet.functional as F
from scratchnet.exercises import check_pair

YOUR_TURN = ["my_masked_linear", "my_masked_linear_backward"]


def my_masked_linear(x, w, b, *, mask):
    """y = x (w ⊙ mask) + b for x (N, D), w and mask (D, M), b (M,)."""
    w_e = w * mask  # (D, M) the weights in use
    y = x @ w_e + b  # (N, M)
    return y, (x, w_e, mask)


def my_masked_linear_backward(dy, cache):
    """dx = dy w_eᵀ, dw = (xᵀ dy) ⊙ mask, db = Σ_n dy."""
    x, w_e, mask = cache
    dx = dy @ w_e.T  # (N, D)
    dw = (x.T @ dy) * mask  # (D, M) the chain rule through w ⊙ mask
    db = dy.sum(axis=0)  # (M,)
    return dx, dw, db


def check(strict=True):
    """The notebook's check, run on these solutions."""
    r0 = np.random.default_rng(0)
    x, w, b = r0.standard_normal((5, 4)), r0.standard_normal((4, 3)), r0.standard_normal(3)
    mask = (r0.random((4, 3)) < 0.5).astype(np.float64)
    return [check_pair((my_masked_linear, my_masked_linear_backward), (F.masked_linear, F.masked_linear_backward),
                       [x, w, b], options={"mask": mask}, title="your masked linear", strict=strict)]
