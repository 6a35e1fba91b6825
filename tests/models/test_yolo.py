"""The YOLO detector: head and whole-model gradient checks (BN train/eval), shapes and strides,
decoding (pixels, thresholds, per-class NMS), the loss module, overfitting one scene, wrong inputs."""
import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.gradcheck import assert_module_gradients
from scratchnet.gradcheck.cases._blocks import eval_mode
from scratchnet.metrics import detection_map
from scratchnet.models.yolo import YOLO, YOLOHead, YOLOLoss, decode, evaluate_map, flip_batch, train_yolo
from scratchnet.testing import overfit_batch


@pytest.mark.parametrize("B,K,hw", [(2, 3, (3, 4)), (1, 1, (2, 2)), (3, 2, (2, 3))])
def test_head_gradcheck(rng, B, K, hw):
    head = YOLOHead(4, K, B, rng=rng, dtype=np.float64)
    assert_module_gradients(head, rng.standard_normal((2, 4) + hw))


@pytest.mark.parametrize("training", [True, False])
def test_tiny_model_gradcheck(rng, training):
    net = YOLO(3, in_channels=2, widths=(3, 4), rng=rng, dtype=np.float64)
    if not training:
        eval_mode(net, rng)
    assert_module_gradients(net, rng.standard_normal((2, 2, 8, 8)), fast=True)


def test_head_outputs_are_in_range_and_classes_sum_to_one(rng):
    head = YOLOHead(5, 4, 2, rng=rng)
    out = head(rng.standard_normal((3, 5, 4, 6)).astype(np.float32) * 10)
    assert out.shape == (3, 4, 6, 14) and out.dtype == np.float32
    assert np.all((out[..., :10] >= 0) & (out[..., :10] <= 1))
    np.testing.assert_allclose(out[..., 10:].sum(-1), 1, rtol=1e-5)
    with pytest.raises(ValueError, match="YOLOHead.backward"):
        head.backward(np.ones((3, 4, 6, 13), np.float32))


def test_shapes_strides_and_errors(rng):
    net = YOLO(10, widths=(4, 8, 8, 8), rng=rng)
    assert net.stride == 8
    assert net(np.zeros((2, 1, 64, 64), np.float32)).shape == (2, 8, 8, 20)
    wide = YOLO(3, in_channels=3, widths=(4, 4, 4), B=1, rng=rng)
    assert wide(np.zeros((1, 3, 16, 24), np.float32)).shape == (1, 4, 6, 8)
    with pytest.raises(ValueError, match=r"YOLO: expected input \(N, 1, H, W\) with H and W multiples of the "
                                         r"stride 8"):
        net(np.zeros((2, 1, 60, 64), np.float32))
    with pytest.raises(ValueError, match="YOLO: expected input"):
        net(np.zeros((2, 3, 64, 64), np.float32))
    assert net.config()["widths"] == [4, 8, 8, 8]


def test_confidence_starts_low(rng):
    out = YOLO(3, widths=(4, 8), rng=rng)(rng.standard_normal((2, 1, 8, 8)).astype(np.float32))
    assert out[..., [4, 9]].mean() < 0.25  # σ(−2) ≈ 0.12: most cells hold nothing


def test_decode_boxes_in_pixels_threshold_and_nms():
    out = np.zeros((1, 2, 2, 2 * 5 + 2), np.float32)  # a 2 × 2 grid on a 40 × 80 image
    out[0, 1, 0, 0:5] = [0.5, 0.5, 0.25, 0.5, 0.9]  # cell (1, 0): centre (20, 30), size 20 × 20
    out[0, 1, 0, 5:10] = [0.55, 0.5, 0.25, 0.5, 0.8]  # a near duplicate: suppressed by NMS
    out[0, 0, 1, 0:5] = [0.5, 0.5, 0.5, 0.5, 0.05]  # too weak once multiplied by p(class)
    out[..., 10:] = [0.25, 0.75]
    (boxes, scores, labels), = decode(out, img_hw=(40, 80), conf_threshold=0.1)
    np.testing.assert_allclose(boxes, [[10, 20, 30, 40], [10, 20, 30, 40]], atol=1e-5)
    np.testing.assert_allclose(scores, [0.9 * 0.75, 0.9 * 0.25], rtol=1e-6)
    np.testing.assert_array_equal(labels, [1, 0])  # one box per class survives
    (boxes, _, _), = decode(out, img_hw=(40, 80), conf_threshold=0.1, nms_iou=0.99)
    assert len(boxes) == 4
    (boxes, _, _), = decode(out, img_hw=(40, 80), conf_threshold=0.1, max_det=1)
    assert len(boxes) == 1
    (boxes, scores, _), = decode(out, img_hw=(40, 80), conf_threshold=0.1, nms_iou=0.99, pre_nms_top=2)
    np.testing.assert_allclose(scores, [0.9 * 0.75, 0.8 * 0.75], rtol=1e-6)  # the two best candidates only


