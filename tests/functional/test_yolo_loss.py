"""YOLO v1 loss: grid targets, IoU, the responsible predictor, gradient checks (B, grids, λ), the
IoU-as-a-constant convention, hand-computed values, wrong inputs and PyTorch parity."""
import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.gradcheck import assert_gradients
from scratchnet.gradcheck.cases.yolo import yolo_problem


@pytest.mark.parametrize("S,B,K", [((3, 3), 2, 3), ((3, 3), 1, 2), ((2, 4), 3, 4), ((4, 3), 2, 1)])
def test_loss_gradcheck(S, B, K):
    pred, target, iou = yolo_problem(S=S, B=B, K=K)
    assert_gradients(F.yolo_v1_loss, F.yolo_v1_loss_backward, [pred, target], wrt=[0], B=B, iou=iou)


@pytest.mark.parametrize("lambda_coord,lambda_noobj", [(5.0, 0.5), (1.0, 1.0), (0.0, 2.0)])
def test_loss_gradcheck_lambdas_and_an_empty_image(lambda_coord, lambda_noobj):
    pred, target, iou = yolo_problem(empty=True)
    assert target[0, ..., 4].sum() == 0
    assert_gradients(F.yolo_v1_loss, F.yolo_v1_loss_backward, [pred, target], wrt=[0], iou=iou,
                     lambda_coord=lambda_coord, lambda_noobj=lambda_noobj)


def test_default_iou_is_the_forward_boxes_iou_used_as_a_constant():
    pred, target, iou = yolo_problem()
    loss, cache = F.yolo_v1_loss(pred, target)
    loss_c, cache_c = F.yolo_v1_loss(pred, target, iou=iou)
    assert loss == loss_c
    np.testing.assert_array_equal(F.yolo_v1_loss_backward(1.0, cache), F.yolo_v1_loss_backward(1.0, cache_c))
    # the responsible predictor is the argmax of the IoU, in object cells only
    obj = target[..., 4] > 0
    np.testing.assert_array_equal(cache.resp[obj].argmax(-1), iou[obj].argmax(-1))
    assert cache.resp[~obj].sum() == 0 and np.all(cache.resp[obj].sum(-1) == 1)


def test_swapping_the_predictors_swaps_the_responsible_one():
    pred, target, _ = yolo_problem()
    swapped = pred.copy()
    swapped[..., 0:5], swapped[..., 5:10] = pred[..., 5:10], pred[..., 0:5]
    (l1, c1), (l2, c2) = F.yolo_v1_loss(pred, target), F.yolo_v1_loss(swapped, target)
    np.testing.assert_allclose(l1, l2, rtol=1e-12)
    np.testing.assert_array_equal(c1.resp, c2.resp[..., ::-1])


def test_targets_cells_offsets_and_one_hot():
    boxes = [np.array([[0., 0, 16, 8], [40, 20, 48, 44]]), np.zeros((0, 4))]
    labels = [np.array([2, 0]), np.zeros(0, int)]
    t = F.yolo_targets(boxes, labels, (3, 4), (48, 64), num_classes=3)
    assert t.shape == (2, 3, 4, 8) and t.dtype == np.float32 and t[1].sum() == 0
    # box 0: centre (8, 4) px → column 8/16 = 0.5 → cell (0, 0), offsets (0.5, 0.25), size (1/4, 1/6)
    np.testing.assert_allclose(t[0, 0, 0], [0.5, 0.25, 0.25, 8 / 48, 1, 0, 0, 1], rtol=1e-6)
    # box 1: centre (44, 32) → column 2.75, row 2.0 → cell (2, 2)
    np.testing.assert_allclose(t[0, 2, 2], [0.75, 0.0, 0.125, 0.5, 1, 1, 0, 0], rtol=1e-6)
    assert t[0, ..., 4].sum() == 2


