"""DSN: the gradient through the closed-form U, the ridge solve, the paper's form, stacking."""
import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.gradcheck import assert_gradients
from scratchnet.models.dsn import DSN, fit_module_weights, lbfgs_direction


def _problem(rng, N=20, D=6, L=5, C=3):
    x = rng.standard_normal((N, D))
    w = rng.standard_normal((D, L))
    t = np.eye(C)[rng.integers(0, C, N)]
    return x, w, t


@pytest.mark.parametrize("lam", [0.0, 0.1, 3.0])
@pytest.mark.parametrize("N,D,L,C", [(20, 6, 5, 3), (9, 4, 7, 2), (30, 3, 2, 4)])
def test_dsn_module_gradcheck(rng, lam, N, D, L, C):
    """dX, dW through U(W), with random upstream gradients on E, Y and U (all three paths)."""
    if lam == 0.0 and L > N:
        pytest.skip("HᵀH is singular when L > N and λ = 0")
    x, w, t = _problem(rng, N, D, L, C)
    assert_gradients(F.dsn_module, F.dsn_module_backward, [x, w, t], wrt=[0, 1], lam=lam)


@pytest.mark.parametrize("lam", [0.0, 0.5])
def test_dsn_error_only_gradcheck(rng, lam):
    """The chapter's case: only E = ‖Y − T‖² gets a gradient."""
    x, w, t = _problem(rng)

    def fwd(x, w, t, *, lam):
        (e, _, _), cache = F.dsn_module(x, w, t, lam=lam)
        return e, cache

    def bwd(de, cache):
        return F.dsn_module_backward((de, None, None), cache)

    assert_gradients(fwd, bwd, [x, w, t], wrt=[0, 1], lam=lam)


