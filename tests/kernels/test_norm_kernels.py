"""Batch-norm Numba kernels (scratchnet/kernels/norm.py) against the vectorised reference.

Every route: the per-channel kernels (serial and parallel) and the row kernels, float32 and float64,
odd sizes, N = 1, with and without γ / β; and the public functional results unchanged.
"""
import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.functional.norm import _batch_norm_train
from scratchnet.kernels import norm as KN
from scratchnet.kernels import norm_loops as K

TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-11)}
SHAPES = [(2, 3), (5, 3), (64, 37), (3, 4, 5), (1, 3, 4, 4), (2, 3, 3, 3),
          (4, 6, 17, 17), (1, 2, 33, 7), (3, 5, 16, 1)]
AFFINE = [(True, True), (False, False), (True, False), (False, True)]


def _inputs(rng, shape, dtype, offset=0.0):
    x = (rng.standard_normal(shape) * 2.0 + offset).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    C = shape[1]
    gamma, beta = rng.standard_normal(C).astype(dtype), rng.standard_normal(C).astype(dtype)
    return x, dy, gamma, beta


def _run(x, dy, gamma, beta, *, training=True):
    """Forward (with fresh running statistics) and backward → every array the pair produces."""
    C = x.shape[1]
    rm, rv = np.zeros(C, x.dtype), np.ones(C, x.dtype)
    y, cache = F.batch_norm(x, gamma, beta, rm, rv, training=training, momentum=0.3)
    dx, dgamma, dbeta = F.batch_norm_backward(dy, cache)
    return dict(y=y, xhat=cache.xhat, inv_std=cache.inv_std, rm=rm, rv=rv, dx=dx, dgamma=dgamma, dbeta=dbeta,
                y_is_xhat=y is cache.xhat)


def _routes(monkeypatch, *args, training=True):
    """The same call through the fused loops (every size) and through the reference."""
    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    monkeypatch.setattr(KN, "MIN_SIZE", 0)
    fused = _run(*args, training=training)
    monkeypatch.setenv("SCRATCHNET_JIT", "0")
    return fused, _run(*args, training=training)


def _assert_same(fused, ref, dtype):
    assert fused["y_is_xhat"] == ref["y_is_xhat"]
    for name, want in ref.items():
        if name == "y_is_xhat":
            continue
        got = fused[name]
        if want is None:
            assert got is None, name
            continue
        assert got.dtype == want.dtype and got.shape == want.shape, name
        np.testing.assert_allclose(got, want, err_msg=name, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("affine", AFFINE)
def test_fused_batch_norm_matches_reference(shape, dtype, affine, rng, monkeypatch):
    x, dy, gamma, beta = _inputs(rng, shape, dtype)
    gamma, beta = (gamma if affine[0] else None), (beta if affine[1] else None)
    if x.size // x.shape[1] < 2:
        pytest.skip("training needs two values per channel")
    fused, ref = _routes(monkeypatch, x, dy, gamma, beta)
    _assert_same(fused, ref, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(8, 4, 20, 20), (300, 6)])
def test_moments_survive_a_large_offset(shape, dtype, rng, monkeypatch):
    """Values far from zero (mean 1000, spread 2): the shifted float64 sums lose nothing. Compared with
    the float64 reference; in float32 the fused route must be at least as close to it as the reference."""
    x, dy, gamma, beta = _inputs(rng, shape, dtype, offset=1000.0)
    fused, ref = _routes(monkeypatch, x, dy, gamma, beta)
    truth = _run(*(a.astype(np.float64) for a in (x, dy, gamma, beta)))  # the reference route, in float64
    for name in ("y", "xhat", "inv_std", "rm", "rv", "dx", "dgamma", "dbeta"):
        err = np.abs(fused[name] - truth[name]).max()
        if dtype == np.float64:
            np.testing.assert_allclose(fused[name], truth[name], err_msg=name, **TOL[dtype])
        else:  # float32: x − μ itself keeps only ~1e-4 of the spread at this offset
            assert err <= 1.5 * np.abs(ref[name] - truth[name]).max() + 1e-5, name


