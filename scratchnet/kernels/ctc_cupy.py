"""CUDA kernels for CTC on CuPy arrays: the α pass, the β pass, and the gradient.

Legend: N batch, T time, C classes, L = 2S + 1 extended labels; every value a log-probability, −∞
an unreachable cell. The vectorised reference (``_alpha_reference`` / ``_beta_grad_reference`` in
``scratchnet/functional/ctc.py``) walks time in Python, launching a dozen small GPU kernels per frame;
here the time loop runs inside the kernel:

- ``ctc_alpha``: one thread block per sequence; its threads share out the states s of a frame, and
  a barrier (``__syncthreads``) separates frame t − 1 from frame t. Cells are the reference's, every
  one of them (no trimming), so alpha equals the reference's lattice.
- ``ctc_beta``: the same walk backward in time. β (N, T, L) is kept whole: the gradient reads it.
- ``ctc_grad``: one thread per frame (n, t), adding the occupations γ_t(s) of its states onto their
  classes in ascending s — each output row has one writer, so no atomics and the same sums every run.

A NaN anywhere in a sequence's frames t < T_n makes its log p NaN (``ctc_alpha`` scans them) and its
gradient NaN on those frames, as in the reference. ``scratchnet/kernels/ctc.py`` routes CuPy arrays
of float32/float64 here; tests/kernels/test_cuda_kernels.py runs these kernels on the CPU with
``cuda_emulator`` against the reference. See chapters/17-ctc.md#implementation.
"""
from __future__ import annotations

import numpy as np

from ..backend import get_array_module
from .cuda import block_size, compile_kernel, grid_size

__all__ = ["SOURCE", "ctc_alpha", "ctc_beta_grad"]

