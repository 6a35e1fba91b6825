"""Reference solutions for notebooks/19-attention.ipynb's "your turn" cells (chapter 19)."""
import numpy as np

import scratchnet.functional as F
from scratchnet.exercises import check_pair

YOUR_TURN = ["my_sdpa", "my_sdpa_backward"]


def my_sdpa(q, k, v, causal=False):
    """Y = softmax(Q Kᵀ / √dk) V, with the causal mask when asked; q (..., Tq, dk), k (..., Tk, dk), v (..., Tk, dv)."""
    dk = q.shape[-1]
    S = q @ np.swapaxes(k, -1, -2) / np.sqrt(dk)  # (..., Tq, Tk) scores
    keep = F.causal_mask(q.shape[-2], k.shape[-2]) if causal else None  # (Tq, Tk) True = keep, or None
    P = F.masked_softmax(S, keep)  # (..., Tq, Tk) weights: exactly 0 where masked
    Y = P @ v  # (..., Tq, dv)
    return Y, (q, k, v, P)


def my_sdpa_backward(dy, cache):
    """dV = Pᵀ dY, dP = dY Vᵀ, dS = P ⊙ (dP − rowsum(dP ⊙ P)), dQ = dS K / √dk, dK = dSᵀ Q / √dk."""
    q, k, v, P = cache
    dk = q.shape[-1]
    dV = np.swapaxes(P, -1, -2) @ dy  # (..., Tk, dv)
    dP = dy @ np.swapaxes(v, -1, -2)  # (..., Tq, Tk)
    dS = P * (dP - (dP * P).sum(axis=-1, keepdims=True))  # (..., Tq, Tk) zero wherever P is zero
    dQ = dS @ k / np.sqrt(dk)  # (..., Tq, dk)
    dK = np.swapaxes(dS, -1, -2) @ q / np.sqrt(dk)  # (..., Tk, dk)
    return dQ, dK, dV


def check(strict=True):
    """The notebook's checks, run on these solutions."""
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 5, 3))
    return [
        check_pair((my_sdpa, my_sdpa_backward),
                   (F.scaled_dot_product_attention, F.scaled_dot_product_attention_backward),
                   [q, k, v], options={"causal": True}, strict=strict),
    ]
