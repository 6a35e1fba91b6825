"""Numba kernels for CTC: the α recursion and the β recursion fused with the gradient.

Legend: N batch, T time, C classes, L extended labels (2S + 1). One sequence per thread
(``prange`` over the batch: sequences are independent). Every value is a log-probability; −inf
marks an unreachable lattice cell. ``scratchnet/kernels/ctc.py`` chooses between these loops and
the vectorised reference in ``scratchnet/functional/ctc.py`` (``_alpha_reference`` /
``_beta_grad_reference``); SCRATCHNET_JIT=0 selects the reference.
A NaN anywhere in a sequence's frames t < T_n makes its log p NaN and its gradient NaN on those
frames, as in the reference: the log-sum-exps below take max and min, which would drop a NaN.
See chapters/17-ctc.md#eq-ctc-alpha.
"""
from __future__ import annotations

import math

from .._jit import njit, prange

__all__ = ["ctc_alpha_kernel", "ctc_alpha_kernel_serial", "ctc_beta_grad_kernel", "ctc_beta_grad_kernel_serial"]


@njit
def _logaddexp2(a, b, one):
    """log(e^a + e^b), exact when one (or both) arguments are −inf.

    With m = max(a, b) one term is e^0 = 1, so only the smaller one needs an exp:
    m + log(1 + e^(min − m)). ``one`` is 1 in the arrays' precision, so every operation stays in it
    (float32 exp and log are the faster ones; a literal 1.0 would widen them to float64).
    """
    m = max(a, b)
    if m == -math.inf:  # an unreachable cell
        return m
    return m + math.log(one + math.exp(min(a, b) - m))


@njit
def _logaddexp3(a, b, c, one):
    """log(e^a + e^b + e^c), exact when some (or all) arguments are −inf.

    The largest term m contributes e^0 = 1; the two others are picked without a branch on which
    one is largest (the lattice makes that unpredictable, and a mispredicted branch costs more
    than a min and a max): with hi = max(a, b), the others are min(a, b) and min(hi, c).
    """
    hi = max(a, b)
    m = max(hi, c)
    if m == -math.inf:  # an unreachable cell
        return m
    return m + math.log(one + math.exp(min(a, b) - m) + math.exp(min(hi, c) - m))


def _ctc_alpha_kernel(lp, ext, skip, input_lengths, ext_lengths, alpha, logp, neg_inf, one, trim):
    """Fill alpha (N, T, L) (written in full: −inf where unreachable) and logp (N,) = log p(target | input).

    neg_inf and one are −inf and 1 as scalars of lp's dtype, so float32 lattices never widen to float64.
    trim: also leave −inf the cells below the band s ≥ L − 2(T − t), which are reachable but can no
    longer reach the end; no gradient and no later cell of the band reads them (the loss uses this).

    α_t(s) = lse(α_{t−1}(s), α_{t−1}(s−1), [skip_s] α_{t−1}(s−2)) + lp_t(l'_s). A blank state (s even)
    is never entered by a skip, so blanks take the two-term log-sum-exp (one exp instead of two).
    A NaN in lp[n, :T_n] makes logp[n] NaN.
    """
    N, C = lp.shape[0], lp.shape[2]
    for n in prange(N):  # one sequence per thread
        Tn = input_lengths[n]
        Ln = ext_lengths[n]
        alpha[n] = neg_inf  # every cell starts unreachable (in this thread: no separate pass over memory)
        alpha[n, 0, 0] = lp[n, 0, ext[n, 0]]
        if Ln > 1:
            alpha[n, 0, 1] = lp[n, 0, ext[n, 1]]
        for t in range(1, Tn):  # forward in time
            hi = min(Ln, 2 * t + 2)  # cells above 2t+1 cannot be reached yet (they stay −inf)
            lo = max(0, Ln - 2 * (Tn - t)) if trim else 0
            blank_lp = lp[n, t, ext[n, 0]]  # every even state is the blank
            if lo == 0:
                alpha[n, t, 0] = alpha[n, t - 1, 0] + blank_lp  # the first blank can only stay
            for s in range(max(2, lo + lo % 2), hi, 2):  # blanks: stay or advance (never skipped into)
                alpha[n, t, s] = _logaddexp2(alpha[n, t - 1, s], alpha[n, t - 1, s - 1], one) + blank_lp
            for s in range(lo + 1 - lo % 2, hi, 2):  # labels: stay, advance, or skip the blank before
                a = alpha[n, t - 1, s]
                b = alpha[n, t - 1, s - 1]
                c = alpha[n, t - 1, s - 2] if skip[n, s] else neg_inf
                alpha[n, t, s] = _logaddexp3(a, b, c, one) + lp[n, t, ext[n, s]]
        last = alpha[n, Tn - 1, Ln - 1]
        second = alpha[n, Tn - 1, Ln - 2] if Ln > 1 else neg_inf
        logp[n] = _logaddexp2(last, second, one)
        n_nan = 0
        for t in range(Tn):  # NaN in → NaN out: count the NaN of the sequence's frames
            for k in range(C):
                n_nan += lp[n, t, k] != lp[n, t, k]
        if n_nan > 0:
            logp[n] = math.nan


