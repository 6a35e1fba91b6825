"""Reference solutions for notebooks/04-dsn.ipynb's "your turn" cells (chapter 04)."""
import numpy as np

import scratchnet.functional as F
from scratchnet.exercises import check_pair

YOUR_TURN = ["my_dsn_module", "my_dsn_module_backward"]


def my_dsn_module(x, w, *, t, lam):
    """H = σ(XW), U = (HᵀH + λI)⁻¹HᵀT, Y = HU, E = ‖Y − T‖²; the targets t are data (no gradient)."""
    h = 1.0 / (1.0 + np.exp(-(x @ w)))  # (N, L)
    g = h.T @ h + lam * np.eye(h.shape[1])  # (L, L) Gram matrix, kept for the backward's solve
    u = np.linalg.solve(g, h.T @ t)  # (L, C) ridge solution, never an inverse
    y = h @ u  # (N, C)
    r = y - t  # (N, C) residual
    return ((r * r).sum(), y, u), (x, w, h, u, g, r)


def my_dsn_module_backward(dout, cache):
    """dx, dw through the closed-form U: dH = (dY − HQ)Uᵀ − RQᵀ with Q = G⁻¹dU (totals)."""
    x, w, h, u, g, r = cache
    de, dy, du = dout
    dy_tot = 2.0 * (0.0 if de is None else de) * r + (0.0 if dy is None else dy)  # (N, C)
    du_tot = h.T @ dy_tot + (0.0 if du is None else du)  # (L, C)
    q = np.linalg.solve(g, du_tot)  # (L, C), G symmetric
    dh = (dy_tot - h @ q) @ u.T - r @ q.T  # (N, L): the three paths into H
    da = dh * h * (1.0 - h)  # (N, L) through the sigmoid
    return da @ w.T, x.T @ da  # dx (N, D), dw (D, L)


def _library_dsn_module(x, w, *, t, lam):
    return F.dsn_module(x, w, t, lam=lam)


def check(strict=True):
    """The notebook's check, run on these solutions (the inputs of its staged walk)."""
    g = np.random.default_rng(1)
    N, D, L, C, lam = 20, 6, 5, 3, 0.7
    x, w = g.standard_normal((N, D)), g.standard_normal((D, L))
    t = np.eye(C)[g.integers(0, C, N)]
    return [check_pair((my_dsn_module, my_dsn_module_backward), (_library_dsn_module, F.dsn_module_backward),
                       [x, w], options={"t": t, "lam": lam}, title="your DSN module (my_dsn_module)",
                       strict=strict)]
