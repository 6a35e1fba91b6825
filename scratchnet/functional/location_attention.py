"""Location-aware attention (Chorowski et al. 2015, "Attention-based models for speech recognition"):
Bahdanau's additive score plus a term read from the previous step's alignment through a 1-D convolution.

Legend: N batch, Tk encoder positions, Dq decoder-state features, Dk key features, Dv value features,
A alignment-model width, K location filters, r filter width (odd; ``r // 2`` zeros pad each end).
    f_t = F ∗ α_{t−1}                                   (N, Tk, K) K filters slid along the keys
    e_{t,j} = vᵀ tanh(wqᵀ s_t + wkᵀ h_j + wfᵀ f_{t,j})   (N, Tk)
    α_t = softmax(e_t) over kept keys,  c_t = Σ_j α_{t,j} values_j
See chapters/24-las.md#eq-location.
"""
from __future__ import annotations

from typing import NamedTuple

from .._checks import check_same_dtype
from ..backend import get_array_module
from .attention import _check_dout, _check_seq_attention, _read, _read_backward

__all__ = ["location_attention", "location_attention_backward"]


class LocationAttentionCache(NamedTuple):
    query: object  # (N, Dq)
    keys: object  # (N, Tk, Dk)
    values: object  # (N, Tk, Dv)
    wq: object  # (Dq, A)
    wk: object  # (Dk, A)
    filters: object  # (K, r)
    wf: object  # (K, A)
    v: object  # (A,)
    windows: object  # (N, Tk, r) the padded previous alignment seen by each position
    f: object  # (N, Tk, K) location features
    u: object  # (N, Tk, A) tanh(...)
    alpha: object  # (N, Tk) the weights


def _check_shapes(op, query, keys, prev_alpha, wq, wk, filters, wf, v):
    A = wq.shape[1] if wq.ndim == 2 else -1
    ok = (wq.ndim == 2 and wq.shape[0] == query.shape[1] and wk.shape == (keys.shape[2], A) and v.shape == (A,)
          and filters.ndim == 2 and filters.shape[1] % 2 == 1 and wf.shape == (filters.shape[0], A)
          and prev_alpha.shape == keys.shape[:2])
    if not ok:
        raise ValueError(f"{op}: expected prev_alpha (N, Tk) = {tuple(keys.shape[:2])}, wq (Dq, A), wk (Dk, A), "
                         f"filters (K, r) with r odd, wf (K, A), v (A,) for query {tuple(query.shape)} and keys "
                         f"{tuple(keys.shape)}; got prev_alpha {tuple(prev_alpha.shape)}, wq {tuple(wq.shape)}, "
                         f"wk {tuple(wk.shape)}, filters {tuple(filters.shape)}, wf {tuple(wf.shape)}, "
                         f"v {tuple(v.shape)}")


# start-location
def location_attention(query, keys, values, prev_alpha, wq, wk, filters, wf, v, *, mask=None):
    """e_j = vᵀ tanh(wqᵀ s + wkᵀ h_j + wfᵀ (F ∗ α_prev)_j), α = softmax(e), c = Σ_j α_j values_j.

    query s (N, Dq), keys h (N, Tk, Dk), values (N, Tk, Dv), prev_alpha (N, Tk), wq (Dq, A), wk (Dk, A),
    filters F (K, r), wf (K, A), v (A,); mask (N, Tk) True = keep → (context (N, Dv), weights α (N, Tk)).
    Backward: as additive attention down to du = (de vᵀ) ⊙ (1 − u²); then dwf = fᵀ du, df = du wfᵀ,
    dF = Σ df ⊗ windows, and dα_prev adds each window slot back to its position (a transposed
    convolution). Returns dquery, dkeys, dvalues, dprev_alpha, dwq, dwk, dfilters, dwf, dv.
    See chapters/24-las.md#eq-location-backward.
    """
    op = "location_attention"
    _check_seq_attention(op, query, keys, values, mask)
    check_same_dtype(op, query=query, keys=keys, values=values, prev_alpha=prev_alpha, wq=wq, wk=wk,
                     filters=filters, wf=wf, v=v)
    _check_shapes(op, query, keys, prev_alpha, wq, wk, filters, wf, v)
    xp = get_array_module(query, keys, values)
    N, Tk = prev_alpha.shape
    r = filters.shape[1]
    pad = xp.zeros((N, r // 2), dtype=prev_alpha.dtype)  # (N, r//2)
    a_pad = xp.concatenate([pad, prev_alpha, pad], axis=1)  # (N, Tk + r − 1)
    windows = xp.stack([a_pad[:, j:j + Tk] for j in range(r)], axis=-1)  # (N, Tk, r): α_prev[j + i − r//2]
    f = windows @ filters.T  # (N, Tk, K) the convolution (cross-correlation, as PyTorch's conv1d)
    u = xp.tanh((query @ wq)[:, None, :] + keys @ wk + f @ wf)  # (N, Tk, A)
    e = u @ v  # (N, Tk) alignment scores
    context, alpha = _read(e, mask, values)  # (N, Dv), (N, Tk)
    return (context, alpha), LocationAttentionCache(query, keys, values, wq, wk, filters, wf, v, windows, f, u,
                                                    alpha)


def location_attention_backward(dout, cache):
    """Gradients of ``location_attention``; dout = (dcontext, dweights), either may be None."""
    query, keys, values, wq, wk, filters, wf, v, windows, f, u, alpha = cache
    _check_dout("location_attention_backward", dout, alpha, values)
    xp = get_array_module(u)
    N, Tk, r = windows.shape
    A = wq.shape[1]
    de, dvalues = _read_backward(dout, alpha, values)  # (N, Tk), (N, Tk, Dv)
    dv = (u * de[:, :, None]).sum(axis=(0, 1))  # (A,)
    du = de[:, :, None] * v * (1.0 - u * u)  # (N, Tk, A) through tanh
    dqp = du.sum(axis=1)  # (N, A) the query term was broadcast over the keys
    dwq, dquery = query.T @ dqp, dqp @ wq.T  # (Dq, A), (N, Dq)
    du2 = du.reshape(-1, A)  # (N·Tk, A)
    dwk, dkeys = keys.reshape(-1, keys.shape[2]).T @ du2, du @ wk.T  # (Dk, A), (N, Tk, Dk)
    dwf = f.reshape(-1, f.shape[2]).T @ du2  # (K, A)
    df = du @ wf.T  # (N, Tk, K)
    dfilters = df.reshape(-1, df.shape[2]).T @ windows.reshape(-1, r)  # (K, r)
    dwindows = df @ filters  # (N, Tk, r)
    da_pad = xp.zeros((N, Tk + r - 1), dtype=u.dtype)  # (N, Tk + r − 1)
    for j in range(r):  # slot j of window i read α_pad[i + j]: add it back there
        da_pad[:, j:j + Tk] += dwindows[:, :, j]
    dprev_alpha = da_pad[:, r // 2:r // 2 + Tk]  # (N, Tk) the padding's share is dropped
    return dquery, dkeys, dvalues, dprev_alpha, dwq, dwk, dfilters, dwf, dv
# end-location
