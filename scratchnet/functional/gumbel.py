"""The Gumbel-softmax (Jang, Gu and Poole 2017; Maddison, Mnih and Teh 2017) and its straight-through
form, as wav2vec 2.0's product quantiser uses it to pick one codebook entry per group.

Legend: ... leading axes (frames, groups), V entries per codebook, τ the temperature.
The Gumbel noise comes in explicitly (``noise=``) or is drawn from ``rng``, so gradchecks are
deterministic. See chapters/26-wav2vec2.md#w2v-gumbel.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._checks import check_float, check_grad
from .._random import get_rng
from ..backend import get_array_module, random_uniform

__all__ = ["gumbel_noise", "gumbel_softmax", "gumbel_softmax_backward"]


class GumbelCache(NamedTuple):
    y_soft: object  # (..., V) softmax((l + g) / τ): the soft sample, whose Jacobian the backward uses
    tau: float
    hard: bool


def gumbel_noise(shape, *, rng=None, dtype="float64", eps=1e-10, xp=np):
    """Standard Gumbel draws g = −log(−log u), u ~ U(0, 1) clipped away from 0 and 1, of ``shape``.

    NumPy by default; ``xp=cupy`` draws on the GPU from a generator seeded by one draw of ``rng``
    (``backend.random_uniform``), which gives different noise than the CPU for the same seed.
    """
    u = random_uniform(get_rng(rng), shape, xp=xp).clip(eps, 1.0 - eps)  # (shape)
    return (-xp.log(-xp.log(u))).astype(dtype)


# start-gumbel
def gumbel_softmax(logits, *, tau=1.0, hard=True, noise=None, rng=None):
    """A sample from the softmax over the last axis: y_soft = softmax((l + g) / τ), g ~ Gumbel(0, 1).

    logits (..., V) → y (..., V). ``hard=True`` returns the one-hot of argmax(l + g) (a discrete choice)
    while the backward uses y_soft's Jacobian: the straight-through estimator. ``hard=False`` returns y_soft.
    Backward (both): dl = y_soft ⊙ (dy − Σ_v dy ⊙ y_soft) / τ. See chapters/26-wav2vec2.md#eq-w2v-gumbel-backward.
    """
    check_float("gumbel_softmax", "logits", logits)
    if not tau > 0:
        raise ValueError(f"gumbel_softmax: the temperature tau must be > 0, got {tau}")
    xp = get_array_module(logits)
    if noise is None:
        noise = gumbel_noise(logits.shape, rng=rng, dtype=logits.dtype, xp=xp)  # (..., V) on logits' device
    elif noise.shape != logits.shape:
        raise ValueError(f"gumbel_softmax: expected noise of the logits' shape {tuple(logits.shape)}, "
                         f"got {tuple(noise.shape)}")
    s = (logits + noise.astype(logits.dtype)) / tau  # (..., V) perturbed, tempered scores
    e = xp.exp(s - s.max(axis=-1, keepdims=True))  # (..., V) stable softmax
    y_soft = e / e.sum(axis=-1, keepdims=True)  # (..., V)
    if not hard:
        return y_soft, GumbelCache(y_soft, float(tau), False)
    k = s.argmax(axis=-1)  # (...) the chosen entry (the softmax's argmax too: τ > 0 keeps the order)
    y_hard = (xp.arange(logits.shape[-1]) == k[..., None]).astype(logits.dtype)  # (..., V) one-hot
    return y_hard, GumbelCache(y_soft, float(tau), True)


def gumbel_softmax_backward(dy, cache):
    """dlogits (..., V): the soft sample's softmax Jacobian applied to dy, divided by τ (straight-through
    when the forward was hard: dy of the one-hot is passed on as if it were dy of y_soft)."""
    y_soft, tau, _ = cache
    check_grad("gumbel_softmax_backward", "dy", dy, y_soft.shape, y_soft.dtype)
    inner = (dy * y_soft).sum(axis=-1, keepdims=True)  # (..., 1) Σ_v dy_v y_v
    return y_soft * (dy - inner) / tau  # (..., V)
# end-gumbel