def test_evaluation_mode_is_unchanged(rng, monkeypatch):
    x, dy, gamma, beta = _inputs(rng, (4, 6, 17, 17), np.float32)
    fused, ref = _routes(monkeypatch, x, dy, gamma, beta, training=False)
    for name, want in ref.items():
        if name != "y_is_xhat":
            np.testing.assert_array_equal(fused[name], want, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_parallel_and_serial_channel_kernels_agree(dtype, rng):
    x = rng.standard_normal((3, 7, 40)).astype(dtype)  # (N, C, S)
    dy = rng.standard_normal(x.shape).astype(dtype)
    shift = x[0, :, 0].astype(np.float64)
    vec = [rng.standard_normal(7).astype(dtype) for _ in range(4)]
    out = {}
    for tag, kernels in (("parallel", (K.channel_moments_kernel, K.channel_normalize_kernel, K.channel_grad_sums_kernel,
                                       K.channel_grad_input_kernel)),
                         ("serial", (K.channel_moments_kernel_serial, K.channel_normalize_kernel_serial,
                                     K.channel_grad_sums_kernel_serial, K.channel_grad_input_kernel_serial))):
        moments, normalize, grad_sums, grad_input = kernels
        s1, s2, g1, g2 = (np.zeros(7) for _ in range(4))
        xhat, y, dx = np.empty_like(x), np.empty_like(x), np.empty_like(x)
        moments(x, shift, s1, s2)
        normalize(x, *vec, xhat, y, True)
        grad_sums(dy, xhat, g1, g2)
        grad_input(dy, xhat, *vec[:3], dx)
        out[tag] = (s1, s2, xhat, y, g1, g2, dx)
    for a, b in zip(out["parallel"], out["serial"]):
        np.testing.assert_array_equal(a, b)
    d = x.astype(np.float64) - shift[None, :, None]
    np.testing.assert_allclose(out["serial"][0], d.sum(axis=(0, 2)), rtol=1e-12)
    np.testing.assert_allclose(out["serial"][1], (d * d).sum(axis=(0, 2)), rtol=1e-12)


def test_route_takes_the_loops_for_numpy_and_falls_back_otherwise(rng, monkeypatch):
    x = rng.standard_normal((4, 3, 64, 64)).astype(np.float32)
    calls = []

    def reference(*args, **kwargs):
        calls.append(1)
        return _batch_norm_train(*args, **kwargs)

    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    KN.batch_norm_train(x, None, None, eps=1e-5, reference=reference)
    assert not calls  # big enough: the loops
    KN.batch_norm_train(x[:, :, :2, :2], None, None, eps=1e-5, reference=reference)
    KN.batch_norm_train(x.astype(np.float16), None, None, eps=1e-5, reference=reference)
    assert len(calls) == 2  # small, and float16: the reference


def test_public_results_unchanged(rng, monkeypatch):
    """Default thresholds: the public pair gives the reference's numbers (here through the loops)."""
    x, dy, gamma, beta = _inputs(rng, (8, 16, 12, 12), np.float32)
    assert x.size >= KN.MIN_SIZE
    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    fast = _run(x, dy, gamma, beta)
    monkeypatch.setenv("SCRATCHNET_JIT", "0")
    _assert_same(fast, _run(x, dy, gamma, beta), np.float32)


def test_fused_backward_checks_dy_first(rng, monkeypatch):
    monkeypatch.setattr(KN, "MIN_SIZE", 0)
    x = rng.standard_normal((4, 3, 5, 5)).astype(np.float32)
    _, cache = F.batch_norm(x, None, None, None, None, training=True)
    with pytest.raises(ValueError, match="batch_norm_backward"):
        F.batch_norm_backward(np.ones((4, 3, 5, 4), np.float32), cache)
    with pytest.raises(TypeError, match="batch_norm_backward"):
        F.batch_norm_backward(np.ones(x.shape, np.float64), cache)


def test_backward_keeps_its_name_and_reference():
    """The public backward wraps the readable one the chapter shows (same name, docstring, module)."""
    import inspect
    assert F.batch_norm_backward.__name__ == "batch_norm_backward"
    assert F.batch_norm_backward.__wrapped__.__module__ == "scratchnet.functional.norm"
    assert "mean_dxhat_xhat" in inspect.getsource(F.batch_norm_backward)


def test_gradcheck_cases_pass_through_the_loops(monkeypatch):
    """The registered float64 gradcheck cases of batch norm, run with every size taking the loops."""
    from scratchnet.gradcheck import run_case
    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    monkeypatch.setattr(KN, "MIN_SIZE", 0)
    reports = list(run_case("core.batch_norm"))
    assert reports and all(r.ok for r in reports), [str(r) for r in reports if not r.ok]


def test_route_batch_norm_backward_directly(rng):
    """kernels.norm._batch_norm_backward (the fused route) against the readable reference it wraps."""
    reference = F.batch_norm_backward.__wrapped__
    x, dy, gamma, beta = _inputs(rng, (8, 4, 16, 16), np.float64)
    _, cache = F.batch_norm(x, gamma, beta, None, None, training=True)
    for got, want in zip(KN._batch_norm_backward(dy, cache, reference), reference(dy, cache)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