def _ctc_beta_grad_kernel(lp, ext, skip, input_lengths, ext_lengths, alpha, logp, weight, beta, dlp, neg_inf,
                          one, trim):
    """Fill beta (N, R, L) and dlp (N, T, C) (written in full).

    β_t(s) = lse(β_{t+1}(s), β_{t+1}(s+1), [skip_{s+2}] β_{t+1}(s+2)) + lp_t(l'_s) (two terms for blanks);
    dlp_t(k) = −weight_n · Σ_{s: l'_s = k} exp(α_t(s) + β_t(s) − lp_t(k) − log p).
    β_t is stored in row t % R: R = T keeps the whole lattice (−inf where unreachable), R = 2 keeps
    only the two rows the recursion and the gradient need. Sequences with weight 0 (an impossible
    alignment, or a zero upstream gradient) only get β. trim: skip the cells above s = 2t + 1, which
    no walk from the start reaches (α is −inf there, so they carry no gradient).
    A reused row (R = 2) still holds β_{t+2} where row t is not written, and nothing reads those
    cells: below the band its lower edge lo rises with t, so β_{t+2} left them −inf too; above
    s = 2t + 1 (trim) neither β_{t−1} (it reads up to s = 2(t−1) + 1 + 2) nor the gradient looks.
    A NaN log p (a NaN input) gives a NaN gradient on the sequence's frames t < T_n.
    """
    N, R = lp.shape[0], beta.shape[1]
    for n in prange(N):  # one sequence per thread
        Tn = input_lengths[n]
        Ln = ext_lengths[n]
        w = weight[n]
        beta[n] = neg_inf  # every cell starts unreachable
        dlp[n] = 0.0  # the occupations are scattered onto zeros
        last = (Tn - 1) % R
        beta[n, last, Ln - 1] = lp[n, Tn - 1, ext[n, Ln - 1]]
        if Ln > 1:
            beta[n, last, Ln - 2] = lp[n, Tn - 1, ext[n, Ln - 2]]
        for t in range(Tn - 1, -1, -1):  # backward in time
            lo = max(0, Ln - 2 * (Tn - t))  # cells below cannot reach the end any more (they stay −inf)
            r, r1 = t % R, (t + 1) % R  # the rows holding β_t and β_{t+1}
            hi = min(Ln, 2 * t + 2) if trim else Ln
            if t < Tn - 1:
                blank_lp = lp[n, t, ext[n, 0]]  # every even state is the blank
                if hi == Ln:
                    beta[n, r, Ln - 1] = beta[n, r1, Ln - 1] + blank_lp  # the last blank can only stay
                for s in range(lo + lo % 2, min(hi, Ln - 1), 2):  # blanks: stay or move on to the next label
                    beta[n, r, s] = _logaddexp2(beta[n, r1, s], beta[n, r1, s + 1], one) + blank_lp
                for s in range(lo + 1 - lo % 2, hi, 2):  # labels: stay, next blank, or skip it
                    a = beta[n, r1, s]
                    b = beta[n, r1, s + 1]
                    c = beta[n, r1, s + 2] if s + 2 < Ln and skip[n, s + 2] else neg_inf
                    beta[n, r, s] = _logaddexp3(a, b, c, one) + lp[n, t, ext[n, s]]
            if w != 0.0:
                for s in range(lo, min(Ln, 2 * t + 2)):  # occupation γ_t(s) scattered onto its class l'_s
                    k = ext[n, s]
                    g = alpha[n, t, s] + beta[n, r, s] - lp[n, t, k] - logp[n]
                    if g > neg_inf:
                        dlp[n, t, k] -= w * math.exp(g)
        if logp[n] != logp[n]:  # NaN in → NaN out
            dlp[n, :Tn] = math.nan


ctc_alpha_kernel = njit(parallel=True)(_ctc_alpha_kernel)  # prange over sequences: big lattices
ctc_alpha_kernel_serial = njit(_ctc_alpha_kernel)  # the same loops on one thread: small lattices
ctc_beta_grad_kernel = njit(parallel=True)(_ctc_beta_grad_kernel)
ctc_beta_grad_kernel_serial = njit(_ctc_beta_grad_kernel)
