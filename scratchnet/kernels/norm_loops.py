"""Numba loop kernels of batch normalisation in training mode: two passes forward, two backward.

Legend: N batch, C channels, S positions per channel (H·W, L or 1), F = C·S features per sample.
The vectorised reference is ``_batch_norm_train`` / ``batch_norm_backward`` in
``scratchnet/functional/norm.py``; ``scratchnet/kernels/norm.py`` chooses between them and these
loops. Per channel, over its m = N·S values:

- forward: one pass for the moments Σ(x − k) and Σ(x − k)² (k, the channel's first value, is a
  shift that keeps the float64 sums free of cancellation), one pass for x̂ = (x − μ)·s and
  y = γ x̂ + β;
- backward: one pass for Σ dy and Σ dy·x̂, one pass for dx = a·(dy − b − x̂·c) with the
  per-channel coefficients a = γ s, b = Σdy/m, c = Σdy·x̂/m.

Two layouts. The ``channel_*`` kernels take x as (N, C, S) with S large (images): each channel's
rows are contiguous, so a channel is one thread's work (``prange`` over channels) and its sums
run in a column of S float64 partial sums, updated elementwise (a strict-order scalar sum would
not vectorise; no fastmath). The ``feature_*`` kernels take x as (N, F) with S small (BatchNorm1d):
they walk the rows and keep one float64 sum per feature, vectorised along the row; the caller
adds each channel's S features. Per-channel vectors (μ, s, γ, ...) come in x's dtype, so the
elementwise passes run in x's precision, as the reference does.
"""
from __future__ import annotations

import numpy as np

from .._jit import njit, prange

__all__ = ["channel_moments_kernel", "channel_moments_kernel_serial", "channel_normalize_kernel",
           "channel_normalize_kernel_serial", "channel_grad_sums_kernel", "channel_grad_sums_kernel_serial",
           "channel_grad_input_kernel", "channel_grad_input_kernel_serial", "feature_moments_kernel",
           "feature_normalize_kernel", "feature_grad_sums_kernel", "feature_grad_input_kernel"]


# -- (N, C, S): one channel per iteration ------------------------------------------------------------
def _channel_moments(x, shift, sums, sumsqs):
    """sums[c] = Σ (x − shift[c]), sumsqs[c] = Σ (x − shift[c])² over the channel's N·S values.

    x (N, C, S); shift, sums, sumsqs (C,) float64.
    """
    N, C, S = x.shape
    for c in prange(C):  # channels are independent
        k = shift[c]
        col = np.zeros(S)  # (S,) float64 partial sums, one per position
        col2 = np.zeros(S)  # (S,) their squares
        for n in range(N):
            row = x[n, c]  # (S,) contiguous
            for i in range(S):
                d = row[i] - k  # float64
                col[i] += d
                col2[i] += d * d
        total, total2 = 0.0, 0.0
        for i in range(S):
            total += col[i]
            total2 += col2[i]
        sums[c] = total
        sumsqs[c] = total2


def _channel_normalize(x, mean, inv_std, gamma, beta, xhat, y, affine):
    """xhat = (x − mean[c])·inv_std[c]; and y = xhat·gamma[c] + beta[c] when ``affine``.

    x, xhat, y (N, C, S) (y unused when not affine); mean, inv_std, gamma, beta (C,) in x's dtype.
    """
    N, C, S = x.shape
    for c in prange(C):  # channels write disjoint planes
        mu, s, g, b = mean[c], inv_std[c], gamma[c], beta[c]
        for n in range(N):
            xr, hr, yr = x[n, c], xhat[n, c], y[n, c]  # (S,) rows
            if affine:
                for i in range(S):
                    v = (xr[i] - mu) * s
                    hr[i] = v
                    yr[i] = v * g + b
            else:
                for i in range(S):
                    hr[i] = (xr[i] - mu) * s


