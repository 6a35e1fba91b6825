"""clip_grad_norm: by hand and against torch.nn.utils.clip_grad_norm_."""
import math

import numpy as np
import pytest

from scratchnet.nn import Parameter
from scratchnet.optim import clip_grad_norm


def _params(xp, grads, dtype=np.float64):
    ps = []
    for g in grads:
        p = Parameter(xp.zeros(np.shape(g), dtype=dtype))
        p.grad[...] = xp.asarray(g, dtype=dtype)
        ps.append(p)
    return ps


def test_by_hand(xp):
    ps = _params(xp, [[3.0], [4.0, 0.0]])  # ‖g‖ = √(9 + 16) = 5
    total = clip_grad_norm(ps, 1.0)
    assert isinstance(total, float) and total == 5.0
    scale = 1.0 / (5.0 + 1e-6)
    np.testing.assert_allclose(float(ps[0].grad[0]), 3.0 * scale, rtol=1e-15)
    np.testing.assert_allclose(float(ps[1].grad[0]), 4.0 * scale, rtol=1e-15)
    ps = _params(xp, [[0.3], [0.4]])  # ‖g‖ = 0.5 < 1: unchanged
    assert math.isclose(clip_grad_norm(ps, 1.0), 0.5)
    assert float(ps[0].grad[0]) == 0.3


def test_float32_keeps_dtype_and_single_parameter():
    p = _params(np, [[30.0, 40.0]], dtype=np.float32)[0]
    assert clip_grad_norm(p, 5.0) == pytest.approx(50.0)
    assert p.grad.dtype == np.float32
    np.testing.assert_allclose(p.grad, [3.0, 4.0], rtol=1e-6)


@pytest.mark.parametrize("max_norm", [0.1, 1.0, 100.0])
def test_matches_pytorch(max_norm):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(s) for s in [(4, 3), (7,), (2, 2, 3)]]
    ps = _params(np, grads)
    tps = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for tp, g in zip(tps, grads):
        tp.grad = torch.tensor(g)
    total = clip_grad_norm(ps, max_norm)
    ttotal = torch.nn.utils.clip_grad_norm_(tps, max_norm)
    assert total == pytest.approx(float(ttotal), rel=1e-14)
    for p, tp in zip(ps, tps):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-14)


def test_nonfinite_and_errors():
    ps = _params(np, [[np.nan, 1.0]])
    assert math.isnan(clip_grad_norm(ps, 1.0))
    with pytest.raises(RuntimeError, match="nan"):
        clip_grad_norm(_params(np, [[np.inf]]) + _params(np, [[np.nan]]), 1.0, error_if_nonfinite=True)
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm(_params(np, [[1.0]]), -1.0)
    with pytest.raises(TypeError, match="Parameters"):
        clip_grad_norm([np.ones(2)], 1.0)
    assert clip_grad_norm([], 1.0) == 0.0
