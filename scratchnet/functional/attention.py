"""Attention: additive (Bahdanau), dot/general (Luong) and scaled dot-product attention.

Legend: N batch, ``...`` any leading axes (batch, heads), Tq query positions, Tk key positions,
dk query/key features, dv value features, Dq decoder-state features, Dk annotation features,
A alignment-model width. Masks are boolean with **True = keep** (may attend); a row whose keys are
all masked produces zero weights, a zero output and zero gradients (never NaN).
See chapters/19-attention.md.
"""
from __future__ import annotations

import math
from typing import NamedTuple

from .._checks import check_float, check_grad, check_ndim, check_same_dtype
from ..backend import get_array_module
from ..kernels import attention as _kernels

__all__ = ["scaled_dot_product_attention", "scaled_dot_product_attention_backward",
           "additive_attention", "additive_attention_backward",
           "dot_attention", "dot_attention_backward",
           "masked_softmax", "masked_softmax_backward", "causal_mask"]


# -- the masked softmax shared by every scoring function --------------------------------------
# start-masked-softmax
def masked_softmax(s, keep):
    """p = softmax(s) over the last axis, restricted to the positions where ``keep`` is True.

    s (..., Tk) scores; keep a boolean array broadcastable to s, or None. Masked positions get
    p = 0 exactly; a row with nothing kept gets p = 0 everywhere (not NaN).
    Backward: ds = p ⊙ (dp − Σ_k dp ⊙ p). See chapters/19-attention.md#eq-softmax-jacobian.
    """
    xp = get_array_module(s)
    m = None
    if keep is not None:
        s = xp.where(keep, s, -math.inf)  # (..., Tk) masked scores are −∞
        m = s.max(axis=-1, keepdims=True)  # (..., 1) row maxima (−∞ on fully-masked rows)
        m = xp.where(xp.isfinite(m), m, 0.0)  # (..., 1) a finite shift on every row
    if m is None:
        e = s - s.max(axis=-1, keepdims=True)  # (..., Tk) shifted scores, ≤ 0
    else:
        e = s  # the fresh array made by ``where`` above
        e -= m  # in place: shifted scores, ≤ 0 (−∞ where masked)
    xp.exp(e, out=e)  # in place: exactly 0 where masked
    z = e.sum(axis=-1, keepdims=True)  # (..., 1)
    e /= xp.where(z > 0, z, 1.0)  # in place: all-zero rows stay zero
    return e  # (..., Tk) the weights p


def masked_softmax_backward(dp, p):
    """ds = p ⊙ (dp − rowsum(dp ⊙ p)): zero wherever p is zero (masked keys)."""
    check_grad("masked_softmax_backward", "dp", dp, p.shape, p.dtype)
    ds = dp * p  # (..., Tk) p ⊙ dp
    rowsum = ds.sum(axis=-1, keepdims=True)  # (..., 1) Σ_k dp ⊙ p
    ds -= p * rowsum  # in place: ds = p ⊙ dp − p ⊙ rowsum
    return ds
# end-masked-softmax


# The public pair: the readable functions above (the reference, shown in the chapter) behind the fused
# row loops of kernels/attention.py, which take NumPy scores with no mask or one (Tq, Tk) mask.
masked_softmax = _kernels.fast_masked_softmax(masked_softmax)
masked_softmax_backward = _kernels.fast_softmax_backward(masked_softmax_backward)


def causal_mask(Tq, Tk, xp=None):
    """(Tq, Tk) boolean keep-mask: query i sees keys j ≤ i + (Tk − Tq) (bottom-right aligned).

    With Tq = Tk this is the lower triangle; with Tq < Tk (the last Tq queries of a sequence whose
    first Tk − Tq keys are cached) every query still sees itself and its past.
    """
    import numpy as np
    xp = xp or np
    i = xp.arange(Tq)[:, None]  # (Tq, 1)
    j = xp.arange(Tk)[None, :]  # (1, Tk)
    return j <= i + (Tk - Tq)  # (Tq, Tk)


def _keep_mask(op, mask, causal, lead, Tq, Tk, xp):
    """Combine a user keep-mask and the causal mask into one boolean array (or None)."""
    keep = None
    if mask is not None:
        if mask.dtype.kind != "b":
            raise TypeError(f"{op}: mask must be a boolean array (True = keep), got dtype {mask.dtype}")
        full = tuple(lead) + (Tq, Tk)
        ok = mask.ndim <= len(full) and all(m in (1, f) for m, f in zip(mask.shape[::-1], full[::-1]))
        if not ok:
            raise ValueError(f"{op}: mask of shape {tuple(mask.shape)} does not broadcast to the score "
                             f"shape {full} (..., Tq, Tk)")
        keep = mask
    if causal:
        c = causal_mask(Tq, Tk, xp)  # (Tq, Tk)
        keep = c if keep is None else keep & c
    return keep