def test_paper_form_at_lambda_zero(rng):
    """Deng, Yu & Platt (2012): ∂E/∂W = 2X[Hᵀ∘(1−H)ᵀ∘Θ], Θ = H†(HTᵀ)(TH†) − Tᵀ(TH†), H† = Hᵀ(HHᵀ)⁻¹,
    in their column layout X (D, N), H (L, N), T (C, N)."""
    x, w, t = _problem(rng, N=25, D=6, L=5, C=3)
    _, cache = F.dsn_module(x, w, t, lam=0.0)
    _, dw = F.dsn_module_backward((1.0, None, None), cache)
    X, T = x.T, t.T
    H = 1 / (1 + np.exp(-(w.T @ X)))  # (L, N)
    Hp = H.T @ np.linalg.inv(H @ H.T)  # (N, L)
    theta = Hp @ (H @ T.T) @ (T @ Hp) - T.T @ (T @ Hp)  # (N, L)
    paper = 2 * X @ (H.T * (1 - H).T * theta)  # (D, L)
    np.testing.assert_allclose(dw, paper, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("lam", [0.0, 0.3, 10.0])
def test_ridge_equals_lstsq_on_augmented_system(rng, lam):
    h = rng.random((30, 8))
    t = rng.standard_normal((30, 3))
    u, _ = F.ridge_solve(h, t, lam=lam)
    a = np.vstack([h, np.sqrt(lam) * np.eye(8)])  # [H; √λ I] U = [T; 0]
    want = np.linalg.lstsq(a, np.vstack([t, np.zeros((8, 3))]), rcond=None)[0]
    np.testing.assert_allclose(u, want, rtol=1e-8, atol=1e-10)


def test_ridge_solve_lives_in_linalg_and_stays_importable_as_F(rng):
    """The ridge solve is a utility of its own (scratchnet.linalg); F.ridge_solve is the same function."""
    from scratchnet.linalg import ridge_solve
    assert F.ridge_solve is ridge_solve
    h, t = rng.random((10, 4)), rng.standard_normal((10, 2))
    u, g = ridge_solve(h, t, lam=0.5)
    assert u.shape == (4, 2) and g.shape == (4, 4)
    np.testing.assert_allclose(g, h.T @ h + 0.5 * np.eye(4), rtol=1e-12)
    np.testing.assert_allclose(g @ u, h.T @ t, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="ridge_solve: .*one target row"):
        ridge_solve(h, t[:-1], lam=0.5)
    with pytest.raises(ValueError, match=r"ridge_solve: lam must be ≥ 0"):
        ridge_solve(h, t, lam=-1.0)
    with pytest.raises(TypeError, match="ridge_solve: all float inputs must share"):
        ridge_solve(h, t.astype(np.float32), lam=0.5)


def test_dsn_module_errors(rng):
    x, w, t = _problem(rng)
    with pytest.raises(ValueError, match="dsn_module"):
        F.dsn_module(x, w[:-1], t, lam=0.1)
    with pytest.raises(ValueError, match="one target row"):
        F.dsn_module(x, w, t[:-1], lam=0.1)
    with pytest.raises(TypeError, match="dtype"):
        F.dsn_module(x, w.astype(np.float32), t, lam=0.1)
    dsn = DSN(6, 3, n_hidden=4)
    with pytest.raises(ValueError, match=r"t of shape \(20, 3\)"):
        dsn.add_module(x.astype(np.float32), t[:, :2].astype(np.float32))
    with pytest.raises(RuntimeError, match="no modules"):
        dsn(x)


def _blobs(seed, n=200, d=10, c=3):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    x = (rng.standard_normal((c, d))[y] + 0.8 * rng.standard_normal((n, d))).astype(np.float32)
    return x, np.eye(c, dtype=np.float32)[y], y


def test_gradient_steps_decrease_error_and_stacking_helps():
    x, t, y = _blobs(0)
    dsn = DSN(10, 3, n_hidden=20, lam=0.1)
    errs = [dsn.add_module(x, t, steps=8, rng=np.random.default_rng(k)) for k in range(3)]
    assert all(e[-1] < e[0] for e in errs)
    assert errs[2][-1] < errs[0][-1]  # upper modules fit better: they also see the lower outputs
    outs = dsn.predict_all(x)
    assert len(outs) == 3 and outs[-1].shape == (200, 3)
    np.testing.assert_allclose(outs[-1], dsn(x), rtol=1e-5)


def test_deterministic_with_fixed_rng():
    x, t, _ = _blobs(1)
    a, b = DSN(10, 3, n_hidden=15), DSN(10, 3, n_hidden=15)
    for k in range(2):
        a.add_module(x, t, steps=3, rng=np.random.default_rng(k))
        b.add_module(x, t, steps=3, rng=np.random.default_rng(k))
    np.testing.assert_array_equal(a(x), b(x))


def test_overfits_one_batch():
    x, t, y = _blobs(2, n=32)
    w0 = np.random.default_rng(0).standard_normal((11, 24)).astype(np.float32) * 0.3
    xb = np.concatenate([x, np.ones((32, 1), np.float32)], 1)
    w, errs = fit_module_weights(xb, t, w0, lam=1e-3, steps=60)
    assert errs[-1] < 0.05 * errs[0]
    (_, yhat, _), _ = F.dsn_module(xb, w, t, lam=1e-3)
    assert (yhat.argmax(1) == y).all()


def test_line_search_doubles_only_after_a_first_trial_success(monkeypatch):
    """Each step's first trial is the last accepted step, twice it when that one passed at once; every
    trial costs one forward, so the forwards counted equal those the accepted steps imply."""
    x, t, _ = _blobs(3, n=64)
    w0 = np.random.default_rng(1).standard_normal((11, 16)).astype(np.float32) * 0.3
    xb = np.concatenate([x, np.ones((64, 1), np.float32)], 1)
    forwards, accepted, real = [0], [], F.dsn_module

    def counting(*args, **kwargs):
        forwards[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(F, "dsn_module", counting)
    _, errs = fit_module_weights(xb, t, w0, lam=0.1, steps=25, lr0=64.0,
                                 log=lambda k, e, lr: accepted.append(lr))
    assert len(accepted) == 25 and all(np.diff(errs) < 0)
    expected, trial, firsts = 1, 64.0, 0  # one forward at w0; the first trial step is lr0
    for lr in accepted:
        halvings = round(np.log2(trial / lr))
        assert halvings >= 0 and trial / 2.0 ** halvings == lr
        expected += halvings + 1  # the rejected trials and the accepted one
        firsts += halvings == 0
        trial = 2.0 * lr if halvings == 0 else lr  # what the next step tries first
    assert forwards[0] == expected
    assert 0 < firsts < 25  # both branches of the rule ran


def test_lbfgs_direction_is_the_inverse_hessian_on_a_quadratic(rng):
    """On e = ½ wᵀAw with pairs (s, As) the two-loop recursion is the BFGS inverse Hessian: it
    satisfies the secant equation B y = s for the newest pair, and after n A-conjugate steps (as exact
    line searches on a quadratic produce) it is exactly A⁻¹, so the direction is the Newton step."""
    n = 5
    m = rng.standard_normal((n, n))
    a = m @ m.T + n * np.eye(n)  # symmetric positive definite
    pairs = [(s, a @ s) for s in np.linalg.eigh(a)[1].T * rng.uniform(0.5, 2.0, (n, 1))]  # A-conjugate
    s_new, y_new = pairs[-1]
    np.testing.assert_allclose(lbfgs_direction(y_new, pairs), s_new, rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(n)
    np.testing.assert_allclose(lbfgs_direction(g, pairs), np.linalg.solve(a, g), rtol=1e-8, atol=1e-10)
    one = pairs[-1:]  # a single pair: B = B₀ plus the rank-two correction; still a descent direction
    assert float(g @ lbfgs_direction(g, one)) > 0


def test_lbfgs_fit_decreases_error_faster_than_gradient_descent():
    x, t, _ = _blobs(4, n=128)
    w0 = np.random.default_rng(2).standard_normal((11, 16)).astype(np.float64) * 0.3
    xb = np.concatenate([x, np.ones((128, 1), np.float32)], 1).astype(np.float64)
    t = t.astype(np.float64)
    _, e_gd = fit_module_weights(xb, t, w0, lam=0.1, steps=20)
    _, e_lb = fit_module_weights(xb, t, w0, lam=0.1, steps=20, method="lbfgs", memory=5)
    assert all(np.diff(e_lb) < 0)  # the line search keeps every step a descent
    assert e_lb[1] == e_gd[1]  # the first step is the same gradient step
    assert e_lb[-1] < 0.5 * e_gd[-1]
    dsn = DSN(10, 3, n_hidden=16, lam=0.1, dtype=np.float64)
    errs = dsn.add_module(x.astype(np.float64), t, steps=5, method="lbfgs", rng=np.random.default_rng(0))
    assert len(errs) == 6 and errs[-1] < errs[0]
    with pytest.raises(ValueError, match="method must be 'gd' or 'lbfgs'"):
        fit_module_weights(xb, t, w0, lam=0.1, steps=1, method="newton")
    with pytest.raises(ValueError, match="memory must be a positive int"):
        fit_module_weights(xb, t, w0, lam=0.1, steps=1, method="lbfgs", memory=0)  # [-0:] would keep all


def test_lbfgs_restarts_from_the_gradient_when_its_direction_is_not_a_descent(monkeypatch):
    """If rounding made B's direction point uphill, the step falls back to the gradient (and the first
    step's size rule): the fit still descends at every step."""
    import scratchnet.models.dsn as D
    x, t, _ = _blobs(5, n=64)
    w0 = np.random.default_rng(3).standard_normal((11, 16)) * 0.3
    xb = np.concatenate([x, np.ones((64, 1), np.float32)], 1).astype(np.float64)
    monkeypatch.setattr(D, "lbfgs_direction", lambda g, pairs: -g)  # d = +∇e: an ascent direction
    _, errs = fit_module_weights(xb, t.astype(np.float64), w0, lam=0.1, steps=6, method="lbfgs")
    assert len(errs) == 7 and all(np.diff(errs) < 0)


def test_backward_without_dx_gives_the_same_dw(rng):
    x, w, t = _problem(rng)
    _, cache = F.dsn_module(x, w, t, lam=0.5)
    dx, dw = F.dsn_module_backward((1.0, None, None), cache)
    none, dw2 = F.dsn_module_backward((1.0, None, None), cache, need_dx=False)
    assert none is None and dx.shape == x.shape
    np.testing.assert_array_equal(dw, dw2)


def test_init_from_rbm_fills_the_raw_input_and_bias_rows():
    from scratchnet.models.rbm import RBM
    x, t, _ = _blobs(3)
    rbm = RBM(10, 12, rng=np.random.default_rng(0))
    rbm.hbias.data[:] = np.linspace(-1, 1, 12, dtype=np.float32)
    dsn = DSN(10, 3, n_hidden=12, lam=0.1)
    dsn.add_module(x, t, steps=0, init_from=rbm, rng=np.random.default_rng(0))
    dsn.add_module(x, t, steps=0, init_from=rbm, rng=np.random.default_rng(1))
    for block in dsn.blocks:  # steps=0: W is the initial W
        np.testing.assert_array_equal(block.weight.data[:10], rbm.weight.data)
        np.testing.assert_array_equal(block.weight.data[-1], rbm.hbias.data)
    assert dsn.blocks[1].weight.data.shape == (10 + 3 + 1, 12)  # the rows of module 1's outputs: random
    assert np.abs(dsn.blocks[1].weight.data[10:13]).max() > 0
    with pytest.raises(ValueError, match=r"init_from needs weights of shape \(10, 12\)"):
        dsn.add_module(x, t, steps=0, init_from=RBM(10, 5))


@pytest.mark.parametrize("rows", [1, 4, 7])
def test_row_blocks_give_the_same_numbers_and_gradcheck(rng, monkeypatch, rows):
    """Forward and backward in blocks of ``rows`` rows (a ragged last block when rows ∤ N) equal the
    one-block result, and the blocked backward passes gradcheck."""
    from scratchnet.functional import energy
    x, w, t = _problem(rng, 9, 5, 4, 3)
    dout = (0.7, rng.standard_normal((9, 3)), rng.standard_normal((4, 3)))
    got = {}
    for block in (rows, 1 << 20):
        monkeypatch.setattr(energy, "DSN_ROWS", block)
        out, cache = F.dsn_module(x, w, t, lam=0.5)
        got[block] = out + F.dsn_module_backward(dout, cache)
        assert F.dsn_hidden(x, w).shape == (9, 4)
    for a, b in zip(got[rows], got[1 << 20]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    monkeypatch.setattr(energy, "DSN_ROWS", rows)
    assert_gradients(F.dsn_module, F.dsn_module_backward, [x, w, t], wrt=[0, 1], lam=0.5)
