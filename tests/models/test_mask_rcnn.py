"""Mask R-CNN: the mask head, the whole network and its training loss with a fixed sampling and
fixed masks (gradient checks, float64); mask targets, paste-back and the mask metric on hand cases;
flips that move the masks; overfitting one scene; wrong inputs."""
import numpy as np
import pytest

from scratchnet.gradcheck import assert_module_gradients
from scratchnet.gradcheck.cases.mask_rcnn import (
    MaskLossWithSampling,
    mask_head_case,
    mask_rcnn_case,
    mask_rcnn_loss_case,
    off_kinks,
    roi_align_cases,
    tiny_mask_model,
    tiny_masks,
)
from scratchnet.gradcheck.cases.rcnn import ROIS, WithRois, tiny_scene
from scratchnet.models.mask_rcnn import MaskHead, MaskRCNN, mask_targets, paste_masks
from scratchnet.models.mask_rcnn_train import flip_with_masks, mask_iou, mask_iou_score
from scratchnet.optim import Adam


def test_registered_cases_pass():
    for rep in [mask_head_case(), *mask_rcnn_case(), *mask_rcnn_loss_case()] + roi_align_cases():
        assert rep.ok, str(rep)


@pytest.mark.parametrize("S,convs", [(2, 1), (4, 3)])
def test_mask_head_gradcheck_and_shape(rng, S, convs):
    head = off_kinks(MaskHead(2, 2, spatial_scale=0.5, roi_size=S, channels=2, num_convs=convs, rng=rng,
                              dtype=np.float64))
    x = rng.standard_normal((2, 2, 5, 4))
    assert head(x, ROIS).shape == (3, 2, 2 * S, 2 * S)
    head.clear_caches()
    assert_module_gradients(WithRois(head, ROIS), x)


def test_whole_loss_gradcheck_eval_mode_other_scene():
    x, boxes, labels = tiny_scene(5)
    model = tiny_mask_model(seed=9)
    for bn in [m for m in model.modules() if hasattr(m, "running_var")]:
        bn.running_var[...] = 1.5
    model.eval()
    masks = [tiny_masks(b, seed=10 + k) for k, b in enumerate(boxes)]
    assert_module_gradients(MaskLossWithSampling(model, x, boxes, labels, masks), x, fast=True)


def test_mask_targets_hand_cases():
    m = np.zeros((2, 8, 8), bool)
    m[0, 2:6, 2:6] = True  # a 4×4 square
    m[1, :, :4] = True  # the left half
    boxes = np.array([[2, 2, 6, 6], [0, 0, 8, 8], [0, 0, 8, 8]], np.float32)
    t = mask_targets(m, boxes, np.array([0, 0, 1]), 4)
    assert t.shape == (3, 4, 4) and t.dtype == np.float32
    np.testing.assert_array_equal(t[0], np.ones((4, 4)))  # the box is the square: all ink
    square = np.zeros((4, 4))
    square[1:3, 1:3] = 1
    np.testing.assert_array_equal(t[1], square)  # the whole image at 2 px per cell
    np.testing.assert_array_equal(t[2], np.repeat([[1, 1, 0, 0]], 4, axis=0))  # the second mask: matched = 1
    assert mask_targets(m, np.zeros((0, 4)), np.zeros(0, np.int64), 4).shape == (0, 4, 4)


def test_paste_back_inverts_the_targets(rng):
    probs = np.ones((1, 4, 4))
    pasted = paste_masks(probs, np.array([[2.0, 2.0, 6.0, 6.0]]), (8, 8))
    want = np.zeros((8, 8), bool)
    want[2:6, 2:6] = True
    np.testing.assert_array_equal(pasted[0], want)  # pixel centres inside the box only
    pattern = rng.random((4, 4)) < 0.5  # 2×2-pixel blocks: exactly representable at M = 4
    mask = np.zeros((1, 12, 12), bool)
    mask[0, 2:10, 3:11] = np.kron(pattern, np.ones((2, 2), bool))
    box = np.array([[3.0, 2.0, 11.0, 10.0]])
    t = mask_targets(mask, box, np.array([0]), 4, dtype=np.float64)
    np.testing.assert_array_equal(t[0], pattern)
    np.testing.assert_array_equal(paste_masks(t, box, (12, 12))[0], mask[0])
    assert paste_masks(np.zeros((0, 4, 4)), np.zeros((0, 4)), (5, 6)).shape == (0, 5, 6)


def test_mask_metric_hand_cases():
    gm = np.zeros((2, 10, 10), bool)
    gm[0, 0:4, 0:4] = True  # 16 pixels
    gm[1, 5:9, 5:9] = True
    gb, gl = np.array([[0, 0, 4, 4], [5, 5, 9, 9]], np.float64), np.array([1, 2])
    pm = np.zeros((3, 10, 10), bool)
    pm[0, 0:4, 0:2] = True  # IoU 8/16 with gt 0
    pm[1, 0:4, 0:4] = True  # a perfect mask, but a lower score: not the one taken
    pm[2, 5:9, 5:9] = True  # perfect, but the wrong class for gt 1
    det = (np.array([[0, 0, 4, 4], [0, 0, 4, 4.2], [5, 5, 9, 9]]), np.array([0.9, 0.8, 0.95]),
           np.array([1, 1, 0]), pm)
    res = mask_iou_score([det], [gb], [gl], [gm])
    np.testing.assert_allclose(res["per_instance"], [0.5, 0.0])
    assert res["mask_iou"] == pytest.approx(0.25) and res["mask_iou_detected"] == pytest.approx(0.5)
    assert res["detected"] == pytest.approx(0.5)
    assert mask_iou(gm[0], gm[0]) == 1.0 and mask_iou(gm[0], gm[1]) == 0.0
    empty = (np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64), np.zeros((0, 10, 10), bool))
    assert mask_iou_score([empty], [gb], [gl], [gm])["mask_iou"] == 0.0


