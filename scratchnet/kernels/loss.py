"""The fast route of softmax cross-entropy: one fused loop over the rows each way.

``scratchnet/functional/loss.py`` holds the readable reference (``_cross_entropy_ref`` and
``cross_entropy_backward``, which the chapter shows) and passes it here. The loops of
``loss_loops.py`` run when ``jit_route`` allows (JIT on, NumPy arrays, float32/float64) and the
logits have at least MIN_SIZE elements; every option of ``F.cross_entropy`` that changes the
math (reduction, label_smoothing, ignore_index) is handled by the loops, which see the targets
already made safe (ignored positions → class 0) and the mask of positions that count. The
reference makes several passes over full (R, K) arrays each way (the backward builds the one-hot
q in full); the loops make one each way, each row staying in the first-level cache. tests/kernels/test_loss_kernels.py
compares the routes; the timings are in ``benchmarks/bench_core.py``.

Legend: R = N (or N·T) rows, K classes. See chapters/01-mlp.md#eq-softmax-ce-backward.
"""
from __future__ import annotations

import functools

import numpy as np

from .._jit import jit_route
from . import loss_loops as L

__all__ = ["cross_entropy", "fused_backward", "MIN_SIZE", "BLOCK"]

MIN_SIZE = 1 << 6  # logits below which the reference runs (the loop was 2x faster from 40 values up)
BLOCK = 4096  # values per block of rows in the loops: the block, its e^x and its scratch stay in L1


def _takes_loops(logp_or_logits):
    return jit_route(logp_or_logits) and logp_or_logits.size >= MIN_SIZE


def cross_entropy(logits, t, valid, label_smoothing, *, reference):
    """(log-softmax (..., K), per-position loss (...)) in the logits' dtype: the fused loop or
    ``reference(logits, t, valid, label_smoothing)``. t: safe targets (...), valid: bool (...)."""
    if not _takes_loops(logits):
        return reference(logits, t, valid, label_smoothing)
    K = logits.shape[-1]
    z = np.ascontiguousarray(logits).reshape(-1, K)  # (R, K)
    logp = np.empty(z.shape, dtype=z.dtype)  # (R, K)
    per_item = np.empty(z.shape[0], dtype=z.dtype)  # (R,)
    L.cross_entropy_kernel(z, np.ascontiguousarray(t).reshape(-1), np.ascontiguousarray(valid).reshape(-1),
                           float(label_smoothing), logp, per_item, z.dtype == np.float32, BLOCK)
    return logp.reshape(logits.shape), per_item.reshape(logits.shape[:-1])


def _cross_entropy_backward(dloss, cache, reference, check):
    logp, t, valid, smoothing, reduction, count = cache
    check("cross_entropy_backward", dloss, valid.shape if reduction == "none" else (), logp.dtype)
    if not _takes_loops(logp):
        return reference(dloss, cache)
    dtype = logp.dtype
    K = logp.shape[-1]
    scale = valid.astype(dtype) * (dloss if reduction == "none" else dloss / count)  # (...) 0 where ignored
    dz = np.empty(logp.shape, dtype=dtype)  # (..., K)
    L.cross_entropy_backward_kernel(np.ascontiguousarray(logp).reshape(-1, K), np.ascontiguousarray(t).reshape(-1),
                                    np.ascontiguousarray(scale, dtype=dtype).reshape(-1), float(smoothing),
                                    dz.reshape(-1, K), dtype == np.float32, BLOCK)
    return dz


def fused_backward(reference, check):
    """``reference`` (the readable ``functional.loss.cross_entropy_backward``) with the fused loop in
    front for NumPy float32/float64 logits of MIN_SIZE elements or more; every other call runs
    ``reference`` itself. ``check(op, dloss, shape, dtype)`` validates the upstream gradient first."""
    @functools.wraps(reference)
    def cross_entropy_backward(dloss, cache):
        return _cross_entropy_backward(dloss, cache, reference, check)
    return cross_entropy_backward
