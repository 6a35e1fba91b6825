"""Fusion pairs (chapter 32): gradchecks at several shapes, what each forward computes, PyTorch parity,
errors naming the op."""
import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.gradcheck import assert_gradients
from scratchnet.gradcheck.cases import multimodal  # noqa: F401  (registers the multimodal cases)
from scratchnet.gradcheck.registry import CASES


@pytest.mark.parametrize("case", ["multimodal.concat_fusion", "multimodal.late_fusion", "multimodal.gated_fusion",
                                  "multimodal.modality_dropout"])
def test_registered_cases_pass(case):
    reports = CASES[case]()
    assert reports and all(r.ok for r in reports)


@pytest.mark.parametrize("n,fa,fb", [(1, 2, 3), (5, 4, 4), (3, 7, 1)])
def test_concat_fusion_splits_the_gradient(n, fa, fb, rng):
    a, b = rng.standard_normal((n, fa)), rng.standard_normal((n, fb))
    assert_gradients(F.concat_fusion, F.concat_fusion_backward, [a, b])
    h, cache = F.concat_fusion(a, b)
    np.testing.assert_array_equal(h, np.hstack([a, b]))
    dh = rng.standard_normal(h.shape)
    da, db = F.concat_fusion_backward(dh, cache)
    np.testing.assert_array_equal(np.hstack([da, db]), dh)


@pytest.mark.parametrize("m,k", [(2, 3), (3, 10), (4, 2)])
def test_late_fusion_gradcheck(m, k, rng):
    logps = F.log_softmax(rng.standard_normal((4, m, k)))[0]
    assert_gradients(F.late_fusion, F.late_fusion_backward, [logps, rng.standard_normal(m)])


def test_late_fusion_is_a_weighted_average_of_log_probabilities(rng):
    logps = F.log_softmax(rng.standard_normal((6, 2, 5)))[0]
    y, _ = F.late_fusion(logps, np.zeros(2))  # equal weights: the mean of the two
    np.testing.assert_allclose(y, logps.mean(axis=1))
    y, _ = F.late_fusion(logps, np.array([30.0, -30.0]))  # all weight on the first modality
    np.testing.assert_allclose(y, logps[:, 0], atol=1e-12)
    y, _ = F.late_fusion(logps, np.array([0.3, -1.0]))
    assert np.all(np.exp(y).sum(axis=1) <= 1 + 1e-12)  # a weighted geometric mean is sub-normalised (Hölder)


def test_gated_fusion_gradcheck_and_limits(rng):
    ha, hb = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    z = 1 / (1 + np.exp(-rng.standard_normal((3, 4))))
    assert_gradients(F.gated_fusion, F.gated_fusion_backward, [ha, hb, z])
    np.testing.assert_array_equal(F.gated_fusion(ha, hb, np.ones((3, 4)))[0], ha)
    np.testing.assert_array_equal(F.gated_fusion(ha, hb, np.zeros((3, 4)))[0], hb)


@pytest.mark.parametrize("xs,fs", [((4, 1, 5, 5), (1, 5, 5)), ((4, 3, 2), (2,)), ((4, 3, 2), (3, 1)),
                                   ((4, 6), ()), ((4, 6), (6,))])
def test_modality_dropout_gradcheck_and_forward(xs, fs, rng):
    x, fill = rng.standard_normal(xs), rng.standard_normal(fs)
    mask = np.array([1, 0, 0, 1])
    assert_gradients(F.modality_dropout, F.modality_dropout_backward, [x, fill], mask=mask)
    y, cache = F.modality_dropout(x, fill, mask=mask)
    np.testing.assert_array_equal(y[mask == 1], x[mask == 1])  # kept samples pass unchanged (no rescaling)
    np.testing.assert_array_equal(y[1], np.broadcast_to(fill, xs[1:]))  # a dropped sample is the fill
    dx, dfill = F.modality_dropout_backward(np.ones_like(y), cache)
    assert np.all(dx[mask == 0] == 0) and dfill.shape == fill.shape


def test_float32_stays_float32(rng):
    x, fill = rng.standard_normal((3, 4)).astype(np.float32), np.zeros(4, np.float32)
    y, cache = F.modality_dropout(x, fill, mask=np.array([True, False, True]))
    dx, dfill = F.modality_dropout_backward(np.ones_like(y), cache)
    assert y.dtype == dx.dtype == dfill.dtype == np.float32
    y, cache = F.late_fusion(x.reshape(3, 2, 2), np.zeros(2, np.float32))
    assert all(g.dtype == np.float32 for g in F.late_fusion_backward(np.ones_like(y), cache))


def test_torch_parity(rng):
    torch = pytest.importorskip("torch")
    logps, w = F.log_softmax(rng.standard_normal((4, 2, 5)))[0], rng.standard_normal(2)
    ha, hb, z = rng.standard_normal((4, 3)), rng.standard_normal((4, 3)), rng.random((4, 3))
    y, c1 = F.late_fusion(logps, w)
    h, c2 = F.gated_fusion(ha, hb, z)
    dy, dh = rng.standard_normal(y.shape), rng.standard_normal(h.shape)
    mine = F.late_fusion_backward(dy, c1) + F.gated_fusion_backward(dh, c2)
    t = [torch.tensor(a, requires_grad=True) for a in (logps, w, ha, hb, z)]
    ty = (torch.softmax(t[1], 0)[None, :, None] * t[0]).sum(1)
    th = t[4] * t[2] + (1 - t[4]) * t[3]
    (ty * torch.tensor(dy)).sum().add((th * torch.tensor(dh)).sum()).backward()
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(h, th.detach().numpy(), rtol=1e-12)
    for g, tt in zip(mine, t):
        np.testing.assert_allclose(g, tt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_errors_name_the_op(rng):
    a = rng.standard_normal((3, 4))
    with pytest.raises(ValueError, match=r"concat_fusion: expected a \(N, F_a\) and b \(N, F_b\)"):
        F.concat_fusion(a, rng.standard_normal((2, 4)))
    with pytest.raises(ValueError, match=r"concat_fusion: expected b to be 2-D"):
        F.concat_fusion(a, rng.standard_normal((3, 4, 1)))
    with pytest.raises(ValueError, match=r"late_fusion: expected w of shape \(2,\)"):
        F.late_fusion(rng.standard_normal((3, 2, 4)), np.zeros(3))
    with pytest.raises(ValueError, match=r"gated_fusion: expected ha, hb and z of one shape"):
        F.gated_fusion(a, a, rng.random((3, 5)))
    with pytest.raises(ValueError, match=r"modality_dropout: expected mask of shape \(3,\)"):
        F.modality_dropout(a, np.zeros(4), mask=np.ones(4))
    with pytest.raises(ValueError, match=r"modality_dropout: fill of shape \(5,\) does not broadcast"):
        F.modality_dropout(a, np.zeros(5), mask=np.ones(3))
    with pytest.raises(TypeError, match=r"late_fusion: all float inputs must share one dtype"):
        F.late_fusion(rng.standard_normal((3, 2, 4)), np.zeros(2, np.float32))
