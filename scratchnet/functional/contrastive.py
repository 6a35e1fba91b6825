"""wav2vec 2.0's two pre-training losses: the contrastive loss of a context vector against its quantised
target and K distractors (cosine similarity over a temperature κ), and the diversity loss that keeps every
codebook entry in use (the perplexity of the batch-averaged softmax of each group).

Legend: M masked steps (rows), D vector width, K distractors per step, G codebooks (groups), V entries each.
See chapters/26-wav2vec2.md#w2v-losses.
"""
from __future__ import annotations

from typing import NamedTuple

from .._checks import check_float, check_int, check_same_dtype
from ..backend import get_array_module, scatter_add
from .activation import log_softmax
from .loss import check_dloss

__all__ = ["contrastive_loss", "contrastive_loss_backward", "diversity_loss", "diversity_loss_backward"]


class ContrastiveCache(NamedTuple):
    c_hat: object  # (M, D) unit context vectors
    q_hat: object  # (M, D) unit targets
    c_norm: object  # (M, 1) |c|
    q_norm: object  # (M, 1) |q|
    cand: object  # (M, 1 + K) row of q of every candidate: the true target first, then the distractors
    prob: object  # (M, 1 + K) softmax over the candidates
    kappa: float

    @property
    def logits(self):
        """(M, 1 + K) log-probabilities of the candidates (column 0 is the true target)."""
        return get_array_module(self.prob).log(self.prob)


def _unit(x, eps=1e-8):
    """x / ‖x‖ per row and ‖x‖ (M, 1), the norm clipped at ``eps``."""
    xp = get_array_module(x)
    n = xp.maximum(xp.sqrt((x * x).sum(axis=-1, keepdims=True)), eps)  # (M, 1)
    return x / n, n


def _unit_backward(du, u, n):
    """dx of u = x / ‖x‖: (du − u (u·du)) / ‖x‖."""
    return (du - u * (u * du).sum(axis=-1, keepdims=True)) / n


# start-contrastive
def contrastive_loss(c, q, negatives, *, kappa=0.1):
    """L = (1/M) Σ_m −log [exp(sim(c_m, q_m)/κ) / Σ_{j ∈ {m} ∪ negatives[m]} exp(sim(c_m, q_j)/κ)].

    c (M, D) context vectors at the masked steps, q (M, D) their quantised targets, negatives (M, K) ints:
    rows of q used as distractors for step m (other masked steps of the same utterance); sim is the cosine.
    Backward: ds = (p − e_0)/M; dĉ_m = Σ_k ds_mk q̂_jk / κ; dq̂_j = Σ_{(m,k): j_mk = j} ds_mk ĉ_m / κ;
    then through the normalisations. See chapters/26-wav2vec2.md#eq-w2v-contrastive-backward.
    """
    check_float("contrastive_loss", "c", c)
    check_float("contrastive_loss", "q", q)
    check_same_dtype("contrastive_loss", c=c, q=q)
    check_int("contrastive_loss", "negatives", negatives)
    if c.ndim != 2 or q.shape != c.shape or negatives.ndim != 2 or negatives.shape[0] != c.shape[0]:
        raise ValueError(f"contrastive_loss: expected c and q (M, D) and negatives (M, K), got c {tuple(c.shape)}, "
                         f"q {tuple(q.shape)}, negatives {tuple(negatives.shape)}")
    xp = get_array_module(c, q)
    M = c.shape[0]
    if negatives.size and (int(negatives.min()) < 0 or int(negatives.max()) >= M):
        raise ValueError(f"contrastive_loss: negatives must index rows of q in [0, {M}), got "
                         f"[{int(negatives.min())}, {int(negatives.max())}]")
    c_hat, c_norm = _unit(c)  # (M, D), (M, 1)
    q_hat, q_norm = _unit(q)
    cand = xp.concatenate([xp.arange(M)[:, None], xp.asarray(negatives)], axis=1)  # (M, 1 + K) rows of q
    s = (c_hat[:, None, :] * q_hat[cand]).sum(axis=-1) / kappa  # (M, 1 + K) cosine / κ
    logp, _ = log_softmax(s)  # (M, 1 + K)
    loss = -logp[:, 0].sum() / M  # the true target is candidate 0
    return loss, ContrastiveCache(c_hat, q_hat, c_norm, q_norm, cand, xp.exp(logp), float(kappa))