def test_flip_with_masks_moves_everything_together(rng):
    x = np.zeros((1, 1, 6, 8), np.float32)
    x[0, 0, 1:3, 1:4] = 1
    masks = [x[0, :, :, :] > 0]
    boxes = [np.array([[1, 1, 4, 3]], np.float32)]
    for _ in range(4):
        xf, bf, mf = flip_with_masks(x, boxes, masks, rng)
        x1, y1, x2, y2 = bf[0][0].astype(int)
        assert xf[0, 0, y1:y2, x1:x2].all() and np.array_equal(mf[0][0], xf[0, 0] > 0)
    assert boxes[0][0, 0] == 1 and masks[0][0, 1, 1]  # inputs untouched


def test_overfit_one_scene():
    x = np.zeros((1, 1, 32, 32), np.float32)
    masks = np.zeros((2, 32, 32), bool)
    masks[0, 4:16, 6:14], masks[0, 7:13, 9:11] = True, False  # a ring: class 0
    masks[1, 18:28, 16:30], masks[1, 18:23, 16:23] = True, False  # an L: class 1
    x[0, 0][masks[0]], x[0, 0][masks[1]] = 1.0, 0.6
    boxes, labels = [np.array([[6, 4, 14, 16], [16, 18, 30, 28]], np.float32)], [np.array([0, 1])]
    model = MaskRCNN(2, widths=(8, 16, 16), anchor_sizes=(8.0, 12.0), anchor_ratios=(0.5, 1.0, 2.0), pool_size=4,
                     hidden=32, rpn_batch=64, roi_batch=16, mask_size=16, mask_channels=16, mask_convs=1, rng=1)
    opt, rng, parts = Adam(model.parameters(), lr=3e-3), np.random.default_rng(0), []
    for _ in range(120):
        model.loss(x, boxes, labels, rng=rng, extra=[masks])
        parts.append(dict(model.parts))
        opt.zero_grad()
        model.backward_loss()
        opt.step()
    box, mask = [p["head_cls"] + p["head_reg"] for p in parts], [p["mask"] for p in parts]
    assert np.mean(box[-20:]) < 0.5 * np.mean(box[:5])  # the regions sampled vary: means over a few steps
    assert np.mean(mask[-20:]) < 0.5 * np.mean(mask[:5])
    dets = model.predict(x, masks=True, score_threshold=0.5)
    assert dets[0][3].shape[1:] == (32, 32) and dets[0][3].dtype == bool
    res = mask_iou_score(dets, boxes, labels, [masks])
    assert res["detected"] == 1.0 and res["mask_iou"] > 0.6, res


def test_predict_without_masks_is_faster_rcnns(rng):
    model = tiny_mask_model()
    x, _, _ = tiny_scene()
    plain = model.predict(x, score_threshold=0.0)
    full = model.predict(x, score_threshold=0.0, masks=True)
    for p, f in zip(plain, full):
        assert len(p) == 3 and len(f) == 4 and f[3].shape == (len(p[0]), 8, 8)
        np.testing.assert_array_equal(p[0], f[0])
    boxes, labels = [f[0] for f in full], [f[2] for f in full]
    whole, one_by_one = model.predict_masks(x, boxes, labels), model.predict_masks(x, boxes, labels, roi_chunk=1)
    for a, b in zip(whole, one_by_one):
        np.testing.assert_allclose(a, b, atol=1e-12)  # chunking the regions changes nothing


def test_wrong_inputs():
    x, boxes, labels = tiny_scene()
    model = tiny_mask_model()
    with pytest.raises(ValueError, match="MaskRCNN: mask_size must be an even number"):
        MaskRCNN(3, mask_size=7)
    with pytest.raises(ValueError, match="MaskRCNN.loss: extra must hold one bool mask array"):
        model.loss(x, boxes, labels, rng=0)
    with pytest.raises(ValueError, match=r"MaskRCNN.loss: image 1's masks must be \(k, 8, 8\)"):
        model.loss(x, boxes, labels, rng=0, extra=[tiny_masks(boxes[0]), np.zeros((1, 4, 4), bool)])
    with pytest.raises(ValueError, match="mask_targets: expected gt_masks"):
        mask_targets(np.zeros((8, 8), bool), np.zeros((1, 4)), np.zeros(1, np.int64), 4)
    with pytest.raises(ValueError, match="MaskHead: need num_convs"):
        MaskHead(2, 2, spatial_scale=1.0, num_convs=0)
    with pytest.raises(RuntimeError, match="no cached forward pass"):
        tiny_mask_model().backward_loss()


def test_mask_stage_taps_a_finer_map_and_keeps_parameter_names():
    from scratchnet.gradcheck.cases.mask_rcnn import tiny_mask_model
    from scratchnet.models.mask_rcnn import TappedBackbone

    last, tapped = tiny_mask_model(), tiny_mask_model(mask_stage=0)
    assert isinstance(tapped.backbone, TappedBackbone) and not isinstance(last.backbone, TappedBackbone)
    assert tapped.mask_head.spatial_scale == 1.0 and last.mask_head.spatial_scale == 0.5
    assert [k for k in tapped.state_dict() if k.startswith("backbone")] == \
        [k for k in last.state_dict() if k.startswith("backbone")]
    assert tapped.config()["mask_stage"] == 0 and last.config()["mask_stage"] == 1
    with pytest.raises(ValueError, match="mask_stage"):
        tiny_mask_model(mask_stage=2)