# -- scaled dot-product attention -------------------------------------------------------------
class SDPACache(NamedTuple):
    q: object
    k: object
    v: object
    p: object  # (..., Tq, Tk) attention weights (before dropout)
    dropout_mask: object  # (..., Tq, Tk) scaled keep-mask on the weights, or None
    scale: float


# start-sdpa
def scaled_dot_product_attention(q, k, v, *, mask=None, causal=False, dropout_mask=None):
    """y = softmax(q kᵀ / √dk, masked) v.

    q (..., Tq, dk), k (..., Tk, dk), v (..., Tk, dv) → y (..., Tq, dv). ``mask`` boolean,
    broadcastable to (..., Tq, Tk), True = keep; ``causal`` adds ``causal_mask(Tq, Tk)``;
    ``dropout_mask`` (..., Tq, Tk), already scaled, multiplies the weights (attention dropout).
    The weights are ``cache.p``. Backward, with P the weights and P̃ = P ⊙ dropout_mask:
        dv = P̃ᵀ dy,  dP = (dy vᵀ) ⊙ dropout_mask,  dS = P ⊙ (dP − rowsum(dP ⊙ P)) / √dk,
        dq = dS k,  dk = dSᵀ q.
    See chapters/19-attention.md#eq-sdpa-backward.
    """
    op = "scaled_dot_product_attention"
    for name, a in (("q", q), ("k", k), ("v", v)):
        check_float(op, name, a)
        if a.ndim < 2:
            raise ValueError(f"{op}: expected {name} of shape (..., T, d), got shape {tuple(a.shape)}")
    check_same_dtype(op, q=q, k=k, v=v, dropout_mask=dropout_mask)
    if q.shape[:-2] != k.shape[:-2] or k.shape[:-1] != v.shape[:-1] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"{op}: expected q (..., Tq, dk), k (..., Tk, dk), v (..., Tk, dv) with the same "
                         f"leading axes; got q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")
    xp = get_array_module(q, k, v)
    Tq, Tk = q.shape[-2], k.shape[-2]
    keep = _keep_mask(op, mask, causal, q.shape[:-2], Tq, Tk, xp)
    scale = 1.0 / math.sqrt(q.shape[-1])
    s = (q * scale) @ xp.swapaxes(k, -1, -2)  # (..., Tq, Tk) scores (scaling q is cheaper than scaling S)
    p = masked_softmax(s, keep)  # (..., Tq, Tk) weights
    if dropout_mask is not None and dropout_mask.shape != p.shape:
        raise ValueError(f"{op}: dropout_mask shape {tuple(dropout_mask.shape)} != weights shape {tuple(p.shape)}")
    pd = p if dropout_mask is None else p * dropout_mask  # (..., Tq, Tk) weights after dropout
    y = pd @ v  # (..., Tq, dv)
    return y, SDPACache(q, k, v, p, dropout_mask, scale)


def scaled_dot_product_attention_backward(dy, cache):
    """dq, dk, dv of ``scaled_dot_product_attention`` (the scores are recomputed by nobody: P is cached)."""
    q, k, v, p, dropout_mask, scale = cache
    check_grad("scaled_dot_product_attention_backward", "dy", dy, q.shape[:-1] + v.shape[-1:], q.dtype)
    xp = get_array_module(dy)
    pd = p if dropout_mask is None else p * dropout_mask  # (..., Tq, Tk)
    dv = xp.swapaxes(pd, -1, -2) @ dy  # (..., Tk, dv)
    dpd = dy @ xp.swapaxes(v, -1, -2)  # (..., Tq, Tk)
    dp = dpd if dropout_mask is None else dpd * dropout_mask  # (..., Tq, Tk)
    ds = masked_softmax_backward(dp, p)  # (..., Tq, Tk) gradient of the scores S
    dq = ds @ k  # (..., Tq, dk)
    dq *= scale  # in place: the 1/√dk applied to the smaller arrays
    dk = xp.swapaxes(ds, -1, -2) @ q  # (..., Tk, dk)
    dk *= scale
    return dq, dk, dv
# end-sdpa


