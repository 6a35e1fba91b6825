"""Softmax cross-entropy Numba kernels (scratchnet/kernels/loss.py) against the vectorised reference.

Every option that changes the math (reduction, label_smoothing, ignore_index), float32 and float64,
(N, K) and (N, T, K) logits, odd sizes, N = 1, blocks of rows, non-finite logits, and the public
functional results unchanged.
"""
import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.functional.loss import _cross_entropy_ref
from scratchnet.kernels import loss as KL
from scratchnet.kernels import loss_loops as L

TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}
SHAPES = [(1, 1), (1, 5), (3, 2), (7, 13), (64, 10), (50, 333), (9, 4100), (4, 9, 33), (1, 6, 7)]


def _inputs(rng, shape, dtype, ignore_index=-100):
    logits = (rng.standard_normal(shape) * 3.0).astype(dtype)
    target = rng.integers(0, shape[-1], shape[:-1])
    target.flat[::4] = ignore_index  # some positions do not count
    return logits, target


def _run(logits, target, dloss, **opts):
    loss, cache = F.cross_entropy(logits, target, **opts)
    return dict(loss=np.asarray(loss), logp=cache.logp, dlogits=F.cross_entropy_backward(dloss, cache))


def _routes(monkeypatch, *args, **opts):
    """The same call through the fused loops (every size) and through the reference."""
    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    monkeypatch.setattr(KL, "MIN_SIZE", 0)
    fused = _run(*args, **opts)
    monkeypatch.setenv("SCRATCHNET_JIT", "0")
    return fused, _run(*args, **opts)


def _assert_same(fused, ref, dtype):
    for name, want in ref.items():
        got = fused[name]
        assert got.dtype == want.dtype and got.shape == want.shape, name
        np.testing.assert_allclose(got, want, err_msg=name, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 1.0])
