"""Numba loop kernels of softmax cross-entropy: one pass per row forward, one backward.

Legend: R rows (N, or N·T), K classes. The vectorised reference is ``_cross_entropy_ref`` /
``cross_entropy_backward`` in ``scratchnet/functional/loss.py``; ``scratchnet/kernels/loss.py``
chooses between them and these loops. Per row, with ε the label smoothing:

- forward: m = max z, log p = z − m − log Σ e^{z−m}, and the row's loss
  (1 − ε)(−log p_t) − ε·mean(log p), times 0 or 1 (ignored or counted);
- backward: dz = (p − q)·scale with q = (1 − ε)·onehot(t) + ε/K and a per-row scale.

The row's K values stay in the first-level cache across its passes, so memory sees one read of
the logits and one write of log p forward, one read and one write backward. Reductions (max, sums)
run in eight independent partial results, which the compiler packs into one SIMD register (a
single running sum must keep its order and would not vectorise; no fastmath). In float32, e^x is
``exp_float32`` below (a polynomial the compiler vectorises; NumPy's own is SIMD too, the C
library's ``expf`` that Numba calls is not); float64 keeps the C library's ``exp``.

A row holding a NaN or +inf (its sum of exponentials comes out NaN) is redone on a plain scalar
path that follows NumPy's semantics (NaN wins the max), so such rows give the reference's results;
−inf logits need no special case (e^{−inf − m} is 0 to float precision, log p = −inf).

``error_model="numpy"``: no division check, which would stop the loops from vectorising.
"""
from __future__ import annotations

import math

import numpy as np

from .._jit import njit

__all__ = ["exp_float32", "cross_entropy_kernel", "cross_entropy_backward_kernel"]

# e^x = 2^q · e^r with q = round(x·log2 e), r = x − q·ln 2 ∈ [−ln2/2, ln2/2] (ln 2 split in a part exact
# in float32 and a correction, Cody–Waite), e^r by its Taylor polynomial to r⁷ (relative error < 1e-7 on
# that interval: within about one float32 ulp), 2^q built from its exponent bits.
_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)
_LN2_LO = np.float32(-2.12194440e-4)
_X_MIN = np.float32(-87.0)  # e^−87 ≈ 1.6e-38, near the smallest normal float32: below, the result is ~0
_X_MAX = np.float32(88.0)  # e^88 ≈ 1.7e38, near the largest float32
_HALF = np.float32(0.5)
_T0, _T1, _T2, _T3, _T4, _T5, _T6, _T7 = (np.float32(1.0 / math.factorial(i)) for i in range(8))


@njit(error_model="numpy")
def exp_float32(x, out, bits):
    """out[k] = e^{x[k]} for float32 x (1-D); bits is an int32 scratch of x's size.

    Inputs are clamped to [−87, 88]: e^x for x < −87 (−inf included) comes out ≈ 1.6e-38 instead
    of a subnormal or 0, which no sum or gradient here can tell apart. A NaN gives NaN (the forward
    kernel redoes such rows on its scalar path).
    """
    n = x.size
    for k in range(n):  # vectorised: one float32 lane per k
        v = x[k]
        v = _X_MIN if v < _X_MIN else v
        v = _X_MAX if v > _X_MAX else v
        q = np.floor(v * _LOG2E + _HALF)  # the nearest integer to x·log2 e, as a float
        r = (v - q * _LN2_HI) - q * _LN2_LO  # x − q·ln 2
        p = ((((((_T7 * r + _T6) * r + _T5) * r + _T4) * r + _T3) * r + _T2) * r + _T1) * r + _T0  # e^r
        out[k] = p
        bits[k] = (np.int32(q) + np.int32(127)) << np.int32(23)  # the float32 bit pattern of 2^q
    scale = bits.view(np.float32)  # (n,) 2^q
    for k in range(n):
        out[k] *= scale[k]


@njit(error_model="numpy")
def _exp_row(x, out, bits, fast):
    """out = e^x: ``exp_float32`` when ``fast`` (float32 rows), else the C library's exp."""
    if fast:
        exp_float32(x, out, bits)
    else:
        for k in range(x.size):
            out[k] = math.exp(x[k])


@njit(error_model="numpy")
def _row_max(row):
    """max of a row: eight running maxima (a NaN is skipped here; the caller's sum catches it)."""
    K = row.size
    body = K - K % 8
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = row[0]
    for i in range(0, body, 8):  # eight independent chains: one SIMD register
        v = row[i]
        a0 = v if v > a0 else a0
        v = row[i + 1]
        a1 = v if v > a1 else a1
        v = row[i + 2]
        a2 = v if v > a2 else a2
        v = row[i + 3]
        a3 = v if v > a3 else a3
        v = row[i + 4]
        a4 = v if v > a4 else a4
        v = row[i + 5]
        a5 = v if v > a5 else a5
        v = row[i + 6]
        a6 = v if v > a6 else a6
        v = row[i + 7]
        a7 = v if v > a7 else a7
    m = max(max(max(a0, a1), max(a2, a3)), max(max(a4, a5), max(a6, a7)))
    for i in range(body, K):
        v = row[i]
        m = v if v > m else m
    return m


