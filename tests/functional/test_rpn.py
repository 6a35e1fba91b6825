"""The RPN loss and the Fast R-CNN head loss: gradient checks with a fixed sampling (and each option),
the normalisations written out by hand, PyTorch parity, and wrong inputs."""
import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.gradcheck import assert_gradients
from scratchnet.gradcheck.cases.rcnn import fast_rcnn_loss_cases, head_problem, rpn_loss_cases, rpn_problem


def test_registered_cases_pass():
    for rep in rpn_loss_cases() + fast_rcnn_loss_cases():
        assert rep.ok, str(rep)


@pytest.mark.parametrize("M,seed", [(5, 1), (30, 2)])
def test_rpn_loss_gradcheck_shapes(M, seed):
    assert_gradients(F.rpn_loss, F.rpn_loss_backward, rpn_problem(M, seed), wrt=[0, 1])


@pytest.mark.parametrize("R,K", [(3, 1), (12, 5)])
def test_fast_rcnn_loss_gradcheck_shapes(R, K):
    assert_gradients(F.fast_rcnn_loss, F.fast_rcnn_loss_backward, head_problem(R, K, seed=R), wrt=[0, 1])


def test_rpn_loss_by_hand():
    o, d, lab, t = rpn_problem()
    loss, cache = F.rpn_loss(o, d, lab, t, lambda_reg=10.0, n_reg=40, beta=1.0)
    s, p = lab >= 0, lab == 1
    bce = np.logaddexp(0, o) - o * p  # −[p log σ(o) + (1 − p) log(1 − σ(o))]
    a = np.abs(d - t)
    sl1 = np.where(a < 1, 0.5 * a * a, a - 0.5)
    expected = bce[s].sum() / s.sum() + 10.0 / 40 * sl1[p].sum()
    np.testing.assert_allclose(loss, expected, rtol=1e-12)
    assert set(cache.parts) == {"rpn_cls", "rpn_reg"}
    do, dd = F.rpn_loss_backward(1.0, cache)
    assert np.all(do[~s] == 0) and np.all(dd[~p] == 0)  # ignored anchors and non-positives get nothing


def test_fast_rcnn_loss_by_hand_only_the_true_class_regresses():
    s, d, lab, t = head_problem()
    loss, cache = F.fast_rcnn_loss(s, d, lab, t)
    logp = s - np.log(np.exp(s).sum(1, keepdims=True))
    fg = lab >= 1
    a = np.abs(np.stack([d[r, 4 * lab[r]:4 * lab[r] + 4] for r in range(len(lab))]) - t)
    sl1 = np.where(a < 1, 0.5 * a * a, a - 0.5)
    expected = (-logp[np.arange(len(lab)), lab].sum() + sl1[fg].sum()) / len(lab)
    np.testing.assert_allclose(loss, expected, rtol=1e-12)
    _, dd = F.fast_rcnn_loss_backward(1.0, cache)
    dd = dd.reshape(len(lab), -1, 4)
    for r, u in enumerate(lab):
        others = np.delete(dd[r], u, axis=0)
        assert np.all(others == 0) and (u >= 1 or np.all(dd[r] == 0))


def test_torch_parity():
    torch = pytest.importorskip("torch")
    o, d, lab, t = rpn_problem(20, 5)
    s, p = lab >= 0, lab == 1
    ot, dt = torch.tensor(o, requires_grad=True), torch.tensor(d, requires_grad=True)
    ref = (torch.nn.functional.binary_cross_entropy_with_logits(ot[s], torch.tensor(p[s] * 1.0), reduction="sum")
           / s.sum() + torch.nn.functional.smooth_l1_loss(dt[p], torch.tensor(t[p]), beta=1 / 9, reduction="sum")
           / s.sum())
    ref.backward()
    loss, cache = F.rpn_loss(o, d, lab, t)
    do, dd = F.rpn_loss_backward(1.0, cache)
    np.testing.assert_allclose(loss, ref.item(), rtol=1e-10)
    np.testing.assert_allclose(do, ot.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(dd, dt.grad.numpy(), atol=1e-12)


def test_wrong_inputs():
    o, d, lab, t = rpn_problem()
    with pytest.raises(ValueError, match="rpn_loss: expected objectness"):
        F.rpn_loss(o, d[:-1], lab, t)
    with pytest.raises(TypeError, match="rpn_loss: expected labels to be an integer array"):
        F.rpn_loss(o, d, lab * 1.0, t)
    s, dh, lh, th = head_problem()
    with pytest.raises(ValueError, match=r"fast_rcnn_loss: expected scores \(7, ...\), deltas \(7, 16\)"):
        F.fast_rcnn_loss(s, dh[:, :12], lh, th)
    with pytest.raises(ValueError, match="fast_rcnn_loss: expected scores"):
        F.fast_rcnn_loss(s[0], dh, lh, th)
    _, cache = F.fast_rcnn_loss(s, dh, lh, th)
    with pytest.raises(ValueError, match="fast_rcnn_loss_backward"):
        F.fast_rcnn_loss_backward(np.ones(3), cache)