SOURCE = r"""
/* log(e^a + e^b), exact when one or both are −inf. */
SN_DEVICE real sn_lse2(real a, real b, real neg_inf)
{
    real m = a > b ? a : b;
    if (m == neg_inf)
        return m;
    return m + r_log1p(r_exp((a > b ? b : a) - m));
}

/* log(e^a + e^b + e^c), exact when some or all are −inf: the largest contributes e^0 = 1. */
SN_DEVICE real sn_lse3(real a, real b, real c, real neg_inf)
{
    real hi = a > b ? a : b;
    real m = hi > c ? hi : c;
    if (m == neg_inf)
        return m;
    return m + r_log(1 + r_exp((a > b ? b : a) - m) + r_exp((hi > c ? c : hi) - m));
}

/* [ctc-alpha-cuda-start] */
/* alpha (N, T, L), logp (N,); grid N blocks (one per sequence).
   alpha_t(s) = lse(alpha_{t-1}(s), alpha_{t-1}(s-1), [skip_s] alpha_{t-1}(s-2)) + lp_t(ext_s). */
SN_KERNEL void ctc_alpha(const real* lp, const long long* ext, const unsigned char* skip,
                         const long long* input_lengths, const long long* ext_lengths,
                         real* alpha, real* logp, int T, int C, int L, real neg_inf)
{
    __shared__ int has_nan;
    const int n = blockIdx.x;
    const int Tn = (int)input_lengths[n], Ln = (int)ext_lengths[n];
    const real* lp_n = lp + (long long)n * T * C;      /* this sequence's frames (T, C) */
    const long long* ext_n = ext + (long long)n * L;
    const unsigned char* skip_n = skip + (long long)n * L;
    real* a = alpha + (long long)n * T * L;              /* this sequence's lattice (T, L) */
    if (threadIdx.x == 0)
        has_nan = 0;
    for (int i = threadIdx.x; i < T * L; i += blockDim.x)  /* every cell starts unreachable */
        a[i] = neg_inf;
    __syncthreads();
    for (int s = threadIdx.x; s < 2 && s < Ln; s += blockDim.x)  /* a path starts in l'_1 or l'_2 */
        a[s] = lp_n[ext_n[s]];
    __syncthreads();
    for (int t = 1; t < Tn; ++t) {  /* forward in time; the barrier ends each frame */
        const real* prev = a + (long long)(t - 1) * L;
        real* cur = a + (long long)t * L;
        for (int s = threadIdx.x; s < Ln; s += blockDim.x) {  /* the threads share out the states */
            real stay = prev[s];
            real advance = s >= 1 ? prev[s - 1] : neg_inf;
            real jump = s >= 2 && skip_n[s] ? prev[s - 2] : neg_inf;
            cur[s] = sn_lse3(stay, advance, jump, neg_inf) + lp_n[(long long)t * C + ext_n[s]];
        }
        __syncthreads();
    }
    int found = 0;
    for (int i = threadIdx.x; i < Tn * C; i += blockDim.x)  /* NaN in -> NaN out: scan the frames t < T_n */
        found |= lp_n[i] != lp_n[i];
    if (found)
        has_nan = 1;  /* every writer stores the same 1 */
    __syncthreads();
    if (threadIdx.x == 0) {
        real last = a[(long long)(Tn - 1) * L + Ln - 1];
        real second = Ln > 1 ? a[(long long)(Tn - 1) * L + Ln - 2] : neg_inf;
        logp[n] = has_nan ? neg_inf * 0 : sn_lse2(last, second, neg_inf);  /* -inf * 0 is NaN */
    }
}

/* [ctc-alpha-cuda-end] */

/* beta (N, T, L); grid N blocks (one per sequence).
   beta_t(s) = lse(beta_{t+1}(s), beta_{t+1}(s+1), [skip_{s+2}] beta_{t+1}(s+2)) + lp_t(ext_s). */
SN_KERNEL void ctc_beta(const real* lp, const long long* ext, const unsigned char* skip,
                        const long long* input_lengths, const long long* ext_lengths,
                        real* beta, int T, int C, int L, real neg_inf)
{
    const int n = blockIdx.x;
    const int Tn = (int)input_lengths[n], Ln = (int)ext_lengths[n];
    const real* lp_n = lp + (long long)n * T * C;
    const long long* ext_n = ext + (long long)n * L;
    const unsigned char* skip_n = skip + (long long)n * L;
    real* b = beta + (long long)n * T * L;
    for (int i = threadIdx.x; i < T * L; i += blockDim.x)  /* every cell starts unreachable */
        b[i] = neg_inf;
    __syncthreads();
    for (int s = sn_imax(Ln - 2, 0) + threadIdx.x; s < Ln; s += blockDim.x)  /* a path ends in l'_L or l'_{L-1} */
        b[(long long)(Tn - 1) * L + s] = lp_n[(long long)(Tn - 1) * C + ext_n[s]];
    __syncthreads();
    for (int t = Tn - 2; t >= 0; --t) {  /* backward in time; the barrier ends each frame */
        const real* next = b + (long long)(t + 1) * L;
        real* cur = b + (long long)t * L;
        for (int s = threadIdx.x; s < Ln; s += blockDim.x) {  /* the threads share out the states */
            real stay = next[s];
            real advance = s + 1 < Ln ? next[s + 1] : neg_inf;
            real jump = s + 2 < Ln && skip_n[s + 2] ? next[s + 2] : neg_inf;
            cur[s] = sn_lse3(stay, advance, jump, neg_inf) + lp_n[(long long)t * C + ext_n[s]];
        }
        __syncthreads();
    }
}

/* dlp (N, T, C) = -weight_n * gamma_t(k), gamma_t(k) = sum over s with ext_s = k of
   exp(alpha_t(s) + beta_t(s) - lp_t(k) - log p); one thread per frame (n, t), grid-stride. */
SN_KERNEL void ctc_grad(const real* lp, const long long* ext, const long long* input_lengths,
                        const long long* ext_lengths, const real* alpha, const real* beta,
                        const real* logp, const real* weight, real* dlp, int N, int T, int C, int L,
                        real neg_inf)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (long long)N * T;
         i += (long long)gridDim.x * blockDim.x) {  /* frames (n, t), several per thread on a small grid */
        const int n = (int)(i / T), t = (int)(i % T);
        const real* lp_t = lp + i * C;
        real* d = dlp + i * C;
        for (int k = 0; k < C; ++k)  /* the occupations are added onto zeros */
            d[k] = 0;
        if (t >= input_lengths[n])  /* past the sequence's end: no gradient */
            continue;
        if (logp[n] != logp[n]) {  /* NaN in -> NaN out on the sequence's frames */
            for (int k = 0; k < C; ++k)
                d[k] = neg_inf * 0;
            continue;
        }
        const real w = weight[n];
        if (w == 0)  /* an impossible target, or no upstream gradient */
            continue;
        const real* a = alpha + i * L;
        const real* b = beta + i * L;
        for (int s = 0; s < ext_lengths[n]; ++s) {  /* each state's occupation onto its class */
            const long long k = ext[(long long)n * L + s];
            const real g = a[s] + b[s] - lp_t[k] - logp[n];
            if (g > neg_inf)
                d[k] -= w * r_exp(g);
        }
    }
}
"""

