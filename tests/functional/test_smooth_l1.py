"""Smooth-L1 loss: gradchecks for each option, values by hand, PyTorch parity, errors."""
import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.gradcheck import assert_gradients


def _off_kinks(rng, shape, beta):
    x, t = rng.standard_normal(shape), rng.standard_normal(shape)
    near = np.abs(np.abs(x - t) - beta) < 0.05
    x[near] += 0.2  # keep |x − t| away from β, where the second derivative jumps
    return x, t


def test_values_by_hand():
    x, t = np.array([0.0, 0.5, 3.0, -2.0]), np.zeros(4)
    loss, _ = F.smooth_l1_loss(x, t, beta=1.0, reduction="none")
    np.testing.assert_allclose(loss, [0.0, 0.125, 2.5, 1.5])
    assert F.smooth_l1_loss(x, t)[0] == pytest.approx(4.125)  # "sum" is the default
    assert F.smooth_l1_loss(x, t, reduction="mean")[0] == pytest.approx(4.125 / 4)
    assert F.smooth_l1_loss(x, t, beta=0.0)[0] == pytest.approx(5.5)  # β = 0 is L1
    w = np.array([1.0, 2.0, 0.0, 1.0])
    assert F.smooth_l1_loss(x, t, weight=w)[0] == pytest.approx(0.25 + 1.5)


@pytest.mark.parametrize("beta", [1.0, 1 / 9, 0.0])
@pytest.mark.parametrize("reduction", ["sum", "mean", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_gradcheck(beta, reduction, weighted, rng):
    x, t = _off_kinks(rng, (5, 4), beta)
    w = rng.random((5, 4)) if weighted else None
    assert_gradients(F.smooth_l1_loss, F.smooth_l1_loss_backward, [x, t], wrt=[0], beta=beta, weight=w,
                     reduction=reduction)


def test_float32_stays_float32(rng):
    x, t = (a.astype(np.float32) for a in _off_kinks(rng, (3, 4), 1.0))
    loss, cache = F.smooth_l1_loss(x, t, reduction="mean")
    assert loss.dtype == np.float32 and F.smooth_l1_loss_backward(1.0, cache).dtype == np.float32


@pytest.mark.parametrize("beta", [1.0, 0.2, 0.0])
@pytest.mark.parametrize("reduction", ["sum", "mean", "none"])
def test_matches_pytorch(beta, reduction, rng):
    torch = pytest.importorskip("torch")
    x, t = _off_kinks(rng, (6, 4), beta)
    xt = torch.tensor(x, requires_grad=True)
    want = torch.nn.functional.smooth_l1_loss(xt, torch.tensor(t), beta=beta, reduction=reduction)
    dy = rng.standard_normal(want.shape)
    want.backward(torch.tensor(dy))
    loss, cache = F.smooth_l1_loss(x, t, beta=beta, reduction=reduction)
    np.testing.assert_allclose(loss, want.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(F.smooth_l1_loss_backward(dy if reduction == "none" else float(dy), cache),
                               xt.grad.numpy(), rtol=1e-12)


def test_errors():
    x = np.ones((3, 4))
    with pytest.raises(ValueError, match="smooth_l1_loss: x .* must have one shape"):
        F.smooth_l1_loss(x, np.ones((3, 5)))
    with pytest.raises(ValueError, match="smooth_l1_loss: x .* weight"):
        F.smooth_l1_loss(x, x, weight=np.ones(4))
    with pytest.raises(ValueError, match="smooth_l1_loss: beta must be ≥ 0"):
        F.smooth_l1_loss(x, x, beta=-1.0)
    with pytest.raises(ValueError, match="smooth_l1_loss: reduction"):
        F.smooth_l1_loss(x, x, reduction="batchmean")
    _, cache = F.smooth_l1_loss(x, x)
    with pytest.raises(ValueError, match="smooth_l1_loss_backward: expected upstream gradient dloss of shape"):
        F.smooth_l1_loss_backward(np.ones(3), cache)
