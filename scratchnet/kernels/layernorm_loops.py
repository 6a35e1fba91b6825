"""Numba loop kernels of layer normalisation: one row of D features at a time, forward and backward.

Legend: R rows (every axis but the last, flattened), D features. The vectorised reference is
``layer_norm`` / ``layer_norm_backward`` in ``scratchnet/functional/norm.py``;
``scratchnet/kernels/layernorm.py`` chooses. The reference makes about seven passes over the
(R, D) array each way, most with a temporary; these loops read a row from memory once (the
row's further passes hit the cache) and write each output once:

- forward: μ, the centred row x − μ (kept in x̂'s row), σ² from it (float64 sums), x̂ = (x − μ)·s
  with s = 1/√(σ² + ε), y = γ x̂ + β;
- backward: dx̂ = dy ⊙ γ, the row means of dx̂ and dx̂ ⊙ x̂, dx = s·(dx̂ − mean(dx̂) − x̂·mean(dx̂ ⊙ x̂)),
  and dγ += dy ⊙ x̂, dβ += dy accumulated over rows in float64 (D,) vectors.

The row sums are ``lanes_loops.row_dot`` with float64 lanes (a sum is the dot product with a row of
ones): no fastmath, and their order differs from NumPy's pairwise sums by a few ulps.
"""
from __future__ import annotations

import math

import numpy as np

from .._jit import njit
from .lanes_loops import LANES, row_dot

__all__ = ["LANES", "layer_norm_kernel", "layer_norm_backward_kernel"]  # LANES: the scratch size

@njit(error_model="numpy")
def layer_norm_kernel(x, gamma, beta, eps, ones, xhat, y, inv_std, lanes):
    """x̂ = (x − μ)·s and y = γ x̂ + β per row, s = 1/√(σ² + ε) (biased σ²) written to inv_std.

    x, xhat, y (R, D) of one dtype (y may be xhat itself when γ = 1, β = 0 are passed); gamma,
    beta, ones (D,) in x's dtype; inv_std (R,); lanes (LANES,) float64 scratch.
    """
    R, D = x.shape
    t = x.dtype.type
    for r in range(R):  # independent rows
        xr, hr, yr = x[r], xhat[r], y[r]
        mu = t(row_dot(xr, ones, lanes) / D)  # μ, summed in float64
        for j in range(D):  # x − μ, kept in x̂'s row
            hr[j] = xr[j] - mu
        var = row_dot(hr, hr, lanes) / D  # σ² from the centred row: no cancellation
        s = 1.0 / math.sqrt(var + eps)
        inv_std[r] = s
        sd = t(s)  # the elementwise pass in x's precision
        for j in range(D):
            v = hr[j] * sd
            hr[j] = v
            yr[j] = v * gamma[j] + beta[j]


@njit(error_model="numpy")
def layer_norm_backward_kernel(dy, xhat, inv_std, gamma, ones, dx, dgamma, dbeta, dxhat, lanes):
    """dx of one row at a time, dγ and dβ summed over rows.

    dy, xhat, dx (R, D); inv_std (R,); gamma (D,) in dy's dtype (ones without γ); dgamma, dbeta
    (D,) float64, zeroed by the caller; ones (D,) and dxhat (D,) scratch in dy's dtype; lanes
    (LANES,) float64.
    """
    R, D = dy.shape
    for r in range(R):  # rows: dx independent, dγ and dβ accumulated
        dr, hr, out = dy[r], xhat[r], dx[r]
        for j in range(D):
            dxhat[j] = dr[j] * gamma[j]  # dx̂ = dy ⊙ γ
            dgamma[j] += np.float64(dr[j]) * hr[j]  # Σ dy ⊙ x̂
            dbeta[j] += dr[j]  # Σ dy
        t = dy.dtype.type
        mean_dxhat = t(row_dot(dxhat, ones, lanes) / D)
        mean_dxhat_xhat = t(row_dot(dxhat, hr, lanes) / D)
        s = t(inv_std[r])
        for j in range(D):
            out[j] = (dxhat[j] - mean_dxhat - hr[j] * mean_dxhat_xhat) * s
