"""CTC loss: gradchecks, brute-force enumeration of alignments, kernels vs reference, PyTorch parity."""
import itertools

import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.decode import ctc_collapse
from scratchnet.gradcheck import assert_gradients


def _log_softmax(x):
    z = x - x.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _problem(rng, N, T, C, S, *, blank=0, dtype=np.float64, repeat=False):
    lp = _log_softmax(rng.standard_normal((N, T, C))).astype(dtype)  # (N, T, C)
    labels = [c for c in range(C) if c != blank]
    targets = rng.choice(labels, size=(N, S))  # (N, S)
    if repeat and S >= 2:
        targets[:, 1] = targets[:, 0]
    target_lengths = rng.integers(0, S + 1, size=N)
    target_lengths[0] = S
    # input long enough for the target and its repeats
    need = target_lengths + np.array([sum(targets[n, i] == targets[n, i - 1] for i in range(1, target_lengths[n]))
                                      for n in range(N)])
    input_lengths = np.maximum(need, rng.integers(1, T + 1, size=N))
    input_lengths[0] = T
    return lp, targets, input_lengths, target_lengths


def _brute_force(lp, target, blank):
    """−log p and its gradient wrt lp (T, C) by enumerating every path π with B(π) = target."""
    T, C = lp.shape
    p, grad = 0.0, np.zeros((T, C))
    for path in itertools.product(range(C), repeat=T):  # every one of C^T paths
        if ctc_collapse(path, blank=blank) == list(target):
            prob = np.exp(sum(lp[t, k] for t, k in enumerate(path)))
            p += prob
            for t, k in enumerate(path):
                grad[t, k] += prob
    return -np.log(p) if p > 0 else np.inf, -grad / p if p > 0 else grad


@pytest.fixture(params=["jit", "reference"])
def jit_mode(request, monkeypatch):
    monkeypatch.setenv("SCRATCHNET_JIT", "1" if request.param == "jit" else "0")
    return request.param


@pytest.mark.parametrize("target,blank", [([1, 2], 0), ([1, 1], 0), ([2, 1, 2], 0), ([0, 0], 2), ([], 0), ([2], 1)])
def test_brute_force_loss_and_gradient(jit_mode, rng, target, blank):
    T, C = 5, 3
    lp = _log_softmax(rng.standard_normal((1, T, C)))
    tg = np.array([target or [1]], dtype=np.int64)  # (1, S); an empty target is padding only
    tl = np.array([len(target)])
    loss, cache = F.ctc_loss(lp, tg, np.array([T]), tl, blank=blank, reduction="sum")
    dlp = F.ctc_loss_backward(1.0, cache)
    want_loss, want_grad = _brute_force(lp[0], target, blank)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-10)
    np.testing.assert_allclose(dlp[0], want_grad, atol=1e-12)


def test_brute_force_batch_with_lengths(rng):
    lp, tg, il, tl = _problem(rng, 3, 5, 3, 2)
    loss, cache = F.ctc_loss(lp, tg, il, tl, reduction="none")
    dlp = F.ctc_loss_backward(np.ones(3), cache)
    for n in range(3):  # each sequence on its own, only its first il frames
        want_loss, want_grad = _brute_force(lp[n, :il[n]], tg[n, :tl[n]], 0)
        np.testing.assert_allclose(loss[n], want_loss, rtol=1e-10)
        np.testing.assert_allclose(dlp[n, :il[n]], want_grad, atol=1e-12)
        assert np.all(dlp[n, il[n]:] == 0)