# -- encoder–decoder attention (one decoder step against all encoder annotations) ---------------
def _check_seq_attention(op, query, keys, values, mask):
    check_ndim(op, "query", query, 2)
    check_ndim(op, "keys", keys, 3)
    check_ndim(op, "values", values, 3)
    N, Tk = keys.shape[:2]
    if query.shape[0] != N or values.shape[:2] != (N, Tk):
        raise ValueError(f"{op}: expected query (N, Dq), keys (N, Tk, Dk), values (N, Tk, Dv); got query "
                         f"{tuple(query.shape)}, keys {tuple(keys.shape)}, values {tuple(values.shape)}")
    if mask is not None:
        if mask.dtype.kind != "b":
            raise TypeError(f"{op}: mask must be a boolean array (True = keep), got dtype {mask.dtype}")
        if mask.shape != (N, Tk):
            raise ValueError(f"{op}: expected mask of shape (N, Tk) = {(N, Tk)}, got {tuple(mask.shape)}")


def _check_dout(op, dout, alpha, values):
    """dout = (dcontext (N, Dv), dweights (N, Tk)), either None, of the forward's dtype."""
    if not isinstance(dout, (tuple, list)) or len(dout) != 2:
        raise TypeError(f"{op}: expected dout = (dcontext, dweights) (either may be None), got {type(dout).__name__}"
                        + (f" of length {len(dout)}" if isinstance(dout, (tuple, list)) else ""))
    dcontext, dweights = dout
    if dcontext is not None:
        check_grad(op, "dcontext", dcontext, (values.shape[0], values.shape[2]), values.dtype)
    if dweights is not None:
        check_grad(op, "dweights", dweights, alpha.shape, alpha.dtype)


class AdditiveAttentionCache(NamedTuple):
    query: object  # (N, Dq)
    keys: object  # (N, Tk, Dk)
    values: object  # (N, Tk, Dv)
    wq: object  # (Dq, A)
    wk: object  # (Dk, A)
    v: object  # (A,)
    u: object  # (N, Tk, A) tanh(wqᵀ s + wkᵀ h_j)
    alpha: object  # (N, Tk) the weights


class DotAttentionCache(NamedTuple):
    query: object  # (N, Dq)
    keys: object  # (N, Tk, Dk)
    values: object  # (N, Tk, Dv)
    w: object  # (Dq, Dk) or None
    qt: object  # (N, Dk) the query in key space
    alpha: object  # (N, Tk) the weights


# start-additive
def _read(e, mask, values):
    """The step both encoder–decoder attentions share: α = softmax(e) over kept keys, context = Σ_j α_j v_j."""
    alpha = masked_softmax(e, mask)  # (N, Tk)
    context = (alpha[:, :, None] * values).sum(axis=1)  # (N, Dv)
    return context, alpha


def _read_backward(dout, alpha, values):
    """Backward of ``_read`` from dout = (dcontext, dweights), either None: dα = V·dcontext (+ dweights),
    dv_j = α_j dcontext, and de through the softmax. Returns (de, dvalues)."""
    xp = get_array_module(alpha)
    dcontext, dweights = dout
    if dcontext is None:
        dcontext = xp.zeros((values.shape[0], values.shape[2]), values.dtype)  # (N, Dv)
    dalpha = (values @ dcontext[:, :, None])[:, :, 0]  # (N, Tk)
    if dweights is not None:
        dalpha = dalpha + dweights
    dvalues = alpha[:, :, None] * dcontext[:, None, :]  # (N, Tk, Dv)
    return masked_softmax_backward(dalpha, alpha), dvalues  # de (N, Tk)


