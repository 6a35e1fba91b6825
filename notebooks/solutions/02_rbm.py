"""Reference solutions for notebooks/02-rbm.ipynb's "your turn" cells (chapter 02)."""
import numpy as np

import scratchnet.functional as F
from scratchnet.exercises import check_function_output, check_pair
from scratchnet.models.rbm import RBM

YOUR_TURN = ["my_free_energy", "my_free_energy_backward", "my_cd1_grads", "my_cdk_grads"]


def _sigmoid(a):
    """σ(a) from e^{−|a|} ≤ 1, so no input overflows."""
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def my_free_energy(v, w, b, c):
    """F(v) = −vᵀb − Σ_j softplus(c_j + vᵀW_j) (N,) for Bernoulli visibles; the cache keeps a, not p."""
    a = v @ w + c  # (N, H) hidden pre-activations
    f = -(v @ b) - np.logaddexp(0, a).sum(axis=1)  # (N,)
    return f, (v, w, b, a)


def my_free_energy_backward(dF, cache):
    """The staged walk: ds = −dF, da = ds ⊙ σ(a), then the affine node and the −vᵀb term."""
    v, w, b, a = cache
    da = -dF[:, None] * _sigmoid(a)  # (N, H): p = σ(a) recomputed
    dv = da @ w.T - dF[:, None] * b  # (N, D)
    dw = v.T @ da  # (D, H)
    db = -(dF @ v)  # (D,)
    dc = da.sum(axis=0)  # (H,)
    return dv, dw, db, dc


def my_cdk_grads(v0, w, b, c, rng, k):
    """CD-k estimate of −∇ log p(v0): model (after k Gibbs sweeps from the data) minus data."""
    n = v0.shape[0]
    p0 = F.hidden_probs(v0, w, c)  # (N, H) positive phase
    vk, pk = v0, p0
    for _ in range(k):  # one sweep: h ~ P(h | v), v ~ P(v | h)
        hk = F.sample_bernoulli(pk, rng=rng)
        vk = F.sample_bernoulli(F.visible_probs(hk, w, b), rng=rng)
        pk = F.hidden_probs(vk, w, c)
    dw = (vk.T @ pk - v0.T @ p0) / n  # (D, H)
    db = (vk - v0).mean(axis=0)  # (D,)
    dc = (pk - p0).mean(axis=0)  # (H,)
    return dw, db, dc


def my_cd1_grads(v0, w, b, c, rng):
    """CD-1: one Gibbs sweep from the data."""
    return my_cdk_grads(v0, w, b, c, rng, 1)


def _library_cd(v0, w, b, c, rng, k=1):
    rbm = RBM(*w.shape, dtype=w.dtype, rng=np.random.default_rng(0))
    rbm.weight.data[...], rbm.vbias.data[...], rbm.hbias.data[...] = w, b, c
    return rbm.cd_grads(v0, k=k, rng=rng)[:3]


def check(strict=True):
    """The notebook's checks, run on these solutions."""
    gc = np.random.default_rng(0)
    v_c = (gc.random((5, 6)) < 0.5).astype(np.float64)
    w_c, b_c, c_c = gc.standard_normal((6, 4)), gc.standard_normal(6), gc.standard_normal(4)
    return [
        check_pair((my_free_energy, my_free_energy_backward), (F.free_energy, F.free_energy_backward),
                   [v_c, w_c, b_c, c_c], strict=strict),
        check_function_output(my_cd1_grads, _library_cd, [v_c, w_c, b_c, c_c, np.random.default_rng(1)],
                              title="your CD-1 estimate (my_cd1_grads)", strict=strict),
        check_function_output(my_cdk_grads, _library_cd, [v_c, w_c, b_c, c_c, np.random.default_rng(1)],
                              options={"k": 3}, title="your CD-k estimate (k = 3)", strict=strict),
    ]