@pytest.mark.parametrize("N,T,C,S,blank", [(3, 6, 4, 3, 0), (2, 7, 5, 3, 4), (4, 5, 3, 1, 1)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradcheck(jit_mode, rng, N, T, C, S, blank, reduction):
    lp, tg, il, tl = _problem(rng, N, T, C, S, blank=blank, repeat=True)
    # the loss is a function of free log-probabilities: perturb them off the simplex too
    lp = lp + 0.1 * rng.standard_normal(lp.shape)
    assert_gradients(F.ctc_loss, F.ctc_loss_backward, [lp, tg, il, tl], wrt=[0], blank=blank, reduction=reduction)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradcheck_zero_infinity(jit_mode, rng, reduction):
    lp = _log_softmax(rng.standard_normal((3, 4, 4)))
    tg = np.array([[1, 2, 3, 1], [1, 1, 2, 0], [2, 3, 0, 0]])
    il = np.array([4, 3, 4])  # sequence 1 needs 4 frames for "1 _ 1 2": impossible in 3
    tl = np.array([3, 3, 2])
    loss, _ = F.ctc_loss(lp, tg, il, tl, reduction="none", zero_infinity=True)
    assert loss[1] == 0 and np.isfinite(loss).all()
    assert_gradients(F.ctc_loss, F.ctc_loss_backward, [lp, tg, il, tl], wrt=[0], reduction=reduction,
                     zero_infinity=True)


def test_repeated_labels_need_a_blank(jit_mode):
    lp = np.log(np.full((1, 2, 3), 1 / 3))
    one = np.array([2])
    loss, _ = F.ctc_loss(lp, np.array([[1, 1]]), one, one * 1, reduction="none")  # "a a" in 2 frames
    assert loss[0] == np.inf
    loss, _ = F.ctc_loss(lp, np.array([[1, 2]]), one, one * 1, reduction="none")  # "a b" in 2 frames: ok
    np.testing.assert_allclose(loss[0], -np.log(1 / 9))
    lp3 = np.log(np.full((1, 3, 3), 1 / 3))
    loss, _ = F.ctc_loss(lp3, np.array([[1, 1]]), np.array([3]), np.array([2]), reduction="none")  # a _ a
    np.testing.assert_allclose(loss[0], -np.log(1 / 27))


def test_targets_of_width_zero(jit_mode):
    """Every target empty and padded to width 0 (L = 1): −log Π_t y_t(blank), on both routes."""
    lp = np.log(np.full((2, 3, 4), 0.25))
    loss, cache = F.ctc_loss(lp, np.zeros((2, 0), dtype=np.int64), np.array([3, 2]), np.array([0, 0]),
                             reduction="none")
    np.testing.assert_allclose(loss, [3 * np.log(4), 2 * np.log(4)])
    dlp = F.ctc_loss_backward(np.ones(2), cache)
    np.testing.assert_allclose(dlp[:, :, 0], [[-1, -1, -1], [-1, -1, 0]])
    assert not dlp[:, :, 1:].any()


def test_impossible_alignments(jit_mode, rng):
    lp = _log_softmax(rng.standard_normal((2, 3, 4)))
    tg = np.array([[1, 2, 3, 1], [1, 2, 0, 0]])
    il, tl = np.array([3, 3]), np.array([4, 2])  # 4 labels cannot fit in 3 frames
    loss, cache = F.ctc_loss(lp, tg, il, tl, reduction="none")
    assert loss[0] == np.inf and np.isfinite(loss[1])
    dlp = F.ctc_loss_backward(np.ones(2), cache)
    assert np.all(dlp[0] == 0) and np.isfinite(dlp).all()
    mean, _ = F.ctc_loss(lp, tg, il, tl)
    assert mean == np.inf
    mean, cache = F.ctc_loss(lp, tg, il, tl, zero_infinity=True)
    np.testing.assert_allclose(mean, loss[1] / 2 / 2)
    dlp = F.ctc_loss_backward(1.0, cache)
    assert np.all(dlp[0] == 0) and np.abs(dlp[1]).sum() > 0


def test_extreme_inputs_stay_finite(jit_mode):
    lp = np.full((1, 6, 3), -1e4)
    lp[0, :, 0] = 0.0  # the blank is certain, the labels nearly impossible
    loss, cache = F.ctc_loss(lp, np.array([[1, 2]]), np.array([6]), np.array([2]), reduction="sum")
    dlp = F.ctc_loss_backward(1.0, cache)
    assert np.isfinite(loss) and 1e4 < loss < 3e4 and np.isfinite(dlp).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_matches_reference(monkeypatch, rng, dtype):
    lp, tg, il, tl = _problem(rng, 5, 9, 5, 4, repeat=True)
    lp = lp.astype(dtype)
    out = {}
    for mode in ("1", "0"):
        monkeypatch.setenv("SCRATCHNET_JIT", mode)
        loss, cache = F.ctc_loss(lp, tg, il, tl, reduction="none")
        dlp = F.ctc_loss_backward(np.linspace(0.5, 1.5, 5).astype(dtype), cache)
        alpha, beta, logp, ext = F.ctc_lattice(lp, tg, il, tl, jit=mode == "1")
        out[mode] = (loss, dlp, alpha, beta, logp)
        assert loss.dtype == dtype and dlp.dtype == dtype
    for a, b in zip(out["1"], out["0"]):
        tol = 1e-12 if dtype == np.float64 else 1e-5
        assert np.array_equal(np.isinf(a), np.isinf(b))
        np.testing.assert_allclose(np.where(np.isinf(a), 0, a), np.where(np.isinf(b), 0, b), rtol=tol, atol=tol)


@pytest.mark.parametrize("threshold", [0, 1 << 40])  # every lattice parallel / every lattice serial
def test_parallel_and_serial_kernels_agree(monkeypatch, rng, threshold):
    import scratchnet.kernels.ctc as ctc_route
    lp, tg, il, tl = _problem(rng, 6, 12, 5, 4, repeat=True)
    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    monkeypatch.setattr(ctc_route, "CTC_PARALLEL_MIN", threshold)
    loss, cache = F.ctc_loss(lp, tg, il, tl, reduction="none")
    dlp = F.ctc_loss_backward(np.ones(6), cache)
    monkeypatch.setenv("SCRATCHNET_JIT", "0")
    ref_loss, ref_cache = F.ctc_loss(lp, tg, il, tl, reduction="none")
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
    np.testing.assert_allclose(dlp, F.ctc_loss_backward(np.ones(6), ref_cache), rtol=1e-12, atol=1e-14)


def test_loss_lattice_keeps_the_band(monkeypatch, rng):
    """The loss's α (trimmed kernel) equals the full lattice on every cell that can still reach the end,
    and is −inf below that band (cells no complete path passes)."""
    lp, tg, il, tl = _problem(rng, 4, 11, 5, 4, repeat=True)
    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    _, cache = F.ctc_loss(lp, tg, il, tl, reduction="none")
    alpha = F.ctc_lattice(lp, tg, il, tl)[0]
    T, L = alpha.shape[1:]
    for n in range(4):
        Ln = 2 * tl[n] + 1
        band = np.arange(L)[None, :] >= Ln - 2 * (il[n] - np.arange(T)[:, None])  # (T, L)
        np.testing.assert_array_equal(np.where(band, alpha[n], -np.inf), cache.alpha[n])


def test_lattice_identity(rng):
    """Σ_s α_t(s) β_t(s) / y_t(l'_s) = p for every frame t (every path passes some state at t)."""
    lp, tg, il, tl = _problem(rng, 2, 7, 4, 3)
    alpha, beta, logp, ext = F.ctc_lattice(lp, tg, il, tl)
    for n in range(2):
        lp_ext = lp[n][:, ext[n]]  # (T, L)
        with np.errstate(invalid="ignore"):
            per_t = np.logaddexp.reduce(alpha[n] + beta[n] - lp_ext, axis=1)[:il[n]]
        np.testing.assert_allclose(per_t, logp[n], rtol=1e-10)


def test_clear_errors(rng):
    lp, tg, il, tl = _problem(rng, 2, 5, 4, 2)
    with pytest.raises(ValueError, match="input_lengths"):
        F.ctc_loss(lp, tg, np.array([6, 5]), tl)
    with pytest.raises(ValueError, match="target_lengths"):
        F.ctc_loss(lp, tg, il, np.array([3, 1]))
    with pytest.raises(ValueError, match="blank"):
        F.ctc_loss(lp, np.array([[1, 0], [1, 2]]), il, np.array([2, 2]))
    F.ctc_loss(lp, np.array([[1, 0], [1, 2]]), il, np.array([1, 2]))  # padding may hold the blank
    with pytest.raises(ValueError, match="3-D"):
        F.ctc_loss(lp[0], tg, il, tl)
    with pytest.raises(ValueError, match="2-D"):
        F.ctc_loss(lp, tg[0], il, tl)
    with pytest.raises(TypeError, match="integer"):
        F.ctc_loss(lp, tg.astype(float), il, tl)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        F.ctc_loss(lp, np.array([[1, 7], [1, 2]]), il, np.array([2, 2]))
    with pytest.raises(ValueError, match="reduction"):
        F.ctc_loss(lp, tg, il, tl, reduction="avg")


def test_cupy_matches_numpy(xp, rng):
    lp, tg, il, tl = _problem(rng, 3, 6, 4, 2)
    loss, cache = F.ctc_loss(xp.asarray(lp), xp.asarray(tg), xp.asarray(il), xp.asarray(tl), reduction="sum")
    dlp = F.ctc_loss_backward(1.0, cache)
    ref_loss, ref_cache = F.ctc_loss(lp, tg, il, tl, reduction="sum")
    np.testing.assert_allclose(float(loss), ref_loss, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(dlp.get() if hasattr(dlp, "get") else dlp),
                               F.ctc_loss_backward(1.0, ref_cache), atol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("zero_infinity", [False, True])
def test_torch_parity(rng, reduction, zero_infinity):
    torch = pytest.importorskip("torch")
    N, T, C, S = 4, 12, 6, 5
    logits = rng.standard_normal((N, T, C))
    targets = rng.integers(1, C, size=(N, S))
    targets[0, 1] = targets[0, 0]
    il, tl = np.array([12, 10, 7, 3]), np.array([5, 4, 0, 3])
    if zero_infinity:
        tl[3], targets[3, :3] = 3, [1, 1, 2]  # impossible in 3 frames
    lp, ls_cache = F.log_softmax(logits)
    loss, cache = F.ctc_loss(lp, targets, il, tl, reduction=reduction, zero_infinity=zero_infinity)
    g = np.linspace(0.5, 1.5, N) if reduction == "none" else 1.0
    dlogits = F.log_softmax_backward(F.ctc_loss_backward(g, cache), ls_cache)

    x = torch.tensor(logits, requires_grad=True)
    lpt = torch.log_softmax(x, -1).transpose(0, 1)  # PyTorch wants (T, N, C)
    tloss = torch.nn.functional.ctc_loss(lpt, torch.tensor(targets), torch.tensor(il), torch.tensor(tl),
                                         reduction=reduction, zero_infinity=zero_infinity)
    (tloss * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(loss, tloss.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(dlogits, x.grad.numpy(), atol=1e-10)


def test_ctc_loss_module(rng):
    from scratchnet import nn
    lp, tg, il, tl = _problem(rng, 3, 6, 4, 2)
    crit = nn.CTCLoss(reduction="sum")
    loss = crit(lp, tg, il, tl)
    want, cache = F.ctc_loss(lp, tg, il, tl, reduction="sum")
    np.testing.assert_allclose(loss, want)
    np.testing.assert_allclose(crit.backward(2.0), F.ctc_loss_backward(2.0, cache))
    with pytest.raises(RuntimeError):
        crit.backward()


# -- NaN in → NaN out, and float16 ------------------------------------------------------------------
NAN_AT = {"blank": (1, 1, 0), "label": (1, 2, 3), "frame": (1, 2, slice(None)), "padding": (1, 5, 1)}


def _nan_problem(rng, where):
    """Three sequences; sequence 1 (input length 4 of 6 frames) gets a NaN at ``NAN_AT[where]``: its
    blank, one of its labels, a whole frame (a NaN logit through log_softmax), or a padding frame."""
    lp = _log_softmax(rng.standard_normal((3, 6, 5)))
    lp[NAN_AT[where]] = np.nan
    return lp, np.array([[1, 2], [1, 3], [2, 3]]), np.array([6, 4, 6]), np.array([2, 2, 2])


@pytest.mark.parametrize("where", list(NAN_AT))
@pytest.mark.parametrize("zero_infinity", [False, True])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_nan_in_nan_out(monkeypatch, rng, where, zero_infinity, reduction):
    """A NaN the sequence reads gives it a NaN loss (zero_infinity zeros only +inf) and a NaN gradient
    on its frames, zero past its length; the Numba kernels and the reference agree, and PyTorch too."""
    lp, tg, il, tl = _nan_problem(rng, where)
    g = np.linspace(0.5, 1.5, 3) if reduction == "none" else 1.0
    out = {}
    for mode in ("1", "0"):
        monkeypatch.setenv("SCRATCHNET_JIT", mode)
        loss, cache = F.ctc_loss(lp, tg, il, tl, reduction=reduction, zero_infinity=zero_infinity)
        out[mode] = (np.asarray(loss), F.ctc_loss_backward(g, cache))
    (loss, dlp), (ref_loss, ref_dlp) = out["1"], out["0"]
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)  # NaN where the other is NaN
    np.testing.assert_allclose(dlp, ref_dlp, rtol=1e-12, atol=1e-14)
    nan_seq = where != "padding"
    assert np.isnan(loss).any() == nan_seq
    if reduction == "none":
        assert np.isnan(loss[1]) == nan_seq and np.isfinite(loss[[0, 2]]).all()
    assert np.isnan(dlp[1, :4]).all() == nan_seq and np.isfinite(dlp[[0, 2]]).all()
    assert np.all(dlp[1, 4:] == 0) and (nan_seq or np.isfinite(dlp).all())
    torch = pytest.importorskip("torch")
    t_lp = torch.tensor(lp.transpose(1, 0, 2).copy(), requires_grad=True)  # (T, N, C)
    t_loss = torch.nn.functional.ctc_loss(t_lp, torch.tensor(tg), torch.tensor(il), torch.tensor(tl),
                                          reduction=reduction, zero_infinity=zero_infinity)
    (t_loss * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(loss, t_loss.detach().numpy(), rtol=1e-10)
    np.testing.assert_array_equal(np.isnan(dlp), np.isnan(t_lp.grad.numpy().transpose(1, 0, 2)))


def test_nan_in_a_class_the_target_never_uses_is_nan_too(monkeypatch, rng):
    """The rule is per sequence and frame, whatever the class: a NaN in the frames t < T_n of sequence n
    makes its loss NaN (PyTorch's lattice never reads class 4 here and leaves the loss finite)."""
    lp, tg, il, tl = _nan_problem(rng, "blank")
    lp[1, 1, 0] = lp[0, 1, 0]
    lp[1, 1, 4] = np.nan
    for mode in ("1", "0"):
        monkeypatch.setenv("SCRATCHNET_JIT", mode)
        loss, cache = F.ctc_loss(lp, tg, il, tl, reduction="none")
        dlp = F.ctc_loss_backward(np.ones(3), cache)
        assert np.isnan(loss[1]) and np.isfinite(loss[[0, 2]]).all()
        assert np.isnan(dlp[1, :4]).all() and np.all(dlp[1, 4:] == 0)


def test_nan_lattice(monkeypatch, rng):
    lp, tg, il, tl = _nan_problem(rng, "label")
    for jit in (True, False):
        monkeypatch.setenv("SCRATCHNET_JIT", "1" if jit else "0")
        logp = F.ctc_lattice(lp, tg, il, tl, jit=jit)[2]
        assert np.isnan(logp[1]) and np.isfinite(logp[[0, 2]]).all()


@pytest.mark.parametrize("jit", ["1", "0"])
def test_float16_takes_the_reference_and_keeps_its_dtype(monkeypatch, rng, jit):
    """float16 has no Numba kernel: the route runs the vectorised reference, in float16."""
    monkeypatch.setenv("SCRATCHNET_JIT", jit)
    lp, tg, il, tl = _problem(rng, 3, 6, 4, 2, repeat=True)
    loss, cache = F.ctc_loss(lp.astype(np.float16), tg, il, tl, reduction="none")
    dlp = F.ctc_loss_backward(np.ones(3, np.float16), cache)
    assert loss.dtype == np.float16 and dlp.dtype == np.float16
    ref_loss, ref_cache = F.ctc_loss(lp, tg, il, tl, reduction="none")
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-2)
    np.testing.assert_allclose(dlp, F.ctc_loss_backward(np.ones(3), ref_cache), atol=1e-2)
    alpha, beta, logp, _ = F.ctc_lattice(lp.astype(np.float16), tg, il, tl)
    assert alpha.dtype == beta.dtype == logp.dtype == np.float16
    mean, cache = F.ctc_loss(lp.astype(np.float16), tg, il, tl)
    assert F.ctc_loss_backward(1.0, cache).dtype == np.float16
