"""RBM: free-energy gradients, the exact likelihood gradient, CD-k → exact, AIS → exact log Z."""
import itertools

import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.gradcheck import assert_gradients
from scratchnet.models.rbm import RBM, base_rate_biases, binarize


def _tiny(rng, D=6, H=4, scale=1.0):
    w = scale * rng.standard_normal((D, H))
    b = 0.5 * rng.standard_normal(D)
    c = 0.5 * rng.standard_normal(H)
    return w, b, c


def _states(n):
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))  # (2^n, n)


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("N,D,H", [(1, 3, 2), (5, 6, 4), (7, 4, 9)])
def test_free_energy_gradcheck(rng, visible, N, D, H):
    w, b, c = _tiny(rng, D, H)
    v = (rng.random((N, D)) < 0.5).astype(float) if visible == "bernoulli" else rng.standard_normal((N, D))
    assert_gradients(F.free_energy, F.free_energy_backward, [v, w, b, c], visible=visible)


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_free_energy_is_marginal_of_energy(rng, visible):
    """F(v) = −log Σ_h e^{−E(v,h)} by enumerating h."""
    w, b, c = _tiny(rng, 5, 4)
    v = (rng.random((3, 5)) < 0.5).astype(float) if visible == "bernoulli" else rng.standard_normal((3, 5))
    hs = _states(4)
    e = np.stack([F.rbm_energy(v, np.repeat(h[None], 3, 0), w, b, c, visible=visible) for h in hs], 1)
    want = -np.log(np.exp(-e).sum(1))
    got, _ = F.free_energy(v, w, b, c, visible=visible)
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_log_partition_exact_matches_double_enumeration(rng):
    w, b, c = _tiny(rng, 6, 4)
    V, Hs = _states(6), _states(4)
    energy = -(V @ b)[:, None] - (Hs @ c)[None, :] - V @ w @ Hs.T
    want = np.log(np.exp(-energy).sum())
    assert F.log_partition_exact(w, b, c) == pytest.approx(want, rel=1e-12)
    assert F.log_partition_exact(w.T.copy(), c, b) == pytest.approx(want, rel=1e-12)  # the roles swapped


def _exact(w, b, c, v_data):
    """Exact −∇ mean log p(v_data): model expectations by enumerating all 2^D visible states."""
    V = _states(w.shape[0])
    f, _ = F.free_energy(V, w, b, c)
    pv = np.exp(-f - F.log_partition_exact(w, b, c))  # (2^D,)
    P = F.hidden_probs(V, w, c)
    pd = F.hidden_probs(v_data, w, c)
    n = v_data.shape[0]
    return (V.T @ (pv[:, None] * P) - v_data.T @ pd / n, pv @ V - v_data.mean(0), pv @ P - pd.mean(0))


def test_exact_gradient_is_data_minus_model(rng):
    """Finite differences of the exact mean NLL equal ⟨·⟩_model − ⟨·⟩_data (eq-ll-grad)."""
    w, b, c = _tiny(rng)
    v = (rng.random((10, 6)) < 0.4).astype(float)

    def nll(w, b, c):
        return float(F.free_energy(v, w, b, c)[0].mean()) + F.log_partition_exact(w, b, c)

    grads = _exact(w, b, c, v)
    for k, (p, g) in enumerate(zip((w, b, c), grads)):
        num = np.zeros_like(p)
        for i in np.ndindex(p.shape):  # central differences
            args = [w.copy(), b.copy(), c.copy()]
            args[k][i] += 1e-6
            up = nll(*args)
            args[k][i] -= 2e-6
            num[i] = (up - nll(*args)) / 2e-6
        np.testing.assert_allclose(g, num, atol=1e-7, rtol=1e-6)
    # with the model expectation written as an average over weighted states, rbm_nll_grads agrees
    V = _states(6)
    pv = np.exp(-F.free_energy(V, w, b, c)[0] - F.log_partition_exact(w, b, c))
    dw, db, dc = F.rbm_nll_grads(v, F.hidden_probs(v, w, c), np.zeros((1, 6)), np.zeros((1, 4)))
    np.testing.assert_allclose(dw + V.T @ (pv[:, None] * F.hidden_probs(V, w, c)), grads[0], atol=1e-12)


def test_cd_k_approaches_exact_gradient(rng):
    """E[CD-k] is biased for small k; the bias shrinks as k grows (the chain forgets the data)."""
    w, b, c = _tiny(rng, scale=1.5)
    rbm = RBM(6, 4, dtype=np.float64)
    rbm.weight.data[...], rbm.vbias.data[...], rbm.hbias.data[...] = w, b, c
    v = (rng.random((4, 6)) < 0.5).astype(float)
    exact = np.concatenate([g.ravel() for g in _exact(w, b, c, v)])
    reps = np.repeat(v, 5000, axis=0)  # 20,000 chains: Monte-Carlo noise ≈ 0.01
    errs = {}
    for k in (1, 3, 30):
        dw, db, dc, _, _ = rbm.cd_grads(reps, k=k, rng=np.random.default_rng(1))
        errs[k] = np.abs(np.concatenate([dw.ravel(), db.ravel(), dc.ravel()]) - exact).max()
    assert errs[30] < errs[3] < errs[1]
    assert errs[30] < 0.03


