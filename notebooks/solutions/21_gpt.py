"""Reference solutions for notebooks/21-gpt.ipynb's "your turn" cells (chapter 21)."""
import numpy as np

import scratchnet as sn
from scratchnet.exercises import check_function_output
from scratchnet.models.gpt import sample_next

YOUR_TURN = ["my_sample_next"]


def my_sample_next(logits, *, temperature=1.0, top_k=None, rng=None):
    """One id per row of logits (N, V), drawn from softmax(logits / temperature), among the top_k if given."""
    z = np.asarray(logits, dtype=np.float64) / max(temperature, 1e-8)  # (N, V)
    if top_k is not None:
        kth = np.sort(z, axis=-1)[:, -top_k][:, None]  # (N, 1) the k-th largest score of each row
        z = np.where(z < kth, -np.inf, z)  # the others can never be drawn
    p = np.exp(z - z.max(axis=-1, keepdims=True))  # (N, V)
    p /= p.sum(axis=-1, keepdims=True)
    u = sn.get_rng(rng).random((p.shape[0], 1))  # (N, 1) one uniform per row
    return np.minimum((p.cumsum(axis=-1) < u).sum(axis=-1), p.shape[1] - 1)  # (N,) inverse CDF


def check(strict=True):
    """The notebook's checks, run on these solutions."""
    logits = 2.0 * np.random.default_rng(0).standard_normal((64, 11))
    return [
        check_function_output(my_sample_next, sample_next, [logits],
                              options={"temperature": 0.7, "top_k": 3, "rng": 0}, strict=strict),
    ]
