"""Reference solutions for notebooks/17-ctc.ipynb's "your turn" cells (chapter 17)."""
import numpy as np

import scratchnet.functional as F
from scratchnet.exercises import check_pair

YOUR_TURN = ["my_ctc_loss", "my_ctc_loss_backward"]

NEG_INF = -np.inf


def _lse(*terms):
    """log Σ exp over the terms, elementwise; −inf when every term is −inf."""
    out = terms[0]
    for t in terms[1:]:
        out = np.logaddexp(out, t)
    return out


def _extended(target, blank=0):
    """l' = (∅, l_1, ∅, ..., l_S, ∅) and skip_s = l'_s ≠ ∅ and l'_s ≠ l'_{s−2}."""
    ext = np.full(2 * len(target) + 1, blank, dtype=np.int64)
    ext[1::2] = target
    skip = np.zeros(len(ext), dtype=bool)
    skip[2:] = (ext[2:] != blank) & (ext[2:] != ext[:-2])
    return ext, skip


def _shift(a, k):
    """a shifted right by k states, −inf filled: out[s] = a[s − k]."""
    out = np.full_like(a, NEG_INF)
    out[k:] = a[:len(a) - k]
    return out


def _shift_left(a, k):
    """out[s] = a[s + k], −inf filled."""
    out = np.full_like(a, NEG_INF)
    out[:len(a) - k] = a[k:]
    return out


def my_ctc_loss(log_probs, targets, input_lengths, target_lengths, *, reduction="none"):
    """Per-sequence −log p(l | x) (N,) by the α recursion in log space (blank 0)."""
    N, T, C = log_probs.shape
    losses, per_seq = np.zeros(N), []
    for n in range(N):
        Tn, Sn = int(input_lengths[n]), int(target_lengths[n])
        ext, skip = _extended(np.asarray(targets[n][:Sn]))
        L = len(ext)
        lp = log_probs[n, :Tn][:, ext]  # (T_n, L) log y_t(l'_s)
        alpha = np.full((Tn, L), NEG_INF)
        alpha[0, :min(2, L)] = lp[0, :min(2, L)]  # start in the first blank or the first label
        for t in range(1, Tn):
            a = alpha[t - 1]
            alpha[t] = _lse(a, _shift(a, 1), np.where(skip, _shift(a, 2), NEG_INF)) + lp[t]
        logp = _lse(alpha[-1, -1], alpha[-1, -2]) if L > 1 else alpha[-1, -1]
        losses[n] = -logp
        per_seq.append((Tn, ext, skip, lp, alpha, logp))
    return losses, (per_seq, log_probs.shape)


def my_ctc_loss_backward(dloss, cache):
    """dlog_probs (N, T, C) = −γ_t(k) dloss_n, from β and the occupation αβ/(y p)."""
    per_seq, (N, T, C) = cache
    dlp = np.zeros((N, T, C))
    for n, (Tn, ext, skip, lp, alpha, logp) in enumerate(per_seq):
        L = len(ext)
        beta = np.full((Tn, L), NEG_INF)
        beta[-1, -1] = lp[-1, -1]
        if L > 1:
            beta[-1, -2] = lp[-1, -2]
        skip_from = np.zeros(L, dtype=bool)  # skip_{s+2}: may a path jump from s to s + 2?
        skip_from[:L - 2] = skip[2:]
        for t in range(Tn - 2, -1, -1):
            b = beta[t + 1]
            beta[t] = _lse(b, _shift_left(b, 1), np.where(skip_from, _shift_left(b, 2), NEG_INF)) + lp[t]
        occ = np.exp(alpha + beta - lp - logp)  # (T_n, L) αβ/(y p)
        gamma = np.zeros((Tn, C))
        for s, k in enumerate(ext):  # the states of one class add up
            gamma[:, k] += occ[:, s]
        dlp[n, :Tn] = -gamma * float(dloss[n])
    return dlp


def check(strict=True):
    """The notebook's checks, run on these solutions."""
    r0 = np.random.default_rng(3)
    lp_batch, _ = F.log_softmax(r0.standard_normal((2, 7, 4)))
    inputs = [lp_batch, np.array([[1, 1, 2], [3, 2, 0]]), np.array([7, 5]), np.array([3, 2])]
    return [
        check_pair((my_ctc_loss, my_ctc_loss_backward), (F.ctc_loss, F.ctc_loss_backward), inputs,
                   options={"reduction": "none"}, strict=strict),
    ]
