"""The fast route of attention's masked softmax and its backward: one fused Numba loop per row.

``scratchnet/functional/attention.py`` holds the readable ``masked_softmax`` and
``masked_softmax_backward`` (the chapter shows them) and wraps each with ``fast_masked_softmax`` /
``fast_softmax_backward`` below. The loops of ``attention_loops.py`` run when ``jit_route`` allows
(JIT on, NumPy arrays, float32/float64), the scores have at least MIN_SIZE elements and the
keep-mask is None or one (Tq, Tk) mask shared by every leading index (the causal mask, or a user
mask of that shape); any other mask, CuPy and float16 take the reference.
tests/kernels/test_attention_kernels.py compares the routes; the timings are in
``benchmarks/bench_attention.py``.

Legend: ``...`` leading axes (batch, heads), Tq queries, Tk keys. See chapters/19-attention.md.
"""
from __future__ import annotations

import functools

import numpy as np

from .._jit import jit_route
from . import attention_loops as K

__all__ = ["fast_masked_softmax", "fast_softmax_backward", "MIN_SIZE"]

MIN_SIZE = 1 << 12  # score elements below which the reference is as fast as the loops


def _masked_softmax(s, keep, reference):
    shared = keep is None or (s.ndim >= 2 and keep.ndim == 2 and keep.shape == s.shape[-2:])
    if not (shared and s.ndim >= 2 and s.size >= MIN_SIZE and jit_route(s)):
        return reference(s, keep)
    s = np.ascontiguousarray(s)
    Tq, Tk = s.shape[-2:]
    keepf = np.ones((1, Tk), s.dtype) if keep is None else keep.astype(s.dtype)  # (Tq, Tk) 0/1, or (1, Tk)
    count = keepf.sum(axis=1).astype(np.int64)  # (Tq,) kept keys per query
    bias = np.where(keepf > 0, 0.0, -np.inf).astype(s.dtype)  # (Tq, Tk) 0 where kept, −∞ where masked
    p = np.empty_like(s)  # (..., Tq, Tk)
    rows = s.reshape(-1, Tk)  # (R, Tk): row r is query r mod Tq (mod 1 without a mask)
    if s.dtype == np.float32:
        K.masked_softmax_float32_kernel(rows, keepf, bias, count, p.reshape(-1, Tk), np.empty(Tk, np.int32),
                                        np.empty(K.LANES, np.float32))
    else:
        K.masked_softmax_float64_kernel(rows, keepf, bias, count, p.reshape(-1, Tk), np.empty(K.LANES))
    return p


def fast_masked_softmax(reference):
    """``reference`` (the readable masked softmax) with the fused row loop in front."""
    @functools.wraps(reference)
    def masked_softmax(s, keep):
        return _masked_softmax(s, keep, reference)
    return masked_softmax


def fast_softmax_backward(reference):
    """``reference`` (the readable masked-softmax backward) with the fused row loop in front; the
    reference checks dp against p first, so the loop checks it the same way."""
    @functools.wraps(reference)
    def masked_softmax_backward(dp, p):
        if not (p.ndim >= 1 and p.size >= MIN_SIZE and dp.shape == p.shape and dp.dtype == p.dtype
                and jit_route(dp, p)):
            return reference(dp, p)  # also raises the reference's error on a bad dp
        dp, p = np.ascontiguousarray(dp), np.ascontiguousarray(p)
        ds = np.empty_like(p)
        Tk = p.shape[-1]
        K.softmax_backward_kernel(dp.reshape(-1, Tk), p.reshape(-1, Tk), ds.reshape(-1, Tk),
                                  np.empty(K.LANES, p.dtype))
        return ds
    return masked_softmax_backward