def additive_attention(query, keys, values, wq, wk, v, *, mask=None):
    """Bahdanau's alignment model: e_j = vᵀ tanh(wqᵀ s + wkᵀ h_j), α = softmax(e), c = Σ_j α_j values_j.

    query s (N, Dq), keys h (N, Tk, Dk), values (N, Tk, Dv), wq (Dq, A), wk (Dk, A), v (A,);
    mask (N, Tk) True = keep → (context (N, Dv), weights α (N, Tk)).
    Backward: dα = values·dc + dα_up, de = α ⊙ (dα − Σ α ⊙ dα), du = (de vᵀ) ⊙ (1 − u²) with
    u = tanh(...), then the two affine maps. Returns dquery, dkeys, dvalues, dwq, dwk, dv.
    See chapters/19-attention.md#eq-additive.
    """
    op = "additive_attention"
    _check_seq_attention(op, query, keys, values, mask)
    check_same_dtype(op, query=query, keys=keys, values=values, wq=wq, wk=wk, v=v)
    if (wq.shape[0] != query.shape[1] or wk.shape[0] != keys.shape[2] or wq.shape[1] != wk.shape[1]
            or v.shape != (wq.shape[1],)):
        raise ValueError(f"{op}: expected wq (Dq, A), wk (Dk, A), v (A,) for query {tuple(query.shape)} and keys "
                         f"{tuple(keys.shape)}; got wq {tuple(wq.shape)}, wk {tuple(wk.shape)}, v {tuple(v.shape)}")
    xp = get_array_module(query, keys, values)
    qp = query @ wq  # (N, A) projected decoder state
    kp = keys @ wk  # (N, Tk, A) projected annotations (precomputable once per source sentence)
    u = xp.tanh(qp[:, None, :] + kp)  # (N, Tk, A)
    e = u @ v  # (N, Tk) alignment scores
    context, alpha = _read(e, mask, values)  # (N, Dv), (N, Tk)
    return (context, alpha), AdditiveAttentionCache(query, keys, values, wq, wk, v, u, alpha)


def additive_attention_backward(dout, cache):
    """Gradients of ``additive_attention``; dout = (dcontext, dweights), either may be None."""
    query, keys, values, wq, wk, v, u, alpha = cache
    _check_dout("additive_attention_backward", dout, alpha, values)
    de, dvalues = _read_backward(dout, alpha, values)  # (N, Tk), (N, Tk, Dv)
    dv = (u * de[:, :, None]).sum(axis=(0, 1))  # (A,)
    du = de[:, :, None] * v * (1.0 - u * u)  # (N, Tk, A) through tanh
    dqp = du.sum(axis=1)  # (N, A)
    A = wq.shape[1]
    dwq = query.T @ dqp  # (Dq, A)
    dquery = dqp @ wq.T  # (N, Dq)
    dwk = keys.reshape(-1, keys.shape[2]).T @ du.reshape(-1, A)  # (Dk, A)
    dkeys = du @ wk.T  # (N, Tk, Dk)
    return dquery, dkeys, dvalues, dwq, dwk, dv
# end-additive


# start-dot
def dot_attention(query, keys, values, w=None, *, mask=None):
    """Luong's multiplicative attention: e_j = sᵀ h_j ("dot") or sᵀ w h_j ("general", w given).

    query s (N, Dq), keys h (N, Tk, Dk), values (N, Tk, Dv), w (Dq, Dk) or None (then Dq = Dk);
    mask (N, Tk) True = keep → (context (N, Dv), weights α (N, Tk)).
    Backward: de = α ⊙ (dα − Σ α ⊙ dα), dq̃ = Σ_j de_j h_j, dh_j = de_j q̃ with q̃ = s w.
    Returns dquery, dkeys, dvalues[, dw]. See chapters/19-attention.md#eq-luong.
    """
    op = "dot_attention"
    _check_seq_attention(op, query, keys, values, mask)
    check_same_dtype(op, query=query, keys=keys, values=values, w=w)
    Dq, Dk = query.shape[1], keys.shape[2]
    if (w is None and Dq != Dk) or (w is not None and w.shape != (Dq, Dk)):
        raise ValueError(f"{op}: query has {Dq} features and keys {Dk}; expected w of shape ({Dq}, {Dk}) "
                         f"(or w=None with equal sizes), got {None if w is None else tuple(w.shape)}")
    qt = query if w is None else query @ w  # (N, Dk) the query in key space
    e = (keys @ qt[:, :, None])[:, :, 0]  # (N, Tk) scores
    context, alpha = _read(e, mask, values)  # (N, Dv), (N, Tk)
    return (context, alpha), DotAttentionCache(query, keys, values, w, qt, alpha)


def dot_attention_backward(dout, cache):
    """Gradients of ``dot_attention``; dout = (dcontext, dweights), either may be None."""
    query, keys, values, w, qt, alpha = cache
    _check_dout("dot_attention_backward", dout, alpha, values)
    de, dvalues = _read_backward(dout, alpha, values)  # (N, Tk), (N, Tk, Dv)
    dqt = (de[:, :, None] * keys).sum(axis=1)  # (N, Dk)
    dkeys = de[:, :, None] * qt[:, None, :]  # (N, Tk, Dk)
    if w is None:
        return dqt, dkeys, dvalues
    dw = query.T @ dqt  # (Dq, Dk)
    dquery = dqt @ w.T  # (N, Dq)
    return dquery, dkeys, dvalues, dw
# end-dot
