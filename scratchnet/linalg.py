"""Linear-algebra utilities: the ridge-regression solve behind the Deep Stacking Network's upper weights.

Legend: N rows (examples), L features (hidden units), C targets.
See chapters/04-dsn.md#eq-dsn-ridge.
"""
from __future__ import annotations

from ._checks import check_dim, check_float, check_ndim, check_same_dtype
from .backend import get_array_module

__all__ = ["ridge_solve"]


def ridge_solve(h, t, *, lam):
    """U = (HᵀH + λI)⁻¹ HᵀT, the ridge-regression weights that map the rows of h to those of t.

    h (N, L), t (N, C), lam ≥ 0 → (U (L, C), G = HᵀH + λI (L, L)); G is returned for a caller that
    differentiates through U (``dsn_module_backward`` solves once more with it).
    See chapters/04-dsn.md#eq-dsn-ridge.
    """
    check_ndim("ridge_solve", "h", h, 2)
    check_ndim("ridge_solve", "t", t, 2)
    check_float("ridge_solve", "h", h)
    check_same_dtype("ridge_solve", h=h, t=t)
    check_dim("ridge_solve", "t", t, 0, h.shape[0], "one target row per row of h")
    if lam < 0:
        raise ValueError(f"ridge_solve: lam must be ≥ 0, got {lam}")
    xp = get_array_module(h, t)
    g = h.T @ h + lam * xp.eye(h.shape[1], dtype=h.dtype)  # (L, L) Gram matrix
    u = xp.linalg.solve(g, h.T @ t)  # (L, C)
    return u, g
