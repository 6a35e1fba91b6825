"""Reference solutions for notebooks/20-transformer.ipynb's "your turn" cells (chapter 20)."""
import numpy as np

import scratchnet.functional as F
from scratchnet import nn
from scratchnet.exercises import check_pair

YOUR_TURN = ["my_self_attention", "my_self_attention_backward", "sdpa_lse", "sdpa_lse_backward"]


# -- your turn: multi-head self-attention as a functional pair -----------------------------------
def split_heads(a, num_heads):
    """(N, T, E) → (N, H, T, E/H)."""
    N, T, E = a.shape
    return a.reshape(N, T, num_heads, E // num_heads).transpose(0, 2, 1, 3)


def merge_heads(a):
    """(N, H, T, hd) → (N, T, H·hd): the inverse of split_heads, and its backward."""
    N, H, T, hd = a.shape
    return a.transpose(0, 2, 1, 3).reshape(N, T, H * hd)


def my_self_attention(x, wq, bq, wk, bk, wv, bv, wo, bo, *, num_heads, causal=False):
    """MHA(x) = merge(softmax(Q_h K_hᵀ / √d_h) V_h) W_o + b_o with Q = x W_q + b_q (likewise K, V)."""
    q, cq = F.linear(x, wq, bq)  # (N, T, E)
    k, ck = F.linear(x, wk, bk)
    v, cv = F.linear(x, wv, bv)
    o, ca = F.scaled_dot_product_attention(split_heads(q, num_heads), split_heads(k, num_heads),
                                           split_heads(v, num_heads), causal=causal)  # (N, H, T, hd)
    y, co = F.linear(merge_heads(o), wo, bo)  # (N, T, E)
    return y, (cq, ck, cv, ca, co, num_heads)


def my_self_attention_backward(dy, cache):
    """The same nodes in reverse; x fed all three projections, so dx is the sum of three gradients."""
    cq, ck, cv, ca, co, H = cache
    do, dwo, dbo = F.linear_backward(dy, co)  # (N, T, E)
    # split's backward is merge's forward, and merge's backward is split's
    dqh, dkh, dvh = F.scaled_dot_product_attention_backward(split_heads(do, H), ca)
    dxq, dwq, dbq = F.linear_backward(merge_heads(dqh), cq)
    dxk, dwk, dbk = F.linear_backward(merge_heads(dkh), ck)
    dxv, dwv, dbv = F.linear_backward(merge_heads(dvh), cv)
    return dxq + dxk + dxv, dwq, dbq, dwk, dbk, dwv, dbv, dwo, dbo


# -- the reference: the library's nn.MultiHeadAttention with given weights, as a pair -------------
def library_self_attention(x, wq, bq, wk, bk, wv, bv, wo, bo, *, num_heads, causal=False):
    mha = nn.MultiHeadAttention(x.shape[-1], num_heads, rng=0, dtype=x.dtype)
    for lin, w, b in zip((mha.q_proj, mha.k_proj, mha.v_proj, mha.out_proj), (wq, wk, wv, wo), (bq, bk, bv, bo)):
        lin.weight.data, lin.bias.data = w, b
    return mha(x, causal=causal), mha


def library_self_attention_backward(dy, mha):
    mha.zero_grad()
    dx = mha.backward(dy)
    return (dx,) + tuple(g for lin in (mha.q_proj, mha.k_proj, mha.v_proj, mha.out_proj)
                         for g in (lin.weight.grad, lin.bias.grad))


# -- exercise 3: attention that caches the row log-sum-exp instead of P ----------------------------
def sdpa_lse(q, k, v, causal=False):
    """The forward of scaled dot-product attention, caching q, k, v and ℓ = log Σ_j exp S_ij (..., Tq, 1)."""
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])  # (..., Tq, Tk)
    if causal:
        s = np.where(F.causal_mask(q.shape[-2], k.shape[-2]), s, -np.inf)
    m = s.max(axis=-1, keepdims=True)  # (..., Tq, 1)
    lse = m + np.log(np.exp(s - m).sum(axis=-1, keepdims=True))  # (..., Tq, 1)
    y = np.exp(s - lse) @ v  # (..., Tq, dv); P is not kept
    return y, (q, k, v, lse, causal)


def sdpa_lse_backward(dy, cache):
    """Recompute P = exp(S − ℓ) from q, k, then the usual backward."""
    q, k, v, lse, causal = cache
    scale = 1.0 / np.sqrt(q.shape[-1])
    s = q @ np.swapaxes(k, -1, -2) * scale
    if causal:
        s = np.where(F.causal_mask(q.shape[-2], k.shape[-2]), s, -np.inf)
    p = np.exp(s - lse)  # (..., Tq, Tk) recomputed
    dv = np.swapaxes(p, -1, -2) @ dy
    dp = dy @ np.swapaxes(v, -1, -2)
    ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
    return ds @ k * scale, np.swapaxes(ds, -1, -2) @ q * scale, dv


def check(strict=True):
    """The notebook's checks, run on these solutions."""
    rng = np.random.default_rng(0)
    N, T, E, H = 2, 4, 6, 2
    weights = []
    for _ in range(4):
        weights += [rng.standard_normal((E, E)) / np.sqrt(E), 0.1 * rng.standard_normal(E)]
    x = rng.standard_normal((N, T, E))
    ex_rng = np.random.default_rng(3)
    q, k, v = (ex_rng.standard_normal((2, 2, 5, d)) for d in (3, 3, 4))
    return [
        check_pair((my_self_attention, my_self_attention_backward),
                   (library_self_attention, library_self_attention_backward), [x, *weights],
                   options={"num_heads": H, "causal": True}, title="your multi-head self-attention", strict=strict),
        check_pair((sdpa_lse, sdpa_lse_backward),
                   (F.scaled_dot_product_attention, F.scaled_dot_product_attention_backward), [q, k, v],
                   options={"causal": True}, title="exercise 3: attention without a cached P", strict=strict),
    ]
