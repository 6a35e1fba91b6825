"""Affine quantisation and fake quantisation with the straight-through estimator (chapter 34): the
parameters, quantize/dequantize, fake_quant against its definition and PyTorch, the STE backward
against its analytic form, the frozen-rounding gradient checks, and the STE failing an honest
gradient check of the true (step) function, as it must."""
import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.gradcheck import check_function
from scratchnet.gradcheck.cases import quant  # noqa: F401  (registers the quantisation cases)
from scratchnet.gradcheck.registry import CASES


def test_qrange():
    assert F.qrange(8) == (-128, 127) and F.qrange(8, narrow=True) == (-127, 127)
    assert F.qrange(8, signed=False) == (0, 255) and F.qrange(4) == (-8, 7)


def test_affine_params_represent_zero_exactly_and_span_the_range():
    s, z = F.affine_params(-1.0, 3.0)
    assert s == pytest.approx(4.0 / 255) and -128 <= z <= 127
    assert F.dequantize(np.array([z], np.int8), s, z)[0] == 0.0  # real 0 is a code
    s, z = F.affine_params(0.5, 2.0)  # the range is widened to contain 0: z = q_min
    assert z == -128 and s == pytest.approx(2.0 / 255)
    s, z = F.affine_params(np.array([-1.0, -0.2]), np.array([0.5, 2.0]), qmin=-127, qmax=127, symmetric=True)
    np.testing.assert_allclose(s, [1 / 127, 2 / 127], rtol=1e-6)
    assert np.all(z == 0)
    s, _ = F.affine_params(0.0, 0.0)
    assert s > 0  # an all-zero tensor still gets a usable scale


@pytest.mark.parametrize("axis", [None, 1])
def test_quantize_dequantize_round_trip_within_half_a_step(axis, rng):
    x = rng.standard_normal((6, 4, 3))
    lo, hi = F.calibrate_minmax(x, axis=axis)
    s, z = F.affine_params(lo, hi, dtype=np.float64)
    q = F.quantize(x, s, z, axis=axis)
    assert q.dtype == np.int8
    err = np.abs(F.dequantize(q, s, z, axis=axis, dtype=np.float64) - x)
    bound = s / 2 if axis is None else (s / 2).reshape(1, -1, 1)
    assert np.all(err <= bound + 1e-12)
    y, _ = F.fake_quant(x, s, z, axis=axis)  # fake quantisation is exactly quantize then dequantize
    np.testing.assert_array_equal(y, F.dequantize(q, s, z, axis=axis, dtype=np.float64))


def test_percentile_calibration_ignores_an_outlier(rng):
    x = rng.standard_normal(100_000)
    x[0] = 100.0
    assert F.calibrate_minmax(x)[1] == 100.0
    assert F.calibrate_percentile(x, 99.9)[1] < 4.0


def test_ste_backward_is_its_analytic_definition(rng):
    x, dy = 3 * rng.standard_normal((5, 7)), rng.standard_normal((5, 7))
    s, z, qmin, qmax = np.array(0.4), -3, -8, 7
    _, cache = F.fake_quant(x, s, z, qmin=qmin, qmax=qmax)
    dx, ds = F.fake_quant_backward(dy, cache)
    u = x / s
    v = np.round(u) + z
    inside = (v >= qmin) & (v <= qmax)
    np.testing.assert_array_equal(dx, dy * inside)
    per = np.where(inside, np.round(u) - u, np.where(v < qmin, qmin - z, qmax - z))
    assert ds.shape == () and ds == pytest.approx((dy * per).sum())
    assert 0 < inside.mean() < 1  # both branches were exercised


def test_per_channel_ds_sums_over_the_other_axes(rng):
    x, dy = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 4))
    s = np.array([0.05, 0.1, 0.2])
    _, cache = F.fake_quant(x, s, np.zeros(3, np.int32), qmin=-8, qmax=7, axis=1)
    _, ds = F.fake_quant_backward(dy, cache)
    for c in range(3):
        _, cc = F.fake_quant(x[:, c], s[c], 0, qmin=-8, qmax=7)
        assert ds[c] == pytest.approx(F.fake_quant_backward(dy[:, c], cc)[1])


@pytest.mark.parametrize("case", ["quant.fake_quant"])
def test_frozen_rounding_gradchecks(case):
    for report in CASES[case]():
        assert report.ok, report


def test_the_ste_fails_a_gradient_check_of_the_true_function(rng):
    """round() is a step: away from the steps its derivative is 0, the STE says 1. The check must fail."""
    s = np.array(0.25)
    x = (np.arange(-6, 6) + 0.25) * s  # codes −6..5, a quarter step from every rounding boundary
    report = check_function(F.fake_quant, F.fake_quant_backward, [x, s, 0], names=["x", "scale"], qmin=-8, qmax=7)
    assert not report.ok
    assert np.abs(report.results[0].numeric).max() < 1e-6  # the true dx̂/dx is 0 here


def test_errors(rng):
    x = rng.standard_normal((2, 3))
    with pytest.raises(ValueError, match=r"fake_quant: expected scale and zero_point of shape \(3,\)"):
        F.fake_quant(x, np.ones(2), 0, axis=1)
    with pytest.raises(ValueError, match="fake_quant: scale must be positive"):
        F.fake_quant(x, np.array(0.0), 0)
    with pytest.raises(TypeError, match="fake_quant"):
        F.fake_quant(np.ones((2, 3), np.int32), np.array(0.1), 0)
    with pytest.raises(ValueError, match="calibrate_percentile"):
        F.calibrate_percentile(x, 30.0)


def test_pytorch_parity(rng):
    torch = pytest.importorskip("torch")
    x = (3 * rng.standard_normal((4, 3, 5))).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    s, z = np.array(0.05, np.float32), 7
    y, cache = F.fake_quant(x, s, z, qmin=-128, qmax=127)
    dx, ds = F.fake_quant_backward(dy, cache)
    xt = torch.tensor(x, requires_grad=True)
    st, zt = torch.tensor([0.05], requires_grad=True), torch.tensor([7.0])
    yt = torch._fake_quantize_learnable_per_tensor_affine(xt, st, zt, -128, 127, 1.0)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-6)
    np.testing.assert_array_equal(dx, xt.grad.numpy())
    assert float(ds) == pytest.approx(float(st.grad), rel=1e-4)
    sc, zc = np.array([0.02, 0.05, 0.1], np.float32), np.array([0, -3, 5], np.int32)
    yc, _ = F.fake_quant(x, sc, zc, axis=1)
    ytc = torch.fake_quantize_per_channel_affine(torch.tensor(x), torch.tensor(sc), torch.tensor(zc), 1, -128, 127)
    np.testing.assert_allclose(yc, ytc.numpy(), atol=1e-6)