def test_two_centres_in_one_cell_the_larger_box_keeps_it():
    boxes = [np.array([[0., 0, 30, 30], [4, 4, 10, 10]]), np.array([[4., 4, 10, 10], [0, 0, 30, 30]])]
    labels = [np.array([1, 0]), np.array([0, 1])]
    t = F.yolo_targets(boxes, labels, 1, (32, 32), num_classes=2)
    for n in range(2):
        np.testing.assert_allclose(t[n, 0, 0, 2:], [30 / 32, 30 / 32, 1, 0, 1])


def test_iou_matches_a_direct_pixel_computation():
    pred, target, iou = yolo_problem(S=(2, 4), B=2)
    H, W = 32, 64
    n, i, j = np.argwhere(target[..., 4] > 0)[0]

    def px(v):  # cell-relative (x, y, w, h) → pixel corners
        cx, cy = (j + v[0]) / 4 * W, (i + v[1]) / 2 * H
        return np.array([cx - v[2] * W / 2, cy - v[3] * H / 2, cx + v[2] * W / 2, cy + v[3] * H / 2])

    tb = px(target[n, i, j, :4])
    for b in range(2):
        pb = px(pred[n, i, j, 5 * b:5 * b + 4])
        iw = max(0, min(pb[2], tb[2]) - max(pb[0], tb[0]))
        ih = max(0, min(pb[3], tb[3]) - max(pb[1], tb[1]))
        inter = iw * ih
        union = np.prod(pb[2:] - pb[:2]) + np.prod(tb[2:] - tb[:2]) - inter
        np.testing.assert_allclose(iou[n, i, j, b], inter / union, rtol=1e-10)


def test_loss_by_hand_one_cell():
    """B = 1, K = 2, one cell holding an object: every term written out."""
    target = np.array([[[[0.5, 0.5, 0.25, 0.36, 1.0, 0.0, 1.0]]]])
    pred = np.array([[[[0.6, 0.4, 0.16, 0.49, 0.7, 0.3, 0.7]]]])
    iou = np.array([[[[0.4]]]])
    loss, cache = F.yolo_v1_loss(pred, target, B=1, iou=iou)
    coord = 5 * (0.1 ** 2 + 0.1 ** 2)
    size = 5 * ((0.4 - 0.5) ** 2 + (0.7 - 0.6) ** 2)
    want = coord + size + (0.7 - 0.4) ** 2 + 2 * 0.3 ** 2
    np.testing.assert_allclose(loss, want, rtol=1e-12)
    dpred = F.yolo_v1_loss_backward(1.0, cache)[0, 0, 0]
    np.testing.assert_allclose(dpred, [10 * 0.1, -10 * 0.1, 5 * (0.4 - 0.5) / 0.4, 5 * (0.7 - 0.6) / 0.7,
                                       2 * 0.3, 0.6, -0.6], rtol=1e-12)
    assert set(cache.parts) == {"coord", "size", "obj", "noobj", "class"}


def test_empty_cells_only_push_the_confidence_down():
    pred, target, _ = yolo_problem()
    target = np.zeros_like(target)
    loss, cache = F.yolo_v1_loss(pred, target)
    np.testing.assert_allclose(loss, 0.5 * (pred[..., [4, 9]] ** 2).sum() / 2, rtol=1e-12)
    d = F.yolo_v1_loss_backward(1.0, cache)
    np.testing.assert_allclose(d[..., [4, 9]], 0.5 * pred[..., [4, 9]])
    assert np.count_nonzero(np.delete(d, [4, 9], axis=-1)) == 0


def test_float32_stays_float32():
    pred, target, _ = yolo_problem()
    loss, cache = F.yolo_v1_loss(pred.astype(np.float32), target.astype(np.float32))
    assert loss.dtype == np.float32 and F.yolo_v1_loss_backward(1.0, cache).dtype == np.float32