def test_fused_cross_entropy_matches_reference(shape, dtype, reduction, smoothing, rng, monkeypatch):
    logits, target = _inputs(rng, shape, dtype)
    dloss = rng.standard_normal(shape[:-1]).astype(dtype) if reduction == "none" else 0.7
    fused, ref = _routes(monkeypatch, logits, target, dloss, reduction=reduction, label_smoothing=smoothing)
    _assert_same(fused, ref, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_options_ignore_index_and_scalar_kinds(dtype, rng, monkeypatch):
    """A custom ignore_index (a real class), every position ignored, int32 targets, NumPy scalar dloss."""
    logits, target = _inputs(rng, (20, 7), dtype, ignore_index=3)
    for tgt, dloss in ((target, dtype(1.5)), (np.full(20, 3), 1.0), (target.astype(np.int32), np.asarray(2.0, dtype))):
        fused, ref = _routes(monkeypatch, logits, tgt, dloss, ignore_index=3, label_smoothing=0.2)
        _assert_same(fused, ref, dtype)


def test_non_finite_logits_follow_the_reference(rng, monkeypatch):
    """NaN and +inf give the reference's NaN; −inf logits give log p = −inf and a zero gradient."""
    logits = rng.standard_normal((5, 40)).astype(np.float32)
    logits[0, 3], logits[1, 5], logits[2, 7], logits[3, :] = np.nan, np.inf, -np.inf, -np.inf
    target = np.array([1, 2, 3, 4, 5])
    with np.errstate(invalid="ignore"):
        fused, ref = _routes(monkeypatch, logits, target, np.ones(5, np.float32), reduction="none")
    for name in ref:
        np.testing.assert_allclose(fused[name], ref[name], rtol=1e-5, atol=1e-6, equal_nan=True, err_msg=name)
    assert fused["logp"][2, 7] == -np.inf and np.isnan(fused["loss"][:2]).all() and np.isnan(fused["loss"][3])


def test_large_logits_are_stable(monkeypatch):
    logits = np.array([[1000.0, -1000.0, 0.0], [88.5, 88.0, -88.0]], dtype=np.float32)
    fused, ref = _routes(monkeypatch, logits, np.array([1, 2]), 1.0)
    assert np.isfinite(fused["loss"]) and np.isfinite(fused["dlogits"]).all()
    _assert_same(fused, ref, np.float32)


def test_exp_float32_is_within_two_ulps():
    x = np.linspace(-87.0, 88.0, 200_001, dtype=np.float32)
    out, bits = np.empty_like(x), np.empty(x.size, np.int32)
    L.exp_float32(x, out, bits)
    want = np.exp(x.astype(np.float64))
    assert (np.abs(out - want) / want).max() < 2.5e-7  # float32's ulp is 6e-8 to 1.2e-7 of the value


def test_route_takes_the_loops_for_numpy_and_falls_back_otherwise(rng, monkeypatch):
    logits, target = _inputs(rng, (64, 100), np.float32)
    valid = target != -100
    t = np.where(valid, target, 0)
    calls = []

    def reference(*args):
        calls.append(1)
        return _cross_entropy_ref(*args)

    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    KL.cross_entropy(logits, t, valid, 0.0, reference=reference)
    assert not calls  # big enough: the loop
    KL.cross_entropy(logits[:2, :3], t[:2] % 3, valid[:2], 0.0, reference=reference)
    KL.cross_entropy(logits.astype(np.float16), t, valid, 0.0, reference=reference)
    assert len(calls) == 2  # small, and float16: the reference


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_public_results_unchanged(reduction, rng, monkeypatch):
    """Default thresholds: the public pair gives the reference's numbers (here through the loop)."""
    logits, target = _inputs(rng, (16, 8, 50), np.float32)
    assert logits.size >= KL.MIN_SIZE
    dloss = rng.standard_normal((16, 8)).astype(np.float32) if reduction == "none" else 1.0
    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    fast = _run(logits, target, dloss, reduction=reduction, label_smoothing=0.05)
    monkeypatch.setenv("SCRATCHNET_JIT", "0")
    _assert_same(fast, _run(logits, target, dloss, reduction=reduction, label_smoothing=0.05), np.float32)


def test_fused_backward_checks_dloss_first(rng, monkeypatch):
    monkeypatch.setattr(KL, "MIN_SIZE", 0)
    logits, target = _inputs(rng, (6, 5), np.float32)
    _, cache = F.cross_entropy(logits, target, reduction="none")
    with pytest.raises(ValueError, match="cross_entropy_backward"):
        F.cross_entropy_backward(np.ones(5, np.float32), cache)
    _, cache = F.cross_entropy(logits, target)
    with pytest.raises(ValueError, match="cross_entropy_backward"):
        F.cross_entropy_backward(np.ones(6, np.float32), cache)


def test_backward_keeps_its_name_and_reference():
    """The public backward wraps the readable one the chapter shows (same name, docstring, module)."""
    import inspect
    assert F.cross_entropy_backward.__name__ == "cross_entropy_backward"
    assert F.cross_entropy_backward.__wrapped__.__module__ == "scratchnet.functional.loss"
    assert "put_along_axis" in inspect.getsource(F.cross_entropy_backward)


def test_gradcheck_cases_pass_through_the_loops(monkeypatch):
    """The registered float64 gradcheck cases of cross-entropy (every option), every size taking the loop."""
    from scratchnet.gradcheck import run_case
    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    monkeypatch.setattr(KL, "MIN_SIZE", 0)
    reports = list(run_case("core.cross_entropy"))
    assert reports and all(r.ok for r in reports), [str(r) for r in reports if not r.ok]


def test_route_cross_entropy_backward_directly(rng):
    """kernels.loss._cross_entropy_backward (the fused route) against the readable reference it wraps."""
    from scratchnet.functional.loss import check_dloss

    reference = F.cross_entropy_backward.__wrapped__
    logits, target = _inputs(rng, (64, 10), np.float64)
    _, cache = F.cross_entropy(logits, target, label_smoothing=0.1)
    got = KL._cross_entropy_backward(0.5, cache, reference, check_dloss)
    np.testing.assert_allclose(got, reference(0.5, cache), rtol=1e-12, atol=1e-14)