GRAD_BLOCK = 128  # threads per block of ctc_grad (one thread per frame)


def _arguments(log_probs, ext, skip, input_lengths, ext_lengths):
    """The inputs as the kernels read them: contiguous, of the declared dtypes."""
    xp = get_array_module(log_probs)
    return (xp.ascontiguousarray(log_probs), xp.ascontiguousarray(ext, dtype=xp.int64),
            xp.ascontiguousarray(skip, dtype=xp.bool_), xp.ascontiguousarray(input_lengths, dtype=xp.int64),
            xp.ascontiguousarray(ext_lengths, dtype=xp.int64))


def ctc_alpha(log_probs, ext, skip, input_lengths, ext_lengths, *, compile=compile_kernel):
    """alpha (N, T, L) and log p (N,) of log_probs (N, T, C), equal to the vectorised reference's.

    ``compile``: ``kernels.cuda.compile_kernel`` (CuPy), or ``cuda_emulator.compile_kernel`` with NumPy
    arrays (the tests)."""
    lp, ext, skip, input_lengths, ext_lengths = _arguments(log_probs, ext, skip, input_lengths, ext_lengths)
    xp = get_array_module(lp)
    N, T, C = lp.shape
    L = ext.shape[1]
    alpha = xp.empty((N, T, L), dtype=lp.dtype)  # (N, T, L) written in full by the kernel
    logp = xp.empty(N, dtype=lp.dtype)  # (N,)
    kernel = compile(SOURCE, "ctc_alpha", lp.dtype)
    i32, real = np.int32, lp.dtype.type
    kernel((N,), (block_size(L),), (lp, ext, skip, input_lengths, ext_lengths, alpha, logp, i32(T), i32(C),
                                    i32(L), real(-np.inf)))
    return alpha, logp


def ctc_beta_grad(log_probs, ext, skip, input_lengths, ext_lengths, alpha, logp, weight, *,
                  compile=compile_kernel):
    """beta (N, T, L) and dlog_probs (N, T, C) = −weight · γ, equal to the vectorised reference's."""
    lp, ext, skip, input_lengths, ext_lengths = _arguments(log_probs, ext, skip, input_lengths, ext_lengths)
    xp = get_array_module(lp)
    N, T, C = lp.shape
    L = ext.shape[1]
    alpha, logp = xp.ascontiguousarray(alpha, dtype=lp.dtype), xp.ascontiguousarray(logp, dtype=lp.dtype)
    weight = xp.ascontiguousarray(xp.broadcast_to(xp.asarray(weight, dtype=lp.dtype), (N,)))  # (N,)
    beta = xp.empty((N, T, L), dtype=lp.dtype)  # (N, T, L) written in full by ctc_beta
    dlp = xp.empty((N, T, C), dtype=lp.dtype)  # (N, T, C) written in full by ctc_grad
    i32, real = np.int32, lp.dtype.type
    beta_kernel = compile(SOURCE, "ctc_beta", lp.dtype)
    beta_kernel((N,), (block_size(L),), (lp, ext, skip, input_lengths, ext_lengths, beta, i32(T), i32(C), i32(L),
                                         real(-np.inf)))
    grad_kernel = compile(SOURCE, "ctc_grad", lp.dtype)
    grad_kernel((grid_size(N * T, GRAD_BLOCK),), (GRAD_BLOCK,), (lp, ext, input_lengths, ext_lengths, alpha, beta, logp,
                                                                 weight, dlp, i32(N), i32(T), i32(C), i32(L),
                                                                 real(-np.inf)))
    return beta, dlp
