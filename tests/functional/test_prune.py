"""Masked linear and conv2d (chapter 33): gradchecks, the masked gradient, PyTorch parity, errors."""
import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.gradcheck import assert_gradients
from scratchnet.gradcheck.cases import compress  # noqa: F401  (registers the compression cases)
from scratchnet.gradcheck.registry import CASES


def _mask(rng, shape, keep=0.5):
    return (rng.random(shape) < keep).astype(np.float64)


@pytest.mark.parametrize("case", ["compress.masked_linear", "compress.masked_conv2d", "compress.masked_layers"])
def test_registered_cases_pass(case):
    reports = CASES[case]()
    assert reports and all(r.ok for r in reports)


@pytest.mark.parametrize("xs,ws", [((3, 4), (4, 2)), ((1, 7), (7, 5)), ((2, 3, 4), (4, 6))])
@pytest.mark.parametrize("keep", [0.0, 0.3, 1.0])
def test_masked_linear_gradcheck(xs, ws, keep, rng):
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[1])
    assert_gradients(F.masked_linear, F.masked_linear_backward, [x, w, b], mask=_mask(rng, ws, keep))


@pytest.mark.parametrize("opts", [{}, {"stride": 2}, {"padding": 1, "dilation": 2}])
def test_masked_conv2d_gradcheck(opts, rng):
    x, w, b = rng.standard_normal((2, 2, 7, 6)), rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)
    assert_gradients(F.masked_conv2d, F.masked_conv2d_backward, [x, w, b], mask=_mask(rng, w.shape), **opts)


def test_forward_is_the_dense_op_on_w_times_mask_and_pruned_weights_get_zero_gradient(rng):
    x, w, b = rng.standard_normal((5, 4)), rng.standard_normal((4, 3)), rng.standard_normal(3)
    mask = _mask(rng, w.shape)
    y, cache = F.masked_linear(x, w, b, mask=mask)
    np.testing.assert_allclose(y, x @ (w * mask) + b)
    w_changed = w + 100.0 * (1 - mask)  # pruned weights' stored values do not matter
    np.testing.assert_allclose(F.masked_linear(x, w_changed, b, mask=mask)[0], y)
    dx, dw, db = F.masked_linear_backward(np.ones_like(y), cache)
    assert np.all(dw[mask == 0] == 0)
    _, dw_dense, _ = F.linear_backward(np.ones_like(y), F.linear(x, w * mask, b)[1])
    np.testing.assert_allclose(dw, dw_dense * mask)
    assert np.abs(dw_dense[mask == 0]).max() > 0  # the unmasked gradient would revive them


def test_masked_conv2d_matches_conv2d_on_masked_weights(rng):
    x, w = rng.standard_normal((2, 3, 6, 6)).astype(np.float32), rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    mask = rng.random(w.shape) < 0.4  # a boolean mask works too
    y, cache = F.masked_conv2d(x, w, None, mask=mask, padding=1)
    y_ref, cache_ref = F.conv2d(x, w * mask, None, padding=1)
    np.testing.assert_array_equal(y, y_ref)
    assert y.dtype == np.float32
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, dw, db = F.masked_conv2d_backward(dy, cache)
    dx_ref, dw_ref, _ = F.conv2d_backward(dy, cache_ref)
    np.testing.assert_array_equal(dx, dx_ref)
    np.testing.assert_array_equal(dw, dw_ref * mask)
    assert db is None and dw.dtype == np.float32


def test_torch_parity(rng):
    torch = pytest.importorskip("torch")
    x, w, b = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    mask = _mask(rng, w.shape)
    y, cache = F.masked_conv2d(x, w, b, mask=mask, stride=2)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = F.masked_conv2d_backward(dy, cache)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv2d(tx, tw * torch.tensor(mask), tb, stride=2)
    ty.backward(torch.tensor(dy))
    for mine, theirs in [(y, ty), (dx, tx.grad), (dw, tw.grad), (db, tb.grad)]:
        np.testing.assert_allclose(mine, theirs.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_errors_name_the_op(rng):
    x, w = rng.standard_normal((2, 4)), rng.standard_normal((4, 3))
    with pytest.raises(ValueError, match=r"masked_linear: expected mask of the weight's shape \(4, 3\), got \(3, 4\)"):
        F.masked_linear(x, w, None, mask=np.ones((3, 4)))
    with pytest.raises(TypeError, match="masked_linear: mask must be an array"):
        F.masked_linear(x, w, None, mask=1.0)
    with pytest.raises(ValueError, match="masked_conv2d: expected mask"):
        F.masked_conv2d(rng.standard_normal((1, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3)), None,
                        mask=np.ones((3, 2, 3)))
    _, cache = F.masked_linear(x, w, None, mask=np.ones((4, 3)))
    with pytest.raises(ValueError, match="masked_linear_backward: expected upstream gradient dy of shape"):
        F.masked_linear_backward(np.ones((2, 4)), cache)
