"""Numba loop kernels of the masked softmax of attention and its backward, one row at a time.

Legend: R rows (every leading axis of the scores and the query axis, flattened), Tq query
positions, Tk key positions; row r is query i = r mod Tq. The vectorised reference is
``masked_softmax`` / ``masked_softmax_backward`` in ``scratchnet/functional/attention.py``;
``scratchnet/kernels/attention.py`` chooses. The reference makes about nine passes over the
(..., Tq, Tk) scores, most with a temporary; these loops read each row once into the cache and
write it once.

- forward: per row, the maximum over the kept keys, e = exp(s − max) on the kept keys (0
  elsewhere), their sum z, p = e / z; a row with nothing kept is all zeros, as in the reference;
- backward: per row, c = Σ_k dp ⊙ p, then ds = p ⊙ (dp − c) (any mask: ds is 0 where p is 0).

The keep-mask comes as a (Tq, Tk) array of 0/1 in the scores' dtype, shared by every leading
index (the causal mask, or a user mask of that shape), with its 0/−∞ twin (added to the scores
for the row maximum) and the count of kept keys per query.

No fastmath: a strict-order reduction does not vectorise, so the row maxima and sums run in LANES
partial results updated elementwise in blocks of LANES (the sums are ``lanes_loops.row_dot``;
their order differs from NumPy's pairwise sum by a few ulps), and the float32 exponential is the branch-free polynomial
``activation_loops.exp_float32_row``, which the compiler turns into SIMD code where ``math.exp``
would be a scalar call per element. With the layer-norm loops, chapter 21's GPT training step
(6 layers, d 192, context 128, batch 32) went from 0.93 to 0.79 s on two idle cores
(``benchmarks/bench_attention.py`` times the softmax alone beside PyTorch).
"""
from __future__ import annotations

import math

import numpy as np

from .._jit import njit
from .activation_loops import exp_float32_row
from .lanes_loops import LANES, row_dot

__all__ = ["LANES", "masked_softmax_float32_kernel", "masked_softmax_float64_kernel",
           "softmax_backward_kernel"]


@njit(error_model="numpy")
def _row_max(s, bias, lanes):
    """max_j (s[j] + bias[j]) of one row, bias 0 (kept) or −∞ (masked), in LANES running maxima."""
    Tk = s.size
    for lane in range(LANES):
        lanes[lane] = -np.inf
    for j0 in range(0, Tk - Tk % LANES, LANES):  # whole blocks: a fixed-width loop the compiler vectorises
        for lane in range(LANES):
            lanes[lane] = max(lanes[lane], s[j0 + lane] + bias[j0 + lane])
    for j in range(Tk - Tk % LANES, Tk):  # the tail
        lanes[0] = max(lanes[0], s[j] + bias[j])
    return lanes.max()


@njit(error_model="numpy")
def masked_softmax_float32_kernel(s, keep, bias, count, p, bits, lanes):
    """p = masked softmax of s along rows. s, p (R, Tk) float32; keep (Tq, Tk) float32 of 0/1 and
    bias (Tq, Tk) its 0/−∞ twin; count (Tq,) kept keys per query; bits (Tk,) int32 and lanes
    (LANES,) float32 scratch."""
    R, Tk = s.shape
    Tq = keep.shape[0]
    for r in range(R):  # independent rows
        i = r % Tq
        sr, pr, kr = s[r], p[r], keep[i]
        if count[i] == 0:  # nothing kept: all-zero weights
            pr[:] = np.float32(0.0)
            continue
        m = _row_max(sr, bias[i], lanes)
        for j in range(Tk):  # shifted scores, ≤ 0 where kept
            pr[j] = sr[j] - m
        exp_float32_row(pr, bits)
        for j in range(Tk):  # e on the kept keys only
            pr[j] *= kr[j]
        inv_z = np.float32(1.0) / row_dot(pr, kr, lanes)  # 1 / Σ e
        for j in range(Tk):  # normalise
            pr[j] *= inv_z


@njit(error_model="numpy")
def masked_softmax_float64_kernel(s, keep, bias, count, p, lanes):
    """As ``masked_softmax_float32_kernel`` for float64, with the C library's exp (exact)."""
    R, Tk = s.shape
    Tq = keep.shape[0]
    for r in range(R):  # independent rows
        i = r % Tq
        sr, pr, kr = s[r], p[r], keep[i]
        if count[i] == 0:
            pr[:] = 0.0
            continue
        m = _row_max(sr, bias[i], lanes)
        for j in range(Tk):  # e on the kept keys
            pr[j] = math.exp(sr[j] - m) if kr[j] > 0 else 0.0
        inv_z = 1.0 / row_dot(pr, kr, lanes)
        for j in range(Tk):  # normalise
            pr[j] *= inv_z


@njit(error_model="numpy")
def softmax_backward_kernel(dp, p, ds, lanes):
    """ds = p ⊙ (dp − Σ_k dp ⊙ p) along rows. dp, p, ds (R, Tk) of one dtype; lanes (LANES,) scratch."""
    R, Tk = p.shape
    for r in range(R):  # independent rows
        dpr, pr, dsr = dp[r], p[r], ds[r]
        c = row_dot(dpr, pr, lanes)  # Σ dp ⊙ p
        for j in range(Tk):
            dsr[j] = pr[j] * (dpr[j] - c)
