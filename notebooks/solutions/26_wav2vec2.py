"""Reference solutions for notebooks/26-wav2vec2.ipynb's "your turn" cells (chapter 26)."""
import numpy as np

import scratchnet.functional as F
from scratchnet.exercises import check_pair

YOUR_TURN = ["my_diversity_loss", "my_diversity_loss_backward"]


def my_diversity_loss(logits):
    """(M, G, V) → L_d = (G·V − Σ_g exp(H(p̄_g))) / (G·V), p̄_g the batch mean of each row's softmax."""
    M, G, V = logits.shape
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    p = e / e.sum(axis=-1, keepdims=True)  # (M, G, V)
    p_bar = p.mean(axis=0)  # (G, V)
    ppl = np.exp(-(p_bar * np.log(p_bar)).sum(axis=-1))  # (G,) perplexity of each codebook
    return (G * V - ppl.sum()) / (G * V), (p, p_bar, ppl)


def my_diversity_loss_backward(dloss, cache):
    """dlogits (M, G, V): perplexity → entropy → batch mean → softmax, one line each."""
    p, p_bar, ppl = cache
    M, G, V = p.shape
    dH = ppl * (-dloss / (G * V))  # (G,) d exp(H) = exp(H) dH
    dp_bar = -(np.log(p_bar) + 1.0) * dH[:, None]  # (G, V)
    dp = np.broadcast_to(dp_bar / M, p.shape)  # (M, G, V)
    return p * (dp - (dp * p).sum(axis=-1, keepdims=True))


def check_inputs(seed=1):
    """The notebook's check: logits of 7 frames, 2 codebooks of 5 entries."""
    return [np.random.default_rng(seed).standard_normal((7, 2, 5))]


def check(strict=True):
    """The notebook's checks, run on these solutions."""
    return [check_pair((my_diversity_loss, my_diversity_loss_backward), (F.diversity_loss, F.diversity_loss_backward),
                       check_inputs(), title="your diversity loss", strict=strict)]
