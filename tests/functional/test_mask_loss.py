"""Mask R-CNN's mask loss: gradient checks at several shapes (background rows, one class, no
foreground), the gradient's support (the gt class's channel of foreground rows only), the closed
form, stability on extreme logits, PyTorch parity, wrong inputs."""
import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.gradcheck import assert_gradients
from scratchnet.gradcheck.cases.mask_rcnn import mask_loss_cases, mask_problem


def test_registered_cases_pass():
    for rep in mask_loss_cases():
        assert rep.ok, str(rep)


@pytest.mark.parametrize("R,K,M", [(2, 1, 2), (4, 2, 3), (6, 5, 5)])
def test_gradcheck_shapes(R, K, M):
    assert_gradients(F.mask_loss, F.mask_loss_backward, mask_problem(R, K, M, seed=R + K + M), wrt=[0])


def test_closed_form_and_gradient_support(rng):
    logits, labels, targets = mask_problem(R=6, K=3, M=4, seed=3)
    loss, cache = F.mask_loss(logits, labels, targets)
    fg = np.flatnonzero(labels > 0)
    z, t = logits[fg, labels[fg] - 1], targets[fg]
    p = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(loss, np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p))), rtol=1e-12)
    d = F.mask_loss_backward(1.0, cache)
    np.testing.assert_allclose(d[fg, labels[fg] - 1], (p - t) / z.size, rtol=1e-12)
    off = np.ones(logits.shape, dtype=bool)
    off[fg, labels[fg] - 1] = False
    assert np.all(d[off] == 0)  # other classes' channels and every background row: exactly zero
    assert np.all(d[labels == 0] == 0)


def test_no_foreground_gives_zero_loss_and_gradient():
    logits, _, targets = mask_problem(R=3, K=2, M=3)
    loss, cache = F.mask_loss(logits, np.zeros(3, np.int64), targets)
    assert float(loss) == 0.0 and not F.mask_loss_backward(1.0, cache).any()
    loss, cache = F.mask_loss(np.zeros((0, 2, 3, 3)), np.zeros(0, np.int64), np.zeros((0, 3, 3)))
    assert float(loss) == 0.0 and F.mask_loss_backward(1.0, cache).shape == (0, 2, 3, 3)


def test_extreme_logits_stay_finite():
    logits = np.full((2, 2, 2, 2), 1000.0)
    logits[0] *= -1
    targets = np.stack([np.ones((2, 2)), np.zeros((2, 2))])
    loss, cache = F.mask_loss(logits, np.array([1, 2]), targets)
    d = F.mask_loss_backward(1.0, cache)
    assert np.isfinite(loss) and np.all(np.isfinite(d)) and float(loss) > 100


def test_float32_keeps_its_dtype():
    logits, labels, targets = mask_problem()
    loss, cache = F.mask_loss(logits.astype(np.float32), labels, targets.astype(bool))
    assert loss.dtype == np.float32 and F.mask_loss_backward(1.0, cache).dtype == np.float32


def test_matches_torch():
    torch = pytest.importorskip("torch")
    logits, labels, targets = mask_problem(R=7, K=4, M=5, seed=9)
    loss, cache = F.mask_loss(logits, labels, targets)
    dl = F.mask_loss_backward(0.7, cache)
    z = torch.tensor(logits, requires_grad=True)
    fg = torch.tensor(np.flatnonzero(labels > 0))
    ref = torch.nn.functional.binary_cross_entropy_with_logits(z[fg, torch.tensor(labels)[fg] - 1],
                                                               torch.tensor(targets)[fg])
    (0.7 * ref).backward()
    np.testing.assert_allclose(float(loss), ref.item(), rtol=1e-12)
    np.testing.assert_allclose(dl, z.grad.numpy(), atol=1e-15)


def test_wrong_inputs():
    logits, labels, targets = mask_problem()
    with pytest.raises(ValueError, match=r"mask_loss: expected logits \(R, K, M, M\)"):
        F.mask_loss(logits[:, 0], labels, targets)
    with pytest.raises(ValueError, match="mask_loss: expected logits"):
        F.mask_loss(logits, labels[:-1], targets)
    with pytest.raises(ValueError, match="mask_loss: expected logits"):
        F.mask_loss(logits, labels, targets[:, :-1])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, K\] = \[0, 3\]"):
        F.mask_loss(logits, np.where(labels == 3, 4, labels), targets)
    with pytest.raises(TypeError, match="mask_loss: expected labels to be an integer array"):
        F.mask_loss(logits, labels.astype(float), targets)
    with pytest.raises(TypeError, match="mask_loss: expected logits to be a float array"):
        F.mask_loss(logits.astype(np.int64), labels, targets)
    _, cache = F.mask_loss(logits, labels, targets)
    with pytest.raises(ValueError, match="mask_loss_backward: expected upstream gradient"):
        F.mask_loss_backward(np.ones(3), cache)
