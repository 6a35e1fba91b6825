"""Energy-based and stacked pieces: RBM free energy and conditionals, sampling, exact and annealed
log-partition functions, and the Deep Stacking Network module, whose closed-form upper weights come
from ``scratchnet.linalg.ridge_solve`` (also importable as ``F.ridge_solve``).

Legend: N batch, D visible units (or module inputs), H hidden units, C targets (DSN outputs),
K Gibbs steps, R annealing runs, S steps of the β schedule.
See chapters/02-rbm.md and chapters/04-dsn.md.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .._checks import check_dim, check_float, check_grad, check_ndim, check_same_dtype
from ..backend import asnumpy, get_array_module, random_standard_normal, random_uniform
from ..linalg import ridge_solve
from .activation import stable_sigmoid, stable_softplus
from .loss import check_dloss

__all__ = [
    "rbm_energy", "free_energy", "rbm_nll_grads", "free_energy_backward", "hidden_probs", "visible_probs",
    "sample_bernoulli", "sample_gaussian", "sample_visible", "gibbs_chain", "check_binary",
    "log_partition_exact", "ais_log_partition", "ais_betas", "pseudo_log_likelihood",
    "dsn_module", "dsn_module_backward", "dsn_hidden", "ridge_solve",
]

_VISIBLE = ("bernoulli", "gaussian")


def _check_rbm(op, v, w, b, c, visible):
    check_ndim(op, "v", v, 2)
    check_ndim(op, "w", w, 2)
    check_float(op, "v", v)
    check_same_dtype(op, v=v, w=w, b=b, c=c)
    check_dim(op, "v", v, 1, w.shape[0], "visible units D of w (D, H)")
    if b is not None and b.shape != (w.shape[0],):
        raise ValueError(f"{op}: expected visible bias b of shape ({w.shape[0]},), got {tuple(b.shape)}")
    if c is not None and c.shape != (w.shape[1],):
        raise ValueError(f"{op}: expected hidden bias c of shape ({w.shape[1]},), got {tuple(c.shape)}")
    if visible not in _VISIBLE:
        raise ValueError(f"{op}: visible must be one of {_VISIBLE}, got {visible!r}")


def check_binary(op: str, v) -> None:
    """Raise ValueError unless every entry of ``v`` is 0 or 1 (a Bernoulli RBM's data)."""
    xp = get_array_module(v)
    if v.size and not bool(xp.all((v == 0) | (v == 1))):
        bad = asnumpy(v[(v != 0) & (v != 1)].ravel()[:3])
        raise ValueError(f"{op}: a Bernoulli RBM needs binary data (0/1), got values such as "
                         f"{bad.tolist()}; binarise first (v > 0.5, or rng.random(v.shape) < v)")


# -- energies and conditionals -------------------------------------------------------------------
class FreeEnergyCache(NamedTuple):
    v: object  # (N, D)
    w: object  # (D, H)
    b: object  # (D,)
    a: object  # (N, H) hidden pre-activations c + vW
    visible: str  # "bernoulli" or "gaussian"


# start-energy
def rbm_energy(v, h, w, b, c, *, visible="bernoulli"):
    """E(v, h) = −vᵀb − hᵀc − vᵀWh (Bernoulli); ‖v − b‖²/2 − hᵀc − vᵀWh (Gaussian, unit σ).

    v (N, D), h (N, H), w (D, H), b (D,), c (H,) → E (N,). See chapters/02-rbm.md#eq-rbm-energy.
    """
    _check_rbm("rbm_energy", v, w, b, c, visible)
    interaction = ((v @ w) * h).sum(axis=1)  # (N,)
    vis = -(v @ b) if visible == "bernoulli" else 0.5 * ((v - b) ** 2).sum(axis=1)  # (N,)
    return vis - h @ c - interaction


def free_energy(v, w, b, c, *, visible="bernoulli"):
    """F(v) = −log Σ_h e^{−E(v,h)} = vis(v) − Σ_j softplus(c_j + vᵀW_j).

    vis(v) = −vᵀb (Bernoulli) or ‖v − b‖²/2 (Gaussian, unit variance).
    v (N, D), w (D, H), b (D,), c (H,) → F (N,).
    Backward (p = σ(c + vW)): dv = dF ⊙ (vis'(v) − p Wᵀ), dW = −vᵀ(dF ⊙ p), db = dF·vis_b,
    dc = −Σ dF ⊙ p.
    See chapters/02-rbm.md#eq-free-energy.
    """
    _check_rbm("free_energy", v, w, b, c, visible)
    a = v @ w + c  # (N, H) hidden pre-activations
    vis = -(v @ b) if visible == "bernoulli" else 0.5 * ((v - b) ** 2).sum(axis=1)  # (N,)
    f = vis - stable_softplus(a).sum(axis=1)  # (N,)
    return f, FreeEnergyCache(v, w, b, a, visible)


def free_energy_backward(df, cache):
    """dv, dw, db, dc of ``free_energy`` (df (N,) is the upstream gradient of each F(v_n))."""
    v, w, b, a, visible = cache
    check_grad("free_energy_backward", "df", df, (v.shape[0],), a.dtype)
    p = stable_sigmoid(a)  # (N, H) = P(h = 1 | v): recomputed: of the (N, H) arrays the cache holds a only
    dsoft = -df[:, None] * p  # (N, H) gradient of the pre-activation a
    if visible == "bernoulli":
        dvis = -df[:, None] * b  # (N, D)
        db = -(df @ v)  # (D,)
    else:
        dvis = df[:, None] * (v - b)  # (N, D)
        db = -(df @ (v - b))  # (D,)
    dv = dvis + dsoft @ w.T  # (N, D)
    dw = v.T @ dsoft  # (D, H)
    dc = dsoft.sum(axis=0)  # (H,)
    return dv, dw, db, dc

def rbm_nll_grads(v_data, p_data, v_model, p_model):
    """Gradient of the negative log-likelihood as "model minus data" expectations.

    −∂log p/∂W = ⟨v hᵀ⟩_model − ⟨v hᵀ⟩_data, and likewise for b (⟨v⟩) and c (⟨h⟩); expectations over h
    are taken exactly through p = P(h = 1 | v). Rows of v_model are samples (CD-k, PCD) or, in the
    exact check, states weighted beforehand. v (N, D), p (N, H) (each side its own N) → dw (D, H),
    db (D,), dc (H,). The same for Bernoulli and unit-variance Gaussian visibles.
    See chapters/02-rbm.md#eq-ll-grad.
    """
    nd, nm = 1.0 / v_data.shape[0], 1.0 / v_model.shape[0]
    dw = nm * (v_model.T @ p_model) - nd * (v_data.T @ p_data)  # (D, H)
    db = nm * v_model.sum(axis=0) - nd * v_data.sum(axis=0)  # (D,)
    dc = nm * p_model.sum(axis=0) - nd * p_data.sum(axis=0)  # (H,)
    return dw, db, dc
# end-energy


# start-conditionals
def hidden_probs(v, w, c, *, beta=1.0):
    """P(h_j = 1 | v) = σ(β(c_j + vᵀW_j)); v (N, D), w (D, H), c (H,) → (N, H). See #eq-rbm-conditionals."""
    a = v @ w + c  # (N, H)
    return stable_sigmoid(beta * a if beta != 1.0 else a)


def visible_probs(h, w, b, *, visible="bernoulli", n_labels=0):
    """E[v | h]: σ(b + Wh) (Bernoulli) or b + Wh (Gaussian: the mean of N(b + Wh, I)).

    h (N, H), w (D, H), b (D,) → (N, D). With ``n_labels`` = K > 0 the last K visible units form one
    softmax group (the label units of Hinton et al. 2006's top-level RBM).
    """
    xp = get_array_module(h, w)
    a = h @ w.T + b  # (N, D)
    if visible == "gaussian":
        return a
    if n_labels <= 0:
        return stable_sigmoid(a)
    D = a.shape[1] - n_labels
    z = a[:, D:] - a[:, D:].max(axis=1, keepdims=True)  # (N, K) shifted label logits
    e = xp.exp(z)
    return xp.concatenate([stable_sigmoid(a[:, :D]), e / e.sum(axis=1, keepdims=True)], axis=1)


def _uniform(rng, shape, dtype, xp):
    """Uniform numbers on the array's device: from the NumPy Generator on the CPU, from a GPU generator
    seeded by one draw of it for CuPy arrays (``backend.random_uniform``; the GPU draws differ)."""
    return random_uniform(rng, shape, dtype=np.float32 if dtype == np.float32 else np.float64, xp=xp)


def sample_bernoulli(p, *, rng):
    """Binary sample with P(1) = p, drawn from the explicit ``rng``; keeps p's dtype."""
    xp = get_array_module(p)
    return (_uniform(rng, p.shape, p.dtype, xp) < p).astype(p.dtype)


def sample_gaussian(mean, *, rng):
    """mean + N(0, 1) noise (the Gaussian visible units have unit variance)."""
    xp = get_array_module(mean)
    z = random_standard_normal(rng, mean.shape, dtype=mean.dtype, xp=xp)  # (N, D) on mean's device
    return mean + z


def sample_visible(prob, *, rng, visible="bernoulli", n_labels=0):
    """Sample v from ``visible_probs``' output: Bernoulli bits, Gaussian values, one-hot labels."""
    xp = get_array_module(prob)
    if visible == "gaussian":
        return sample_gaussian(prob, rng=rng)
    if n_labels <= 0:
        return sample_bernoulli(prob, rng=rng)
    D = prob.shape[1] - n_labels
    cdf = xp.cumsum(prob[:, D:], axis=1)  # (N, K)
    u = _uniform(rng, (prob.shape[0], 1), prob.dtype, xp)
    idx = xp.minimum((cdf < u).sum(axis=1), n_labels - 1)  # (N,) inverse-CDF draw
    onehot = xp.zeros((prob.shape[0], n_labels), dtype=prob.dtype)  # (N, K)
    onehot[xp.arange(prob.shape[0]), idx] = 1
    return xp.concatenate([sample_bernoulli(prob[:, :D], rng=rng), onehot], axis=1)


def gibbs_chain(v, w, b, c, *, k, rng, visible="bernoulli", n_labels=0, clamp=None):
    """Run k steps of block Gibbs sampling v → h → v from v (N, D).

    Returns (v_k, p_k) with v_k (N, D) the k-th visible sample and p_k = P(h = 1 | v_k) (N, H).
    ``clamp`` (a boolean mask over D, or None) keeps those visible units fixed at their start value
    (the label units during class-conditional generation). See chapters/02-rbm.md#gibbs.
    """
    _check_rbm("gibbs_chain", v, w, b, c, visible)
    vk = v
    for _ in range(k):  # one full sweep: sample h | v, then v | h
        hk = sample_bernoulli(hidden_probs(vk, w, c), rng=rng)  # (N, H)
        vnew = sample_visible(visible_probs(hk, w, b, visible=visible, n_labels=n_labels), rng=rng,
                              visible=visible, n_labels=n_labels)  # (N, D)
        vk = vnew if clamp is None else get_array_module(v).where(clamp, v, vnew)
    return vk, hidden_probs(vk, w, c)
# end-conditionals


# -- partition functions and monitors ------------------------------------------------------------
def _logsumexp(x, axis=None):
    xp = get_array_module(x)
    m = x.max(axis=axis, keepdims=True)
    out = m + xp.log(xp.exp(x - m).sum(axis=axis, keepdims=True))
    return out.squeeze() if axis is None else out.squeeze(axis)


def _all_binary(n, dtype, xp):
    """Every vector in {0,1}^n as rows (2^n, n)."""
    codes = np.arange(2 ** n)[:, None] >> np.arange(n)[None, :] & 1  # (2^n, n)
    return xp.asarray(codes.astype(dtype))


def log_partition_exact(w, b, c):
    """log Z of a Bernoulli RBM by enumerating the smaller layer (2^min(D, H) terms; min ≤ 25).

    Summing h out analytically: log Z = logsumexp_v [vᵀb + Σ_j softplus(c_j + vᵀW_j)]; or the same with
    the roles of v and h swapped. See chapters/02-rbm.md#eq-log-z.
    """
    xp = get_array_module(w)
    D, H = w.shape
    if min(D, H) > 25:
        raise ValueError(f"log_partition_exact: 2^{min(D, H)} states is too many to enumerate (min(D, H) ≤ 25)")
    if D <= H:
        v = _all_binary(D, w.dtype, xp)  # (2^D, D)
        return float(_logsumexp(v @ b + stable_softplus(v @ w + c).sum(axis=1)))
    h = _all_binary(H, w.dtype, xp)  # (2^H, H)
    return float(_logsumexp(h @ c + stable_softplus(h @ w.T + b).sum(axis=1)))


def ais_betas(quick=False):
    """Salakhutdinov & Murray (2008)'s schedule: 0→0.5 step 1e-3, 0.5→0.9 step 1e-4, 0.9→1 step 1e-5
    (14,500 intermediate distributions); ``quick`` uses 10× larger steps (1,450)."""
    f = 10 if quick else 1
    return np.concatenate([np.arange(0, 0.5, 1e-3 * f), np.arange(0.5, 0.9, 1e-4 * f),
                           np.arange(0.9, 1.0, 1e-5 * f), [1.0]])


# start-ais
def ais_log_partition(w, b, c, base_b, *, betas, n_runs=100, rng):
    """Annealed importance sampling estimate of log Z for a Bernoulli RBM (Salakhutdinov & Murray 2008).

    The base-rate model A has W = 0, visible biases ``base_b`` (D,) and H hidden units with zero
    biases, so log Z_A = Σ softplus(base_b) + H log 2 and exact samples are v ~ σ(base_b). The k-th
    distribution is p_k*(v) = e^{(1−β_k) vᵀb_A + β_k vᵀb} Π_j (1 + e^{β_k (c_j + vᵀW_j)}).
    Returns (log Z estimate, log weights (R,)). See chapters/02-rbm.md#ais.
    """
    xp = get_array_module(w)
    D, H = w.shape
    check_dim("ais_log_partition", "base_b", base_b, 0, D, "visible units")

    def log_pstar(v, a, beta):  # (R,) unnormalised log-probability under the β-mixture
        return (1.0 - beta) * (v @ base_b) + beta * (v @ b) + stable_softplus(beta * a).sum(axis=1)

    v = sample_bernoulli(xp.broadcast_to(stable_sigmoid(base_b), (n_runs, D)), rng=rng)  # (R, D) exact draw
    logw = xp.zeros(n_runs, dtype=xp.float64)  # (R,) accumulated in float64: 14,500 small increments
    for k in range(1, len(betas)):  # weight update, then one Gibbs transition that leaves p_k invariant
        bk = float(betas[k])
        a = v @ w + c  # (R, H) shared by both log p* terms and the hidden conditional
        logw = logw + (log_pstar(v, a, bk) - log_pstar(v, a, float(betas[k - 1]))).astype(xp.float64)
        h = sample_bernoulli(stable_sigmoid(bk * a), rng=rng)  # (R, H)
        v = sample_bernoulli(stable_sigmoid((1.0 - bk) * base_b + bk * (h @ w.T + b)), rng=rng)  # (R, D)
    log_za = float(stable_softplus(base_b).sum()) + H * math.log(2.0)
    logw64 = np.asarray(asnumpy(logw), dtype=np.float64)
    return log_za + float(_logsumexp(logw64) - math.log(n_runs)), logw64
# end-ais


def pseudo_log_likelihood(v, w, b, c, *, rng):
    """Stochastic pseudo-log-likelihood of binary v (N, D): D·log σ(F(ṽ) − F(v)) with one random bit
    of each row flipped in ṽ (the estimate scikit-learn's BernoulliRBM.score_samples also uses) → (N,)."""
    xp = get_array_module(v)
    N, D = v.shape
    idx = xp.asarray(rng.integers(0, D, size=N))  # (N,) the flipped unit per row
    flipped = v.copy()
    rows = xp.arange(N)
    flipped[rows, idx] = 1 - flipped[rows, idx]
    f0, _ = free_energy(v, w, b, c)
    f1, _ = free_energy(flipped, w, b, c)
    return D * -stable_softplus(-(f1 - f0))  # log σ(x) = −softplus(−x)


# -- Deep Stacking Network module -----------------------------------------------------------------
# Batch mode touches every training row at once, so the (N, L) arrays dominate memory. Rows go through
# the sigmoid and the backward in blocks of DSN_ROWS: the temporaries stay one block in size and only
# H itself is (N, L) (3.6 GB for 300,000 rows × 3,000 units in float32, where whole-array temporaries
# would need five such arrays). The row sums (HᵀH, HᵀT, XᵀdA) are the same sums, in blocks.
DSN_ROWS = 8192


def dsn_hidden(x, w):
    """H = σ(XW) (N, L) for x (N, D), w (D, L), computed DSN_ROWS rows at a time."""
    xp = get_array_module(x, w)
    h = xp.empty((x.shape[0], w.shape[1]), dtype=x.dtype)  # (N, L)
    for i in range(0, x.shape[0], DSN_ROWS):  # one block of rows through the GEMM and the sigmoid
        h[i:i + DSN_ROWS] = stable_sigmoid(x[i:i + DSN_ROWS] @ w)
    return h


def _check_dsn_dout(dout, N, u_shape, dtype):
    """dout = (dE scalar, dY (N, C), dU (L, C)), each None or of the forward's dtype."""
    op = "dsn_module_backward"
    if not isinstance(dout, (tuple, list)) or len(dout) != 3:
        raise TypeError(f"{op}: expected dout = (dE, dY, dU) (each may be None), got {type(dout).__name__}"
                        + (f" of length {len(dout)}" if isinstance(dout, (tuple, list)) else ""))
    de, dy, du = dout
    if de is not None:
        check_dloss(op, de, (), dtype, name="dE")
    if dy is not None:
        check_grad(op, "dY", dy, (N, u_shape[1]), dtype)
    if du is not None:
        check_grad(op, "dU", du, u_shape, dtype)


class DSNCache(NamedTuple):
    x: object  # (N, D)
    w: object  # (D, L)
    h: object  # (N, L) σ(XW)
    u: object  # (L, C) the ridge weights
    g: object  # (L, L) HᵀH + λI: kept, it costs N·L² to rebuild
    r: object  # (N, C) residual Y − T
    lam: float


# start-dsn
def dsn_module(x, w, t, *, lam):
    """One DSN module: H = σ(XW), U = (HᵀH + λI)⁻¹HᵀT, Y = HU, E = ‖Y − T‖²_F.

    x (N, D), w (D, L), t (N, C) → (E, Y (N, C), U (L, C)). T is a target: no gradient.
    Backward (R = Y − T, G = HᵀH + λI, Ȳ = dY + 2 dE R, Ū = dU + HᵀȲ, Q = G⁻¹Ū):
        dH = (Ȳ − HQ)Uᵀ − RQᵀ,  dA = dH ⊙ H ⊙ (1 − H),  dW = XᵀdA,  dX = dA Wᵀ.
    For E alone HᵀR = −λU, so Q = −2λ dE G⁻¹U, and with λ = 0 this is dH = 2 dE R Uᵀ, the form of
    Deng, Yu & Platt (2012).
    See chapters/04-dsn.md#eq-dsn-grad.
    """
    check_ndim("dsn_module", "x", x, 2)
    check_ndim("dsn_module", "w", w, 2)
    check_ndim("dsn_module", "t", t, 2)
    check_float("dsn_module", "x", x)
    check_same_dtype("dsn_module", x=x, w=w, t=t)
    check_dim("dsn_module", "w", w, 0, x.shape[1], "input features D of x (N, D)")
    check_dim("dsn_module", "t", t, 0, x.shape[0], "one target row per input row")
    if lam < 0:
        raise ValueError(f"dsn_module: lam must be ≥ 0, got {lam}")
    h = dsn_hidden(x, w)  # (N, L) hidden layer, in blocks of rows
    u, g = ridge_solve(h, t, lam=lam)  # (L, C), (L, L)
    y = h @ u  # (N, C) linear outputs
    r = y - t  # (N, C) residual
    e = (r * r).sum()
    return (e, y, u), DSNCache(x, w, h, u, g, r, lam)


def dsn_module_backward(dout, cache, *, need_dx=True):
    """dx, dw of ``dsn_module`` through the closed-form U; ``dout`` = (dE, dY, dU), None = zero.
    ``need_dx=False`` returns (None, dw) and skips the (N, L)·(L, D) product (fitting W needs no dx)."""
    x, w, h, u, g, r, lam = cache
    _check_dsn_dout(dout, x.shape[0], u.shape, x.dtype)
    xp = get_array_module(x)
    de, dy, du = dout
    gy = 2.0 * (0.0 if de is None else de) * r + (0.0 if dy is None else dy)  # (N, C) total dY, U held fixed
    gy = xp.broadcast_to(gy, r.shape)  # (N, C) even when both were None
    ubar = h.T @ gy + (0.0 if du is None else du)  # (L, C) total dU, before U's dependence on H
    q = xp.linalg.solve(g, ubar)  # (L, C) = G⁻¹Ū  (for dE alone: Ū = −2λ dE U, so q = 0 when λ = 0)
    dw = xp.zeros_like(w)  # (D, L)
    dx = xp.empty_like(x) if need_dx else None  # (N, D)
    for i in range(0, x.shape[0], DSN_ROWS):  # one block of rows at a time (see DSN_ROWS)
        rows = slice(i, i + DSN_ROWS)
        hb = h[rows]  # (B, L)
        dh = (gy[rows] - hb @ q) @ u.T - r[rows] @ q.T  # (B, L)
        da = dh * hb * (1.0 - hb)  # (B, L) through the sigmoid
        dw += x[rows].T @ da  # (D, L): this block's share of XᵀdA
        if need_dx:
            dx[rows] = da @ w.T  # (B, D)
    return dx, dw
# end-dsn

