"""The fast routes of CTC: the α pass and the fused β-and-gradient pass as Numba loops, and as CUDA kernels.

``scratchnet/functional/ctc.py`` holds the vectorised reference (loop over time, vectorised over
the batch and the extended labels) and passes it here as ``reference=``. CuPy arrays of
float32/float64 take the CUDA kernels of ``ctc_cupy.py`` (``cuda_route``: the time loop inside one
thread block per sequence, every cell computed as in the reference, β kept whole); NumPy arrays the
Numba loops when ``jit_route`` allows (JIT on, float32/float64); float16 and ``SCRATCHNET_JIT=0``
take the reference. Lattices of CTC_PARALLEL_MIN cells or more run the ``prange`` kernels (one
sequence per thread), smaller ones the serial twins: a parallel region leaves its workers spinning
after it ends, which slows the GEMMs around a small lattice (``benchmarks/bench_ctc.py`` times the
loss). tests/functional/test_ctc.py and tests/kernels/test_cuda_kernels.py compare every route with
the reference.

Legend: N batch, T time, C classes, L = 2S + 1 extended labels. See chapters/17-ctc.md#implementation.
"""
from __future__ import annotations

import math

import numpy as np

from .._jit import jit_route
from . import ctc_cupy
from . import ctc_loops as K
from .cuda import cuda_route

__all__ = ["ctc_alpha", "ctc_beta_grad", "CTC_PARALLEL_MIN"]

CTC_PARALLEL_MIN = 1 << 16  # lattice cells N·T·L from which the kernels split the sequences over threads


def ctc_alpha(log_probs, ext, skip, input_lengths, ext_lengths, *, trim, reference):
    """alpha (N, T, L) and log p (N,) of log_probs (N, T, C): the Numba α pass or
    ``reference(log_probs, ext, skip, input_lengths, ext_lengths)``.

    ``trim`` (the loss): the kernel leaves −inf the cells below the band of complete paths, which
    nothing reads; the lattice for plots passes False.
    """
    if cuda_route(log_probs):  # CuPy: the CUDA kernels
        return ctc_cupy.ctc_alpha(log_probs, ext, skip, input_lengths, ext_lengths)
    if not jit_route(log_probs):
        return reference(log_probs, ext, skip, input_lengths, ext_lengths)
    lp = np.ascontiguousarray(log_probs)
    alpha = np.empty(lp.shape[:2] + (ext.shape[1],), dtype=lp.dtype)  # (N, T, L) filled by the kernel
    logp = np.empty(lp.shape[0], dtype=lp.dtype)  # (N,)
    kernel = K.ctc_alpha_kernel if alpha.size >= CTC_PARALLEL_MIN else K.ctc_alpha_kernel_serial
    kernel(lp, ext, skip, input_lengths, ext_lengths, alpha, logp, lp.dtype.type(-math.inf), lp.dtype.type(1), trim)
    return alpha, logp


def ctc_beta_grad(log_probs, ext, skip, input_lengths, ext_lengths, alpha, logp, weight, *, trim, reference):
    """beta and dlog_probs (N, T, C) = −weight · γ: the fused Numba pass or
    ``reference(log_probs, ext, skip, input_lengths, ext_lengths, alpha, logp, weight)``.

    ``trim`` (the loss): the kernel keeps two rows of β, beta (N, 2, L), and skips the cells no
    complete path reaches; False (the lattice): beta (N, T, L), every cell.
    """
    if cuda_route(log_probs, alpha, weight):  # CuPy: the CUDA kernels (β kept whole, whatever trim says)
        return ctc_cupy.ctc_beta_grad(log_probs, ext, skip, input_lengths, ext_lengths, alpha, logp, weight)
    if not jit_route(log_probs, alpha, weight):
        return reference(log_probs, ext, skip, input_lengths, ext_lengths, alpha, logp, weight)
    lp = np.ascontiguousarray(log_probs)
    N, T, _ = lp.shape
    beta = np.empty((N, 2 if trim else T, alpha.shape[2]), dtype=lp.dtype)  # (N, 2, L) or (N, T, L)
    dlog_probs = np.empty(lp.shape, dtype=lp.dtype)  # (N, T, C) filled by the kernel
    kernel = K.ctc_beta_grad_kernel if alpha.size >= CTC_PARALLEL_MIN else K.ctc_beta_grad_kernel_serial
    kernel(lp, ext, skip, input_lengths, ext_lengths, alpha, logp, np.ascontiguousarray(weight, dtype=lp.dtype),
           beta, dlog_probs, lp.dtype.type(-math.inf), lp.dtype.type(1), trim)
    return beta, dlog_probs