def _channel_grad_sums(dy, xhat, sum_dy, sum_dy_xhat):
    """sum_dy[c] = Σ dy, sum_dy_xhat[c] = Σ dy·x̂ over the channel's values (float64 sums).

    dy, xhat (N, C, S); sum_dy, sum_dy_xhat (C,) float64.
    """
    N, C, S = dy.shape
    for c in prange(C):  # channels are independent
        col = np.zeros(S)  # (S,) partial sums of dy
        col2 = np.zeros(S)  # (S,) partial sums of dy·x̂
        for n in range(N):
            dr, hr = dy[n, c], xhat[n, c]  # (S,) rows
            for i in range(S):
                d = np.float64(dr[i])
                col[i] += d
                col2[i] += d * hr[i]
        total, total2 = 0.0, 0.0
        for i in range(S):
            total += col[i]
            total2 += col2[i]
        sum_dy[c] = total
        sum_dy_xhat[c] = total2


def _channel_grad_input(dy, xhat, a, b, c_, dx):
    """dx = a[c]·(dy − b[c] − x̂·c_[c]): the closed-form batch-norm backward, one channel at a time.

    dy, xhat, dx (N, C, S); a, b, c_ (C,) in dy's dtype.
    """
    N, C, S = dy.shape
    for c in prange(C):  # channels write disjoint planes
        ac, bc, cc = a[c], b[c], c_[c]
        for n in range(N):
            dr, hr, out = dy[n, c], xhat[n, c], dx[n, c]  # (S,) rows
            for i in range(S):
                out[i] = ac * (dr[i] - bc - hr[i] * cc)


channel_moments_kernel = njit(parallel=True)(_channel_moments)  # prange over channels: big inputs
channel_moments_kernel_serial = njit(_channel_moments)  # the same loops on one thread
channel_normalize_kernel = njit(parallel=True)(_channel_normalize)
channel_normalize_kernel_serial = njit(_channel_normalize)
channel_grad_sums_kernel = njit(parallel=True)(_channel_grad_sums)
channel_grad_sums_kernel_serial = njit(_channel_grad_sums)
channel_grad_input_kernel = njit(parallel=True)(_channel_grad_input)
channel_grad_input_kernel_serial = njit(_channel_grad_input)


# -- (N, F): rows in turn, one float64 sum per feature ------------------------------------------------
@njit
def feature_moments_kernel(x, shift, sums, sumsqs):
    """sums[f] = Σ_n (x[n, f] − shift[f]), sumsqs[f] = Σ_n (x[n, f] − shift[f])².

    x (N, F); shift, sums, sumsqs (F,) float64, sums and sumsqs zeroed by the caller.
    """
    N, F = x.shape
    for n in range(N):
        row = x[n]  # (F,) contiguous
        for f in range(F):  # elementwise along the row: vectorised
            d = row[f] - shift[f]
            sums[f] += d
            sumsqs[f] += d * d


@njit
def feature_normalize_kernel(x, mean, inv_std, gamma, beta, xhat, y, affine):
    """xhat = (x − mean)·inv_std; and y = xhat·gamma + beta when ``affine``.

    x, xhat, y (N, F); mean, inv_std, gamma, beta (F,) in x's dtype (each channel's value repeated S times).
    """
    N, F = x.shape
    for n in range(N):
        xr, hr, yr = x[n], xhat[n], y[n]  # (F,) rows
        if affine:
            for f in range(F):
                v = (xr[f] - mean[f]) * inv_std[f]
                hr[f] = v
                yr[f] = v * gamma[f] + beta[f]
        else:
            for f in range(F):
                hr[f] = (xr[f] - mean[f]) * inv_std[f]


@njit
def feature_grad_sums_kernel(dy, xhat, sum_dy, sum_dy_xhat):
    """sum_dy[f] = Σ_n dy[n, f], sum_dy_xhat[f] = Σ_n dy[n, f]·x̂[n, f].

    dy, xhat (N, F); sum_dy, sum_dy_xhat (F,) float64, zeroed by the caller.
    """
    N, F = dy.shape
    for n in range(N):
        dr, hr = dy[n], xhat[n]  # (F,) rows
        for f in range(F):
            d = np.float64(dr[f])
            sum_dy[f] += d
            sum_dy_xhat[f] += d * hr[f]


@njit
def feature_grad_input_kernel(dy, xhat, a, b, c, dx):
    """dx = a·(dy − b − x̂·c) with per-feature a, b, c (F,) in dy's dtype; dy, xhat, dx (N, F)."""
    N, F = dy.shape
    for n in range(N):
        dr, hr, out = dy[n], xhat[n], dx[n]  # (F,) rows
        for f in range(F):
            out[f] = a[f] * (dr[f] - b[f] - hr[f] * c[f])
