"""Connectionist temporal classification (CTC): the loss, its α/β lattice and its gradient.

Legend: N batch, T time (frames), C classes (the blank included), S target length (padded),
L = 2S + 1 extended labels (a blank before, between and after the target labels).
Every lattice value is a log-probability; −inf marks an unreachable cell. This file is the
reference the chapter reads; each pass makes one call into ``scratchnet/kernels/ctc.py``, which runs
it or the Numba loops. See chapters/17-ctc.md.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .._checks import check_float, check_int, check_ndim
from ..backend import asnumpy, get_array_module
from ..kernels import ctc as _kernels
from .loss import check_dloss

__all__ = ["ctc_loss", "ctc_loss_backward", "ctc_lattice"]

_REDUCTIONS = ("mean", "sum", "none")
NEG_INF = -math.inf


# -- the extended label sequence ---------------------------------------------------------------
# [ctc-extend-start]
def _extend_targets(xp, targets, target_lengths, blank):
    """ext (N, L): blank, l_1, blank, l_2, ..., l_S, blank; skip (N, L): may state s be entered
    from s − 2 (a label that differs from the label two states back); ext_lengths (N,) = 2S_n + 1."""
    N, S = targets.shape
    valid = xp.arange(S)[None, :] < target_lengths[:, None]  # (N, S) real labels, not padding
    ext = xp.full((N, 2 * S + 1), blank, dtype=xp.int64)  # (N, L)
    ext[:, 1::2] = xp.where(valid, targets, blank)
    skip = xp.zeros(ext.shape, dtype=bool)  # (N, L)
    skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    return ext, skip, 2 * target_lengths.astype(xp.int64) + 1
# [ctc-extend-end]


# -- vectorised references (loop over time; vectorised over the batch and extended labels) -------
def _lse(xp, *terms):
    """Elementwise log Σ exp(terms), exact when some or all terms are −inf."""
    m = terms[0]
    for x in terms[1:]:
        m = xp.maximum(m, x)
    m_safe = xp.where(xp.isfinite(m), m, 0.0)  # all −inf → 0, so the sum below is 0 and log gives −inf
    total = sum(xp.exp(x - m_safe) for x in terms)
    with np.errstate(divide="ignore"):
        return xp.log(total) + m_safe


def _shift(xp, a, k, mask=None):
    """a shifted right by k along the last axis (k < 0: left), −inf filled; then −inf where ~mask."""
    pad = xp.full(a.shape[:-1] + (min(abs(k), a.shape[-1]),), NEG_INF, dtype=a.dtype)  # (N, |k|), at most L
    if pad.shape[-1] == a.shape[-1]:  # shifted out entirely (L = 1: every target empty)
        out = pad
    else:
        out = xp.concatenate([pad, a[:, :-k]], axis=1) if k > 0 else xp.concatenate([a[:, -k:], pad], axis=1)
    return out if mask is None else xp.where(mask, out, NEG_INF)


# [ctc-alpha-ref-start]
def _alpha_reference(xp, lp_ext, skip, input_lengths, ext_lengths):
    """alpha (N, T, L) and log p (N,) by the forward recursion, one time step per iteration."""
    N, T, L = lp_ext.shape
    live = xp.arange(L)[None, :] < ext_lengths[:, None]  # (N, L) states of each sequence
    alpha = xp.full((N, T, L), NEG_INF, dtype=lp_ext.dtype)  # (N, T, L)
    a = xp.where(live & (xp.arange(L)[None, :] < 2), lp_ext[:, 0], NEG_INF)  # (N, L) start in l'_1 or l'_2
    alpha[:, 0] = a
    for t in range(1, T):  # forward in time: stay, advance by one, or skip a blank
        a = _lse(xp, a, _shift(xp, a, 1), _shift(xp, a, 2, skip)) + lp_ext[:, t]
        a = xp.where(live & (t < input_lengths)[:, None], a, NEG_INF)
        alpha[:, t] = a
    last = alpha[xp.arange(N), input_lengths - 1]  # (N, L) the final frame of each sequence
    end1 = xp.take_along_axis(last, (ext_lengths - 1)[:, None], axis=1)[:, 0]  # (N,) final blank
    end2 = xp.take_along_axis(last, xp.maximum(ext_lengths - 2, 0)[:, None], axis=1)[:, 0]  # final label
    end2 = xp.where(ext_lengths > 1, end2, NEG_INF)
    return alpha, _lse(xp, end1, end2)
# [ctc-alpha-ref-end]


def _beta_grad_reference(xp, lp_ext, ext, skip, input_lengths, ext_lengths, alpha, logp, weight, C):
    """beta (N, T, L) by the backward recursion, and dlp (N, T, C) = −weight · γ."""
    N, T, L = lp_ext.shape
    s_idx = xp.arange(L)[None, :]  # (1, L)
    live = s_idx < ext_lengths[:, None]  # (N, L)
    end = live & (s_idx >= ext_lengths[:, None] - 2)  # (N, L) the two states a path may end in
    skip_next = xp.zeros_like(skip)  # (N, L) may s jump to s + 2
    skip_next[:, :-2] = skip[:, 2:]
    last_t = (input_lengths - 1)[:, None]  # (N, 1)
    beta = xp.full((N, T, L), NEG_INF, dtype=lp_ext.dtype)  # (N, T, L)
    b = xp.full((N, L), NEG_INF, dtype=lp_ext.dtype)  # (N, L)
    for t in range(T - 1, -1, -1):  # backward in time: stay, come from s + 1, or from s + 2
        b_rec = _lse(xp, b, _shift(xp, b, -1), _shift(xp, b, -2, skip_next)) + lp_ext[:, t]
        b_end = xp.where(end, lp_ext[:, t], NEG_INF)
        b = xp.where(t == last_t, b_end, xp.where(t < last_t, b_rec, NEG_INF))
        b = xp.where(live, b, NEG_INF)
        beta[:, t] = b
    frames = (xp.arange(T)[None, :] < input_lengths[:, None])[:, :, None]  # (N, T, 1) inside each length
    logp_safe = xp.where(xp.isfinite(logp), logp, 0.0)  # impossible sequences have weight 0 anyway
    gamma_ext = xp.exp(alpha + beta - lp_ext - logp_safe[:, None, None])  # (N, T, L) occupation of (t, s)
    gamma_ext = xp.where(frames, gamma_ext, 0.0)  # past each length: 0, whatever the padding holds
    onehot = (ext[:, :, None] == xp.arange(C)[None, None, :]).astype(lp_ext.dtype)  # (N, L, C)
    gamma = xp.einsum("ntl,nlc->ntc", gamma_ext, onehot)  # (N, T, C) Σ_{s: l'_s = k}
    dlp = -gamma * weight[:, None, None]  # (N, T, C)
    return beta, xp.where(xp.isnan(logp)[:, None, None] & frames, math.nan, dlp)  # NaN in → NaN out


# -- the reference routes that ``kernels/ctc.py`` falls back to ------------------------------------
def _nan_sequences(xp, log_probs, input_lengths):
    """(N,) True where a sequence's frames t < T_n hold a NaN: its loss and gradient are NaN, as the
    NaN would make them (the log-sum-exps of the Numba kernels would drop it)."""
    frames = xp.arange(log_probs.shape[1])[None, :] < input_lengths[:, None]  # (N, T)
    return (xp.isnan(log_probs).any(axis=2) & frames).any(axis=1)


def _alpha_route(log_probs, ext, skip, input_lengths, ext_lengths):
    """alpha (N, T, L), log p (N,) by the vectorised reference; log p is NaN for a sequence holding a NaN."""
    xp = get_array_module(log_probs)
    lp_ext = _gather(xp, log_probs, ext)  # (N, T, L) recomputed in backward: cheap, and big
    alpha, logp = _alpha_reference(xp, lp_ext, skip, input_lengths, ext_lengths)
    return alpha, xp.where(_nan_sequences(xp, log_probs, input_lengths), math.nan, logp)


def _beta_grad_route(log_probs, ext, skip, input_lengths, ext_lengths, alpha, logp, weight):
    """beta (N, T, L) and dlog_probs (N, T, C) by the vectorised reference."""
    xp = get_array_module(log_probs)
    lp_ext = _gather(xp, log_probs, ext)  # (N, T, L)
    return _beta_grad_reference(xp, lp_ext, ext, skip, input_lengths, ext_lengths, alpha, logp, weight,
                                log_probs.shape[2])


# -- the public pair ---------------------------------------------------------------------------
class CTCCache(NamedTuple):
    log_probs: object       # (N, T, C) the input (a reference, not a copy)
    ext: object             # (N, L) extended labels
    skip: object            # (N, L) skip-transition mask
    input_lengths: object   # (N,) int64
    ext_lengths: object     # (N,) int64
    alpha: object           # (N, T, L) kept: the backward pass needs every α_t(s)
    logp: object            # (N,) log p(target | input)
    target_lengths: object  # (N,) int64
    reduction: str
    zero_infinity: bool


def _check_inputs(op, log_probs, targets, input_lengths, target_lengths, blank, reduction):
    check_float(op, "log_probs", log_probs)
    check_ndim(op, "log_probs", log_probs, 3)
    check_int(op, "targets", targets)
    check_ndim(op, "targets", targets, 2)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    N, T, C = log_probs.shape
    if not 0 <= blank < C:
        raise ValueError(f"{op}: blank={blank} is not a class index of log_probs with C={C} classes")
    if targets.shape[0] != N:
        raise ValueError(f"{op}: targets must be (N, S) with N={N} (log_probs is (N, T, C) = "
                         f"{tuple(log_probs.shape)}), got shape {tuple(targets.shape)}")
    lengths = []
    for name, lens, limit, what in (("input_lengths", input_lengths, T, "T"),
                                    ("target_lengths", target_lengths, targets.shape[1], "S")):
        check_int(op, name, lens)
        if lens.shape != (N,):
            raise ValueError(f"{op}: expected {name} of shape ({N},), got {tuple(lens.shape)}")
        host = np.asarray(asnumpy(lens), dtype=np.int64)
        low = 1 if name == "input_lengths" else 0
        if host.size and (host.min() < low or host.max() > limit):
            raise ValueError(f"{op}: {name} must lie in [{low}, {what}={limit}], got range "
                             f"[{host.min()}, {host.max()}]")
        lengths.append(host)
    tgt = np.asarray(asnumpy(targets))
    real = np.arange(tgt.shape[1])[None, :] < lengths[1][:, None]  # (N, S) labels that count
    if real.any():
        used = tgt[real]
        if used.min() < 0 or used.max() >= C:
            raise ValueError(f"{op}: target labels must lie in [0, {C}), got range [{used.min()}, {used.max()}]")
        if (used == blank).any():
            raise ValueError(f"{op}: targets contain the blank index {blank} inside their target_lengths; "
                             "the blank is reserved for 'no label' and may not appear in a transcript")


# [ctc-loss-start]
def ctc_loss(log_probs, targets, input_lengths, target_lengths, *, blank=0, reduction="mean",
             zero_infinity=False):
    """CTC negative log-likelihood −log p(l | x) = −log Σ_{π ∈ B⁻¹(l)} Π_t y_t(π_t).

    log_probs (N, T, C) per-frame log-probabilities (batch-first; PyTorch's is (T, N, C)); targets
    (N, S) padded integer labels (never the blank); input_lengths, target_lengths (N,) integers.
    reduction: "none" → (N,); "sum"; "mean" → mean_n(loss_n / max(S_n, 1)) (PyTorch's). An
    impossible target (T_n < S_n + number of repeated neighbours) gives inf, or 0 with zero_infinity;
    a NaN in a sequence's frames t < T_n gives NaN, also with zero_infinity (it zeros only +inf).
    Backward (log_probs treated as free inputs): dlog_probs_t(k) = −γ_t(k) · dloss_n, with
    γ_t(k) = Σ_{s: l'_s = k} α_t(s) β_t(s) / (y_t(k) p) (all in log space); 0 for impossible targets,
    NaN on the frames of a sequence whose loss is NaN.
    See chapters/17-ctc.md#eq-ctc-grad.
    """
    _check_inputs("ctc_loss", log_probs, targets, input_lengths, target_lengths, blank, reduction)
    xp = get_array_module(log_probs, targets)
    input_lengths = xp.asarray(input_lengths, dtype=xp.int64)  # (N,)
    target_lengths = xp.asarray(target_lengths, dtype=xp.int64)  # (N,)
    ext, skip, ext_lengths = _extend_targets(xp, targets, target_lengths, blank)
    alpha, logp = _kernels.ctc_alpha(log_probs, ext, skip, input_lengths, ext_lengths, trim=True,
                                     reference=_alpha_route)  # (N, T, L), (N,); the loss needs only the band
    nll = -logp  # (N,)
    if zero_infinity:
        nll = xp.where(nll == math.inf, 0.0, nll)  # impossible targets; a NaN stays NaN
    if reduction == "none":
        loss = nll
    elif reduction == "sum":
        loss = nll.sum()
    else:
        loss = (nll / xp.maximum(target_lengths, 1).astype(nll.dtype)).mean()
    cache = CTCCache(log_probs, ext, skip, input_lengths, ext_lengths, alpha, logp, target_lengths,
                     reduction, zero_infinity)
    return loss, cache


def ctc_loss_backward(dloss, cache):
    """dlog_probs (N, T, C) of ``ctc_loss``: −γ scaled by the reduction; zero past each input length.

    PyTorch's ctc_loss returns exp(log_probs) − γ instead: the gradient wrt the logits *before* a
    log_softmax. Both agree once ours is pushed through log_softmax_backward (chapter 17, #ctc-pytorch).
    """
    lp, ext, skip, input_lengths, ext_lengths, alpha, logp, target_lengths, reduction, zero_inf = cache
    N, T, C = lp.shape
    check_dloss("ctc_loss_backward", dloss, (N,) if reduction == "none" else (), lp.dtype)
    xp = get_array_module(lp)
    if reduction == "none":
        weight = xp.asarray(dloss, dtype=lp.dtype)  # (N,)
    elif reduction == "sum":
        weight = xp.full(N, float(dloss), dtype=lp.dtype)  # (N,)
    else:
        weight = float(dloss) / N / xp.maximum(target_lengths, 1).astype(lp.dtype)  # (N,)
    weight = xp.where(xp.isinf(logp), 0.0, weight)  # impossible targets: no gradient (a NaN stays: NaN out)
    _, dlog_probs = _kernels.ctc_beta_grad(lp, ext, skip, input_lengths, ext_lengths, alpha, logp, weight,
                                           trim=True, reference=_beta_grad_route)  # (N, T, C)
    return dlog_probs
# [ctc-loss-end]


def _gather(xp, log_probs, ext):
    """lp_ext[n, t, s] = log_probs[n, t, ext[n, s]] (N, T, L)."""
    N, T, _ = log_probs.shape
    return xp.take_along_axis(log_probs, xp.broadcast_to(ext[:, None, :], (N, T, ext.shape[1])), axis=2)


def ctc_lattice(log_probs, targets, input_lengths, target_lengths, *, blank=0, jit=None):
    """The whole lattice, for plots and tests: (alpha, beta, logp, ext).

    alpha, beta (N, T, L) log-space forward/backward variables (β includes y_t, as in Graves et al.),
    logp (N,) log p(l | x), ext (N, L) the extended labels. ``jit=False`` forces the vectorised
    reference; otherwise the route decides (the Numba loops where ``jit_route`` allows).
    See chapters/17-ctc.md#eq-ctc-alpha.
    """
    _check_inputs("ctc_lattice", log_probs, targets, input_lengths, target_lengths, blank, "none")
    xp = get_array_module(log_probs, targets)
    input_lengths = xp.asarray(input_lengths, dtype=xp.int64)  # (N,)
    target_lengths = xp.asarray(target_lengths, dtype=xp.int64)  # (N,)
    ext, skip, ext_lengths = _extend_targets(xp, targets, target_lengths, blank)
    zero = xp.zeros(log_probs.shape[0], dtype=log_probs.dtype)  # (N,) no gradient wanted, only β
    args = (log_probs, ext, skip, input_lengths, ext_lengths)
    if jit is False:
        alpha, logp = _alpha_route(*args)
        beta, _ = _beta_grad_route(*args, alpha, logp, zero)
    else:  # every cell (no trimming) and the whole of β
        alpha, logp = _kernels.ctc_alpha(*args, trim=False, reference=_alpha_route)  # (N, T, L), (N,)
        beta, _ = _kernels.ctc_beta_grad(*args, alpha, logp, zero, trim=False, reference=_beta_grad_route)
    return alpha, beta, logp, ext
