"""Reference solutions for notebooks/03-dbn.ipynb's "your turn" cells (chapter 03)."""
import numpy as np

import scratchnet.functional as F
from scratchnet.exercises import check_function_output

YOUR_TURN = ["my_up", "my_down"]


def _sigmoid(a):
    """σ(a) from e^{−|a|} ≤ 1, so no input overflows."""
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def my_up(x, w, c):
    """P(h = 1 | x) = σ(xW + c) (N, H): the data the next RBM of the stack is trained on."""
    return _sigmoid(x @ w + c)  # (N, H)


def my_down(h, w, b):
    """E[v | h] = σ(hWᵀ + b) (N, D): one step of the generative pass."""
    return _sigmoid(h @ w.T + b)  # (N, D)


def check(strict=True):
    """The notebook's checks, run on these solutions."""
    g = np.random.default_rng(0)
    xc, wc = g.random((5, 7)), 2 * g.standard_normal((7, 4))
    cc, bc, hc = g.standard_normal(4), g.standard_normal(7), g.random((5, 4))
    return [
        check_function_output(my_up, F.hidden_probs, [xc, wc, cc], title="your up pass (my_up)", strict=strict),
        check_function_output(my_down, F.visible_probs, [hc, wc, bc], title="your down pass (my_down)", strict=strict),
    ]