def contrastive_loss_backward(dloss, cache):
    """dc (M, D), dq (M, D). Each row of q collects gradient from every step that used it as a candidate."""
    c_hat, q_hat, c_norm, q_norm, cand, prob, kappa = cache
    check_dloss("contrastive_loss_backward", dloss, (), c_hat.dtype)
    xp = get_array_module(c_hat)
    M = c_hat.shape[0]
    ds = prob.copy()  # (M, 1 + K) softmax − one-hot of candidate 0
    ds[:, 0] -= 1.0
    ds *= dloss / M
    dc_hat = (ds[:, :, None] * q_hat[cand]).sum(axis=1) / kappa  # (M, D)
    dq_hat = xp.zeros_like(q_hat)  # (M, D) scatter: a row of q may be a candidate of many steps
    scatter_add(dq_hat, cand.reshape(-1), (ds[:, :, None] * c_hat[:, None, :]).reshape(-1, c_hat.shape[1]) / kappa)
    return _unit_backward(dc_hat, c_hat, c_norm), _unit_backward(dq_hat, q_hat, q_norm)
# end-contrastive


class DiversityCache(NamedTuple):
    p: object  # (M, G, V) softmax of each row's logits
    p_bar: object  # (G, V) batch average
    perplexity: object  # (G,) exp(entropy of p_bar): the number of entries in effective use


# start-diversity
def diversity_loss(logits):
    """L_d = (G V − Σ_g exp(H(p̄_g))) / (G V), p̄_g = (1/M) Σ_m softmax(l_mg), H the entropy.

    logits (M, G, V) → a scalar in [0, 1): 0 when every entry of every codebook is used equally often.
    Backward: dp̄_gv = −PPL_g (log p̄_gv + 1) · (−dL / GV); dp_mgv = dp̄_gv / M; then the softmax's Jacobian.
    See chapters/26-wav2vec2.md#eq-w2v-diversity.
    """
    check_float("diversity_loss", "logits", logits)
    if logits.ndim != 3:
        raise ValueError(f"diversity_loss: expected logits (M, G, V), got shape {tuple(logits.shape)}")
    xp = get_array_module(logits)
    _, G, V = logits.shape
    logp, _ = log_softmax(logits)  # (M, G, V)
    p = xp.exp(logp)
    p_bar = p.mean(axis=0)  # (G, V) how often each entry is chosen, softly
    perplexity = xp.exp(-(p_bar * xp.log(p_bar + 1e-30)).sum(axis=-1))  # (G,) exp of the entropy
    return (G * V - perplexity.sum()) / (G * V), DiversityCache(p, p_bar, perplexity)


def diversity_loss_backward(dloss, cache):
    """dlogits (M, G, V)."""
    p, p_bar, perplexity = cache
    check_dloss("diversity_loss_backward", dloss, (), p.dtype)
    xp = get_array_module(p)
    M, G, V = p.shape
    dppl = -dloss / (G * V)  # each group's perplexity enters with weight −1/(GV)
    dH = perplexity * dppl  # (G,) d exp(H) = exp(H) dH
    dp_bar = -(xp.log(p_bar + 1e-30) + 1.0) * dH[:, None]  # (G, V) dH/dp̄ = −(log p̄ + 1)
    dp = xp.broadcast_to(dp_bar / M, p.shape)  # (M, G, V) the mean spreads it over the rows
    return p * (dp - (dp * p).sum(axis=-1, keepdims=True))  # through each row's softmax
# end-diversity
