"""The fused Adam update (scratchnet/kernels/optim.py) against the readable reference in Adam._update.

float32 and float64; Adam and AdamW, with and without weight decay and AMSGrad; parameters above
and below MIN_SIZE; the kernel's NaN handling of the AMSGrad maximum; the route's refusals.
"""
import numpy as np
import pytest

from scratchnet.kernels import optim as KO
from scratchnet.kernels import optim_loops
from scratchnet.nn.module import Parameter
from scratchnet.optim import Adam, AdamW

TOL = {np.float32: dict(rtol=1e-6, atol=1e-7), np.float64: dict(rtol=1e-13, atol=1e-15)}


def _trajectory(monkeypatch, flag, cls, options, dtype, shapes, steps=5):
    """Parameters and state after ``steps`` updates with SCRATCHNET_JIT=flag (same gradients each run)."""
    monkeypatch.setenv("SCRATCHNET_JIT", flag)
    rng = np.random.default_rng(3)
    params = [Parameter(rng.standard_normal(s).astype(dtype)) for s in shapes]
    opt = cls(params, lr=0.01, **options)
    for _ in range(steps):
        for p in params:
            p.grad = rng.standard_normal(p.data.shape).astype(dtype) * rng.choice([1e-3, 1.0, 30.0])
        opt.step()
    return [p.data.copy() for p in params], opt.state_dict()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls, options", [
    (Adam, {}), (Adam, {"weight_decay": 0.1}), (Adam, {"amsgrad": True}),
    (Adam, {"betas": (0.5, 0.9), "eps": 1e-4}), (AdamW, {"weight_decay": 0.1, "amsgrad": True})])
def test_fused_adam_matches_reference(monkeypatch, dtype, cls, options):
    shapes = [(70, 90), (KO.MIN_SIZE,), (3, 5)]  # above, at and below the threshold
    fast, fast_state = _trajectory(monkeypatch, "1", cls, options, dtype, shapes)
    ref, ref_state = _trajectory(monkeypatch, "0", cls, options, dtype, shapes)
    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    for a, b in zip(fast, ref):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(a, b, **TOL[dtype])
    assert fast_state.keys() == ref_state.keys()  # state.<i>.step / exp_avg / exp_avg_sq (/ max_exp_avg_sq)
    for key in ref_state:
        np.testing.assert_allclose(fast_state[key], ref_state[key], **TOL[dtype])


def test_fused_adam_route_taken_and_refused(monkeypatch):
    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    calls = []
    kernel = optim_loops.adam_update_kernel
    monkeypatch.setattr(optim_loops, "adam_update_kernel", lambda *a: calls.append(a[0].size) or kernel(*a))
    big = Parameter(np.ones((64, 64), np.float32))
    small = Parameter(np.ones(10, np.float32))
    half = Parameter(np.ones(KO.MIN_SIZE, np.float16))
    opt = Adam([big, small, half], lr=0.1)
    for p in opt.params:
        p.grad = np.ones_like(p.data)
    opt.step()
    assert calls == [64 * 64]  # the small and the float16 parameter took the reference
    np.testing.assert_allclose(big.data, 0.9, rtol=1e-6)  # the first Adam step moves each number by lr
    np.testing.assert_allclose(small.data, 0.9, rtol=1e-6)
    np.testing.assert_allclose(half.data.astype(np.float32), 0.9, rtol=2e-3)
    m = np.zeros((64, 64), np.float32)
    strided = np.zeros((64, 128), np.float32)[:, ::2]
    assert not KO.adam_update(strided, m, m.copy(), m.copy(), None, beta1=0.9, beta2=0.999, step_size=0.1,
                              bias_correction2_sqrt=1.0, eps=1e-8)
    assert not KO.adam_update(m, m.astype(np.float64), m.copy(), m.copy(), None, beta1=0.9, beta2=0.999,
                              step_size=0.1, bias_correction2_sqrt=1.0, eps=1e-8)


def test_amsgrad_maximum_propagates_nan_like_numpy():
    n = 8
    p, g = np.zeros(n), np.full(n, 1.0)
    g[3] = np.nan
    m, v, v_max = np.zeros(n), np.zeros(n), np.full(n, 0.5)
    optim_loops.adam_update_kernel(p, g, m, v, v_max, True, 0.9, 0.999, 0.1, 1.0, 1e-8)
    expected = np.maximum(np.full(n, 0.5), 0.001 * np.where(np.isnan(g), np.nan, 1.0))
    np.testing.assert_array_equal(np.isnan(v_max), np.isnan(expected))
    np.testing.assert_allclose(v_max[~np.isnan(expected)], expected[~np.isnan(expected)])
    assert np.isnan(p[3]) and np.all(np.isfinite(np.delete(p, 3)))