def test_wrong_inputs():
    pred, target, iou = yolo_problem()
    with pytest.raises(ValueError, match=r"yolo_v1_loss: expected pred \(N, S_y, S_x, 5B \+ K\)"):
        F.yolo_v1_loss(pred[..., :10], target[..., :5])
    with pytest.raises(ValueError, match=r"yolo_v1_loss: expected target of shape \(2, 3, 3, 8\)"):
        F.yolo_v1_loss(pred, target[..., :7])
    with pytest.raises(ValueError, match="yolo_v1_loss: expected iou of shape"):
        F.yolo_v1_loss(pred, target, iou=iou[..., :1])
    with pytest.raises(TypeError, match="yolo_v1_loss: all float inputs must share one dtype"):
        F.yolo_v1_loss(pred.astype(np.float32), target)
    bad = pred.copy()
    bad[0, 0, 0, 2] = -0.1
    with pytest.raises(ValueError, match="yolo_v1_loss: predicted w and h must be >= 0"):
        F.yolo_v1_loss(bad, target)
    with pytest.raises(ValueError, match=r"yolo_targets: labels must lie in \[0, 3\)"):
        F.yolo_targets([np.zeros((1, 4))], [np.array([3])], 2, (8, 8), num_classes=3)
    with pytest.raises(ValueError, match="yolo_targets: image 0 has 1 boxes but 2 labels"):
        F.yolo_targets([np.zeros((1, 4))], [np.array([0, 1])], 2, (8, 8), num_classes=3)
    _, cache = F.yolo_v1_loss(pred, target)
    with pytest.raises(ValueError, match="yolo_v1_loss_backward"):
        F.yolo_v1_loss_backward(np.ones(2), cache)


def test_matches_pytorch_with_the_iou_detached():
    torch = pytest.importorskip("torch")
    B, K = 2, 3
    pred, target, _ = yolo_problem(B=B, K=K, S=(3, 4))
    p = torch.tensor(pred, requires_grad=True)
    t = torch.tensor(target)
    N, sy, sx, _ = pred.shape
    bx = p[..., :5 * B].reshape(N, sy, sx, B, 5)
    col, row = torch.arange(sx, dtype=p.dtype).view(1, sx, 1), torch.arange(sy, dtype=p.dtype).view(sy, 1, 1)

    def corners(v):
        cx, cy = (col + v[..., 0]) / sx, (row + v[..., 1]) / sy
        return cx - v[..., 2] / 2, cy - v[..., 3] / 2, cx + v[..., 2] / 2, cy + v[..., 3] / 2

    with torch.no_grad():  # the IoU is a target: detached
        a, g = corners(bx), corners(t[..., None, :4].expand(N, sy, sx, B, 4))
        iw = (torch.minimum(a[2], g[2]) - torch.maximum(a[0], g[0])).clamp(min=0)
        ih = (torch.minimum(a[3], g[3]) - torch.maximum(a[1], g[1])).clamp(min=0)
        inter = iw * ih
        iou = inter / ((a[2] - a[0]) * (a[3] - a[1]) + (g[2] - g[0]) * (g[3] - g[1]) - inter)
        obj = t[..., 4]
        resp = torch.nn.functional.one_hot(iou.argmax(-1), B) * obj[..., None]
    tt = t[..., None, :4]
    loss = (5 * (resp * ((bx[..., 0] - tt[..., 0]) ** 2 + (bx[..., 1] - tt[..., 1]) ** 2)).sum()
            + 5 * (resp * ((bx[..., 2].sqrt() - tt[..., 2].sqrt()) ** 2
                           + (bx[..., 3].sqrt() - tt[..., 3].sqrt()) ** 2)).sum()
            + (resp * (bx[..., 4] - iou) ** 2).sum() + 0.5 * ((1 - resp) * bx[..., 4] ** 2).sum()
            + (obj[..., None] * (p[..., 5 * B:] - t[..., 5:]) ** 2).sum()) / N
    loss.backward()
    ours, cache = F.yolo_v1_loss(pred, target, B=B)
    np.testing.assert_allclose(ours, loss.item(), rtol=1e-12)
    np.testing.assert_allclose(F.yolo_v1_loss_backward(1.0, cache), p.grad.numpy(), rtol=1e-10, atol=1e-12)