@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_ais_converges_to_exact_log_z(rng, scale):
    w, b, c = _tiny(rng, 8, 5, scale=scale)
    data = (rng.random((200, 8)) < 0.5).astype(float)
    exact = F.log_partition_exact(w, b, c)
    est, logw = F.ais_log_partition(w, b, c, base_rate_biases(data), betas=F.ais_betas(quick=True),
                                    n_runs=200, rng=np.random.default_rng(2))
    assert logw.shape == (200,)
    assert est == pytest.approx(exact, abs=0.05)


def test_ais_schedule_is_the_papers():
    betas = F.ais_betas()
    assert betas[0] == 0 and betas[-1] == 1 and np.all(np.diff(betas) > 0)
    assert len(betas) == 500 + 4000 + 10000 + 1  # the paper's 14,500 intermediate distributions
    assert len(F.ais_betas(quick=True)) == 50 + 400 + 1000 + 1


def test_pseudo_likelihood_matches_exact_conditional(rng):
    """D·log p(v_i | v_−i) for the flipped unit, computed by brute force."""
    w, b, c = _tiny(rng)
    v = (rng.random((3, 6)) < 0.5).astype(float)
    pl = F.pseudo_log_likelihood(v, w, b, c, rng=np.random.default_rng(5))
    idx = np.random.default_rng(5).integers(0, 6, size=3)
    for n in range(3):
        f = v[n].copy()
        f[idx[n]] = 1 - f[idx[n]]
        f0, f1 = F.free_energy(v[n:n + 1], w, b, c)[0][0], F.free_energy(f[None], w, b, c)[0][0]
        assert pl[n] == pytest.approx(6 * np.log(np.exp(-f0) / (np.exp(-f0) + np.exp(-f1))))


@pytest.mark.parametrize("persistent", [False, True])
def test_fit_is_deterministic_and_learns(rng, persistent):
    data = binarize(np.random.default_rng(0).random((300, 12)) * np.linspace(0.1, 0.9, 12), rng=1)

    def run():
        r = RBM(12, 6, rng=np.random.default_rng(3))
        h = r.fit(data, epochs=6, batch_size=30, lr=0.1, k=2, persistent=persistent, sparsity_target=0.2,
                  sparsity_cost=0.01, rng=np.random.default_rng(4), disable=True)
        return r, h

    (r1, h1), (r2, _) = run(), run()
    np.testing.assert_array_equal(r1.weight.data, r2.weight.data)
    assert h1[-1]["recon_error"] < h1[0]["recon_error"]
    assert r1.weight.data.dtype == np.float32


def test_gaussian_rbm_trains(rng):
    data = rng.standard_normal((400, 2)).astype(np.float32) @ np.array([[1, 0.9], [0, 0.3]], np.float32)
    r = RBM(2, 8, visible="gaussian", rng=1)
    h = r.fit(data, epochs=8, batch_size=40, lr=0.01, rng=2, disable=True)
    assert h[-1]["recon_error"] < h[0]["recon_error"]
    with pytest.raises(ValueError, match="Bernoulli"):
        r.log_partition_exact()


def test_bernoulli_rbm_rejects_non_binary_data():
    r = RBM(4, 3)
    with pytest.raises(ValueError, match="binary"):
        r.fit(np.full((5, 4), 0.5, np.float32), epochs=1)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        r.fit(np.zeros((5, 3), np.float32), epochs=1)
    with pytest.raises(TypeError, match="float32"):
        r.fit(np.zeros((5, 4)), epochs=1)


def test_log_likelihood_uses_free_energy(rng):
    r = RBM(6, 3, dtype=np.float64, rng=0, init_std=0.5)
    v = (rng.random((7, 6)) < 0.5).astype(float)
    lz = r.log_partition_exact()
    V = _states(6)
    p = np.exp(-r.free_energy(V) - lz)
    assert p.sum() == pytest.approx(1.0)
    assert r.log_likelihood(v, lz, batch_size=3) == pytest.approx(np.log(np.exp(-r.free_energy(v) - lz)).mean())


def test_fit_lr_final_decays_linearly_update_by_update(monkeypatch):
    """lr → lr_final over all updates: with unit gradients, no momentum and no decay, the weights move
    by the sum of the steps (4 updates from 0.1 towards 0: 0.1 + 0.075 + 0.05 + 0.025)."""
    rbm = RBM(3, 2, rng=np.random.default_rng(0))
    ones = (np.ones((3, 2), np.float32), np.ones(3, np.float32), np.ones(2, np.float32))
    monkeypatch.setattr(rbm, "cd_grads", lambda v0, **kw: (*ones, v0, np.zeros((len(v0), 2), np.float32)))
    data = (np.random.default_rng(1).random((4, 3)) < 0.5).astype(np.float32)
    w0 = rbm.weight.data.copy()
    rbm.fit(data, epochs=2, batch_size=2, lr=0.1, lr_final=0.0, momentum=(0.0, 0.0), weight_decay=0.0,
            rng=np.random.default_rng(2), disable=True)
    np.testing.assert_allclose(w0 - rbm.weight.data, 0.25, rtol=1e-6)
    same = [RBM(3, 2, rng=np.random.default_rng(0)) for _ in range(2)]
    for r, extra in zip(same, ({}, {"lr_final": 0.05})):  # lr_final = lr is the constant rate
        r.fit(data, epochs=2, batch_size=2, lr=0.05, rng=np.random.default_rng(3), disable=True, **extra)
    np.testing.assert_array_equal(same[0].weight.data, same[1].weight.data)
