"""Numba kernels for CTC: the α recursion and the β recursion fused with the gradient.

Legend: N batch, T time, C classes, L extended labels (2S + 1). One sequence per thread
(``prange`` over the batch: sequences are independent). Every value is a log-probability; −inf
marks an unreachable lattice cell. The vectorised reference is ``scratchnet.functional.ctc``
(``_alpha_reference`` / ``_beta_grad_reference``); SCRATCHNET_JIT=0 selects it.
See chapters/17-ctc.md#eq-ctc-alpha.
"""
from __future__ import annotations

import math

from .._jit import njit, prange

__all__ = ["ctc_alpha_kernel", "ctc_alpha_kernel_serial", "ctc_beta_grad_kernel", "ctc_beta_grad_kernel_serial"]


@njit
def _logaddexp3(a, b, c):
    """log(e^a + e^b + e^c), exact when some (or all) arguments are −inf.

    Factor out the largest term m: m + log(e^(a−m) + e^(b−m) + e^(c−m)), one of the three being
    e^0 = 1 and a −inf term giving e^(−inf) = 0. No branch on which argument is largest (the
    lattice makes that unpredictable, and a mispredicted branch costs more than the extra exp),
    and every operation stays in the arrays' precision (float32 exp and log are the faster ones).
    """
    m = max(a, max(b, c))
    if m == -math.inf:  # an unreachable cell
        return m
    return m + math.log(math.exp(a - m) + math.exp(b - m) + math.exp(c - m))


def _ctc_alpha_kernel(lp, ext, skip, input_lengths, ext_lengths, alpha, logp, neg_inf):
    """Fill alpha (N, T, L) (written in full: −inf where unreachable) and logp (N,) = log p(target | input).

    neg_inf is −inf as a scalar of lp's dtype, so float32 lattices never widen to float64.

    α_t(s) = lse(α_{t−1}(s), α_{t−1}(s−1), [skip_s] α_{t−1}(s−2)) + lp_t(l'_s).
    """
    N = lp.shape[0]
    for n in prange(N):  # one sequence per thread
        Tn = input_lengths[n]
        Ln = ext_lengths[n]
        alpha[n] = neg_inf  # every cell starts unreachable (in this thread: no separate pass over memory)
        alpha[n, 0, 0] = lp[n, 0, ext[n, 0]]
        if Ln > 1:
            alpha[n, 0, 1] = lp[n, 0, ext[n, 1]]
        for t in range(1, Tn):  # forward in time
            hi = min(Ln, 2 * t + 2)  # cells above 2t+1 cannot be reached yet (they stay −inf)
            for s in range(hi):  # every reachable extended label
                a = alpha[n, t - 1, s]
                b = alpha[n, t - 1, s - 1] if s >= 1 else neg_inf
                c = alpha[n, t - 1, s - 2] if skip[n, s] else neg_inf
                alpha[n, t, s] = _logaddexp3(a, b, c) + lp[n, t, ext[n, s]]
        last = alpha[n, Tn - 1, Ln - 1]
        second = alpha[n, Tn - 1, Ln - 2] if Ln > 1 else neg_inf
        logp[n] = _logaddexp3(last, second, neg_inf)


def _ctc_beta_grad_kernel(lp, ext, skip, input_lengths, ext_lengths, alpha, logp, weight, beta, dlp, neg_inf):
    """Fill beta (N, T, L) (written in full: −inf where unreachable) and dlp (N, T, C) (written in full).

    β_t(s) = lse(β_{t+1}(s), β_{t+1}(s+1), [skip_{s+2}] β_{t+1}(s+2)) + lp_t(l'_s);
    dlp_t(k) = −weight_n · Σ_{s: l'_s = k} exp(α_t(s) + β_t(s) − lp_t(k) − log p).
    Sequences with weight 0 (an impossible alignment, or a zero upstream gradient) only get β.
    """
    N = lp.shape[0]
    for n in prange(N):  # one sequence per thread
        Tn = input_lengths[n]
        Ln = ext_lengths[n]
        w = weight[n]
        beta[n] = neg_inf  # every cell starts unreachable
        dlp[n] = 0.0  # the occupations are scattered onto zeros
        beta[n, Tn - 1, Ln - 1] = lp[n, Tn - 1, ext[n, Ln - 1]]
        if Ln > 1:
            beta[n, Tn - 1, Ln - 2] = lp[n, Tn - 1, ext[n, Ln - 2]]
        for t in range(Tn - 1, -1, -1):  # backward in time
            lo = max(0, Ln - 2 * (Tn - t))  # cells below cannot reach the end any more (they stay −inf)
            if t < Tn - 1:
                for s in range(lo, Ln):  # every extended label that can still finish
                    a = beta[n, t + 1, s]
                    b = beta[n, t + 1, s + 1] if s + 1 < Ln else neg_inf
                    c = beta[n, t + 1, s + 2] if s + 2 < Ln and skip[n, s + 2] else neg_inf
                    beta[n, t, s] = _logaddexp3(a, b, c) + lp[n, t, ext[n, s]]
            if w != 0.0:
                for s in range(lo, min(Ln, 2 * t + 2)):  # occupation γ_t(s) scattered onto its class l'_s
                    k = ext[n, s]
                    g = alpha[n, t, s] + beta[n, t, s] - lp[n, t, k] - logp[n]
                    if g > neg_inf:
                        dlp[n, t, k] -= w * math.exp(g)


ctc_alpha_kernel = njit(parallel=True)(_ctc_alpha_kernel)  # prange over sequences: big lattices
ctc_alpha_kernel_serial = njit(_ctc_alpha_kernel)  # the same loops on one thread: small lattices
ctc_beta_grad_kernel = njit(parallel=True)(_ctc_beta_grad_kernel)
ctc_beta_grad_kernel_serial = njit(_ctc_beta_grad_kernel)