def test_loss_module_matches_the_functional_pair(rng):
    from scratchnet.gradcheck.cases.yolo import yolo_problem
    pred, target, _ = yolo_problem()
    crit = YOLOLoss()
    loss = crit(pred, target)
    ref, cache = F.yolo_v1_loss(pred, target)
    assert loss == ref and crit.parts == cache.parts
    np.testing.assert_array_equal(crit.backward(), F.yolo_v1_loss_backward(1.0, cache))


def _scene():
    """One 32 × 32 image with three bright rectangles of two kinds (filled: class 0; outlined: 1)."""
    img = np.zeros((1, 1, 32, 32), np.float32)
    boxes = np.array([[2, 3, 12, 11], [18, 4, 30, 14], [6, 18, 20, 30]], np.float32)
    labels = np.array([0, 1, 0])
    for (x1, y1, x2, y2), lab in zip(boxes.astype(int), labels):
        img[0, 0, y1:y2, x1:x2] = 1.0
        if lab == 1:
            img[0, 0, y1 + 2:y2 - 2, x1 + 2:x2 - 2] = 0.0
    return img, boxes, labels


def test_overfit_one_scene():
    img, boxes, labels = _scene()
    target = F.yolo_targets([boxes], [labels], 4, (32, 32), num_classes=2)
    net = YOLO(2, widths=(8, 16, 16, 16), rng=0)
    loss = overfit_batch(net, YOLOLoss(), img, target, steps=150, lr=3e-3)
    assert loss < 0.05
    (b, s, lab), = net.predict(img, conf_threshold=0.3)
    res = detection_map([b], [s], [lab], [boxes], [labels], 2)
    assert res["map"] > 0.99, (b, s, lab)


def test_flip_batch_matches_targets_of_flipped_boxes():
    img, boxes, labels = _scene()
    boxes = boxes + np.float32(0.3)  # no centre on a cell line (there both cells would be right)
    x = np.concatenate([img] * 8)
    target = F.yolo_targets([boxes] * 8, [labels] * 8, (4, 4), (32, 32), num_classes=2)
    xf, tf = flip_batch(x, target, np.random.default_rng(0), vertical=True)
    for n in range(8):
        b = boxes.copy()
        if not np.array_equal(xf[n], x[n]):
            fh = np.array_equal(xf[n], x[n][..., ::-1]) or np.array_equal(xf[n], x[n][:, ::-1, ::-1])
            fv = np.array_equal(xf[n], x[n][:, ::-1]) or np.array_equal(xf[n], x[n][:, ::-1, ::-1])
            if fh:
                b[:, [0, 2]] = 32 - b[:, [2, 0]]
            if fv:
                b[:, [1, 3]] = 32 - b[:, [3, 1]]
        want = F.yolo_targets([b], [labels], (4, 4), (32, 32), num_classes=2)[0]
        np.testing.assert_allclose(tf[n], want, atol=1e-6)
    assert not np.array_equal(xf, x)


def test_train_yolo_restores_the_best_validation_epoch(rng):
    img, boxes, labels = _scene()
    target = F.yolo_targets([boxes] * 4, [labels] * 4, 4, (32, 32), num_classes=2)
    net = YOLO(2, widths=(4, 8, 8, 8), rng=0)
    hist = train_yolo(net, np.concatenate([img] * 4), target, (img, [boxes], [labels]), epochs=3, batch_size=2,
                      lr=1e-3, max_minutes=1, flips="h", rng=0, disable=True)
    assert hist["steps"] == 6 and len(hist["step_loss"]) == 6 and len(hist["val"]) == 3
    best = max(hist["val"], key=lambda v: v[1])
    assert hist["best_epoch"] == best[0]
    assert evaluate_map(net, img, [boxes], [labels])["map"] == best[1]
    hist = train_yolo(net, np.concatenate([img] * 4), target, (img, [boxes], [labels]), epochs=50, batch_size=2,
                      lr=1e-3, max_minutes=1e-6, rng=0, disable=True)
    assert hist["steps"] == 1 and len(hist["val"]) == 1  # the wall-clock cap stops the loop
