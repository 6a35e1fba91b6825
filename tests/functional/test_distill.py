"""The soft-target and distillation losses (chapter 35): gradchecks at several T and α, the closed
form of the gradient, the T² scaling, PyTorch parity, errors."""
import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.gradcheck import assert_gradients
from scratchnet.gradcheck.cases import compress  # noqa: F401  (registers the compression cases)
from scratchnet.gradcheck.registry import CASES


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("case", ["compress.soft_target_loss", "compress.distillation_loss"])
def test_registered_cases_pass(case):
    reports = CASES[case]()
    assert reports and all(r.ok for r in reports)


@pytest.mark.parametrize("T", [0.5, 1.0, 3.0, 10.0])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.9, 1.0])
@pytest.mark.parametrize("shape", [(1, 3), (7, 10)])
def test_distillation_gradcheck(T, alpha, shape, rng):
    s, t = rng.standard_normal(shape), 2 * rng.standard_normal(shape)
    y = rng.integers(0, shape[1], shape[0])
    assert_gradients(F.distillation_loss, F.distillation_loss_backward, [s, t, y], wrt=[0], T=T, alpha=alpha)


def test_closed_form_of_the_gradient(rng):
    s, t, y = rng.standard_normal((6, 5)), rng.standard_normal((6, 5)), rng.integers(0, 5, 6)
    T, a = 4.0, 0.7
    loss, cache = F.distillation_loss(s, t, y, T=T, alpha=a)
    p, q = _softmax(s / T), _softmax(t / T)
    kl = (q * (np.log(q) - np.log(p))).sum(axis=1).mean()
    ce = -np.log(_softmax(s)[np.arange(6), y]).mean()
    assert loss == pytest.approx(a * T * T * kl + (1 - a) * ce, rel=1e-12)
    onehot = np.eye(5)[y]
    want = a * T * (p - q) / 6 + (1 - a) * (_softmax(s) - onehot) / 6
    np.testing.assert_allclose(F.distillation_loss_backward(1.0, cache), want, rtol=1e-12, atol=1e-15)


def test_t_squared_keeps_the_gradient_size_independent_of_t(rng):
    """At high T the soft gradient tends to (s − t)/(K N) for zero-mean logits; without T² it would fall as 1/T²."""
    s, t = rng.standard_normal((4, 10)), rng.standard_normal((4, 10))
    s, t = s - s.mean(axis=1, keepdims=True), t - t.mean(axis=1, keepdims=True)
    limit = (s - t) / (10 * 4)
    norms = []
    for T in (5.0, 20.0, 100.0, 1000.0):
        _, cache = F.soft_target_loss(s, t, T=T)
        g = F.soft_target_loss_backward(1.0, cache)
        norms.append(np.linalg.norm(g))
        if T >= 100:
            np.testing.assert_allclose(g, limit, rtol=0, atol=3.0 / T * np.abs(limit).max())  # error O(1/T)
    assert max(norms) / min(norms) < 1.3


def test_loss_is_zero_when_the_student_matches_and_alpha_limits(rng):
    s, y = rng.standard_normal((5, 4)), rng.integers(0, 4, 5)
    assert F.soft_target_loss(s, s.copy(), T=3.0)[0] == pytest.approx(0.0, abs=1e-12)
    t = rng.standard_normal((5, 4))
    ce = F.cross_entropy(s, y)[0]
    assert F.distillation_loss(s, t, y, T=3.0, alpha=0.0)[0] == pytest.approx(ce)
    assert F.distillation_loss(s, t, y, T=3.0, alpha=1.0)[0] == pytest.approx(F.soft_target_loss(s, t, T=3.0)[0])


def test_float32_stays_float32_and_extreme_logits_are_finite(rng):
    s = (1e4 * rng.standard_normal((3, 6))).astype(np.float32)
    t = (1e4 * rng.standard_normal((3, 6))).astype(np.float32)
    loss, cache = F.distillation_loss(s, t, np.array([0, 1, 2]), T=2.0, alpha=0.5)
    ds = F.distillation_loss_backward(1.0, cache)
    assert np.isfinite(loss) and np.all(np.isfinite(ds)) and ds.dtype == np.float32


def test_torch_parity(rng):
    torch = pytest.importorskip("torch")
    s, t, y = rng.standard_normal((6, 5)), rng.standard_normal((6, 5)), rng.integers(0, 5, 6)
    T, a = 3.0, 0.8
    loss, cache = F.distillation_loss(s, t, y, T=T, alpha=a)
    ds = F.distillation_loss_backward(1.0, cache)
    ts = torch.tensor(s, requires_grad=True)
    tf = torch.nn.functional
    soft = tf.kl_div(tf.log_softmax(ts / T, dim=1), tf.softmax(torch.tensor(t) / T, dim=1), reduction="batchmean")
    tl = a * T * T * soft + (1 - a) * tf.cross_entropy(ts, torch.tensor(y))
    tl.backward()
    assert loss == pytest.approx(tl.item(), rel=1e-12)
    np.testing.assert_allclose(ds, ts.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_errors_name_the_op(rng):
    s, t, y = rng.standard_normal((3, 4)), rng.standard_normal((3, 4)), np.array([0, 1, 2])
    with pytest.raises(ValueError, match=r"distillation_loss: expected student and teacher logits of one shape"):
        F.distillation_loss(s, t[:, :3], y, T=2.0, alpha=0.5)
    with pytest.raises(ValueError, match="soft_target_loss: the temperature T must be > 0"):
        F.soft_target_loss(s, t, T=0.0)
    with pytest.raises(ValueError, match="distillation_loss: alpha must be in"):
        F.distillation_loss(s, t, y, T=2.0, alpha=1.5)
    with pytest.raises(ValueError, match=r"distillation_loss: expected target of shape \(3,\)"):
        F.distillation_loss(s, t, y[:2], T=2.0, alpha=0.5)
    with pytest.raises(TypeError, match="distillation_loss: expected target to be an integer array"):
        F.distillation_loss(s, t, y.astype(float), T=2.0, alpha=0.5)
    with pytest.raises(TypeError, match="distillation_loss: all float inputs must share one dtype"):
        F.distillation_loss(s, t.astype(np.float32), y, T=2.0, alpha=0.5)
