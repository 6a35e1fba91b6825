"""Numba loop kernels of layer normalisation: one row of D features at a time, forward and backward.

Legend: R rows (every axis but the last, flattened), D features. The vectorised reference is
``layer_norm`` / ``layer_norm_backward`` in ``scratchnet/functional/norm.py``;
``scratchnet/kernels/layernorm.py`` chooses. The reference makes about seven passes over the
(R, D) array each way, most with a temporary; these loops read a row from memory once (the
row's further passes hit the cache) and write each output once:

- forward: μ and σ² (two passes over the cached row, float64 sums), x̂ = (x − μ)·s with
  s = 1/√(σ² + ε), y = γ x̂ + β;
- backward: dx̂ = dy ⊙ γ, the row means of dx̂ and dx̂ ⊙ x̂, dx = s·(dx̂ − mean(dx̂) − x̂·mean(dx̂ ⊙ x̂)),
  and dγ += dy ⊙ x̂, dβ += dy accumulated over rows in float64 (D,) vectors.

No fastmath: a strict-order sum does not vectorise, so the row sums run in LANES float64 partial
sums updated elementwise (the order differs from NumPy's pairwise sums by a few ulps).
"""
from __future__ import annotations

import math

import numpy as np

from .._jit import njit

__all__ = ["LANES", "layer_norm_kernel", "layer_norm_backward_kernel"]

LANES = 8  # float64 partial sums per row: one AVX-512 float64 vector


@njit(error_model="numpy")
def _row_sum(a, shift, lanes):
    """Σ_j (a[j] − shift) of one row in float64, in LANES partial sums."""
    D = a.size
    for lane in range(LANES):
        lanes[lane] = 0.0
    for j0 in range(0, D - D % LANES, LANES):  # whole blocks, a fixed-width loop the compiler vectorises
        for lane in range(LANES):
            lanes[lane] += np.float64(a[j0 + lane]) - shift
    for j in range(D - D % LANES, D):  # the tail
        lanes[0] += np.float64(a[j]) - shift
    return lanes.sum()


@njit(error_model="numpy")
def _row_sumsq(a, shift, lanes):
    """Σ_j (a[j] − shift)² of one row in float64, in LANES partial sums."""
    D = a.size
    for lane in range(LANES):
        lanes[lane] = 0.0
    for j0 in range(0, D - D % LANES, LANES):  # whole blocks, vectorised
        for lane in range(LANES):
            d = np.float64(a[j0 + lane]) - shift
            lanes[lane] += d * d
    for j in range(D - D % LANES, D):  # the tail
        d = np.float64(a[j]) - shift
        lanes[0] += d * d
    return lanes.sum()


@njit(error_model="numpy")
def _row_dot(a, b, lanes):
    """Σ_j a[j] b[j] of two rows in float64, in LANES partial sums."""
    D = a.size
    for lane in range(LANES):
        lanes[lane] = 0.0
    for j0 in range(0, D - D % LANES, LANES):  # whole blocks, vectorised
        for lane in range(LANES):
            lanes[lane] += np.float64(a[j0 + lane]) * np.float64(b[j0 + lane])
    for j in range(D - D % LANES, D):  # the tail
        lanes[0] += np.float64(a[j]) * np.float64(b[j])
    return lanes.sum()


@njit(error_model="numpy")
def layer_norm_kernel(x, gamma, beta, eps, xhat, y, inv_std, lanes):
    """x̂ = (x − μ)·s and y = γ x̂ + β per row, s = 1/√(σ² + ε) (biased σ²) written to inv_std.

    x, xhat, y (R, D) of one dtype (y may be xhat itself when γ = 1, β = 0 are passed); gamma,
    beta (D,) in x's dtype; inv_std (R,); lanes (LANES,) float64 scratch.
    """
    R, D = x.shape
    for r in range(R):  # independent rows
        xr, hr, yr = x[r], xhat[r], y[r]
        mu = _row_sum(xr, 0.0, lanes) / D
        var = _row_sumsq(xr, mu, lanes) / D  # two passes over the cached row: no cancellation
        s = 1.0 / math.sqrt(var + eps)
        inv_std[r] = s
        m, sd = xr.dtype.type(mu), xr.dtype.type(s)  # the elementwise pass in x's precision
        for j in range(D):
            v = (xr[j] - m) * sd
            hr[j] = v
            yr[j] = v * gamma[j] + beta[j]


@njit(error_model="numpy")
def layer_norm_backward_kernel(dy, xhat, inv_std, gamma, dx, dgamma, dbeta, dxhat, lanes):
    """dx of one row at a time, dγ and dβ summed over rows.

    dy, xhat, dx (R, D); inv_std (R,); gamma (D,) in dy's dtype (ones without γ); dgamma, dbeta
    (D,) float64, zeroed by the caller; dxhat (D,) scratch in dy's dtype; lanes (LANES,) float64.
    """
    R, D = dy.shape
    for r in range(R):  # rows: dx independent, dγ and dβ accumulated
        dr, hr, out = dy[r], xhat[r], dx[r]
        for j in range(D):
            dxhat[j] = dr[j] * gamma[j]  # dx̂ = dy ⊙ γ
            dgamma[j] += np.float64(dr[j]) * hr[j]  # Σ dy ⊙ x̂
            dbeta[j] += dr[j]  # Σ dy
        t = dy.dtype.type
        mean_dxhat = t(_row_sum(dxhat, 0.0, lanes) / D)
        mean_dxhat_xhat = t(_row_dot(dxhat, hr, lanes) / D)
        s = t(inv_std[r])
        for j in range(D):
            out[j] = (dxhat[j] - mean_dxhat - hr[j] * mean_dxhat_xhat) * s