@njit(error_model="numpy")
def _row_sum(row):
    """Σ row in eight float64 partial sums."""
    K = row.size
    body = K - K % 8
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
    for i in range(0, body, 8):  # eight independent chains: one SIMD register
        a0 += row[i]
        a1 += row[i + 1]
        a2 += row[i + 2]
        a3 += row[i + 3]
        a4 += row[i + 4]
        a5 += row[i + 5]
        a6 += row[i + 6]
        a7 += row[i + 7]
    total = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
    for i in range(body, K):
        total += row[i]
    return total


@njit(error_model="numpy")
def _log_softmax_scalar(row, out):
    """out = log-softmax of a row holding NaN or ±inf, with NumPy's semantics (NaN wins the max)."""
    m = row[0]
    for v in row:
        if v != v:
            m = v
            break
        m = v if v > m else m
    total = 0.0
    for k in range(row.size):
        out[k] = row[k] - m
        total += math.exp(out[k])
    lse = math.log(total)
    for k in range(row.size):
        out[k] -= lse


@njit(error_model="numpy")
def cross_entropy_kernel(z, t, valid, smoothing, logp, per_item, fast_exp, block):
    """logp = log-softmax(z) row by row; per_item[r] = the row's loss (0 where not valid).

    z, logp (R, K) C-contiguous; t (R,) int targets in [0, K); valid (R,) bool; per_item (R,) in
    z's dtype; smoothing ε in [0, 1]; ``fast_exp`` for float32. Rows go in blocks of about ``block``
    values, so that e^x runs over a whole block at once even when K is small.
    """
    R, K = z.shape
    rows = max(1, block // K)  # rows per block
    buf = np.empty(rows * K, dtype=z.dtype)  # e^{z − m} of the block
    bits = np.empty(rows * K, dtype=np.int32)  # scratch of exp_float32
    lse = np.empty(1, dtype=z.dtype)  # log Σ e^{z−m} in z's dtype, so the last loop stays in it
    for r0 in range(0, R, rows):
        r1 = min(R, r0 + rows)
        for r in range(r0, r1):
            row, out = z[r], logp[r]  # (K,) views
            m = _row_max(row)
            for k in range(K):  # vectorised
                out[k] = row[k] - m
        n = (r1 - r0) * K
        _exp_row(logp[r0:r1].reshape(n), buf[:n], bits[:n], fast_exp)  # the whole block at once
        for r in range(r0, r1):
            out = logp[r]
            total = _row_sum(buf[(r - r0) * K:(r - r0 + 1) * K])
            if total != total:  # a NaN or +inf in the row (rare): NumPy's semantics, scalar
                _log_softmax_scalar(z[r], out)
            else:
                lse[0] = math.log(total)
                shift = lse[0]
                for k in range(K):
                    out[k] -= shift
            item = (1.0 - smoothing) * -np.float64(out[t[r]])
            if smoothing > 0.0:
                item -= smoothing * _row_sum(out) / K
            per_item[r] = item * (1.0 if valid[r] else 0.0)


@njit(error_model="numpy")
def cross_entropy_backward_kernel(logp, t, scale, smoothing, dz, fast_exp, block):
    """dz = (e^{logp} − q)·scale[r] row by row, q = (1 − ε)·onehot(t) + ε/K.

    logp, dz (R, K) C-contiguous; t (R,) int targets; scale (R,) in logp's dtype (0 on ignored rows);
    rows in blocks of about ``block`` values.
    """
    R, K = logp.shape
    rows = max(1, block // K)  # rows per block
    bits = np.empty(rows * K, dtype=np.int32)  # scratch of exp_float32
    q = np.empty(2, dtype=logp.dtype)  # the two values of q, in logp's dtype
    q[0] = smoothing / K
    q[1] = 1.0 - smoothing
    off = q[0]  # q off the target
    on = q[1] + off  # q at the target
    for r0 in range(0, R, rows):
        r1 = min(R, r0 + rows)
        n = (r1 - r0) * K
        _exp_row(logp[r0:r1].reshape(n), dz[r0:r1].reshape(n), bits[:n], fast_exp)  # p, the whole block
        for r in range(r0, r1):
            out = dz[r]  # (K,) view
            s, tr = scale[r], t[r]
            p_t = out[tr]
            for k in range(K):  # vectorised
                out[k] = (out[k] - off) * s
            out[tr] = (p_t - on) * s
