"""Box geometry of scratchnet.boxes: hand-computed IoU and box codes, NMS against a brute-force loop,
anchors and the RPN sampler, on NumPy (and CuPy when a GPU is present)."""
import math

import numpy as np
import pytest

from scratchnet import boxes as B


def _brute_nms(b, s, thr):
    """The textbook loop: visit by descending score, keep a box unless a kept one overlaps it > thr."""
    keep = []
    for i in sorted(range(len(s)), key=lambda k: (-s[k], k)):
        if all(B.box_iou(b[i:i + 1], b[j:j + 1])[0, 0] <= thr for j in keep):
            keep.append(i)
    return keep


def _random_boxes(rng, n, size=50.0):
    xy = rng.uniform(0, size, (n, 2))
    wh = rng.uniform(2, size / 2, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1)  # (n, 4)


def test_area_and_iou_by_hand(xp):
    a = xp.asarray([[0.0, 0, 10, 10], [5, 5, 15, 15], [20, 20, 20, 30]])  # the last has zero area
    b = xp.asarray([[0.0, 0, 10, 10], [0, 0, 5, 20]])
    np.testing.assert_allclose(B.box_area(a).tolist(), [100, 100, 0])
    iou = B.box_iou(a, b)
    assert iou.shape == (3, 2)
    # [5,5,15,15] ∩ [0,0,10,10] = 25, union 175; [0,0,10,10] ∩ [0,0,5,20] = 50, union 150;
    # [5,5,15,15] and [0,0,5,20] only touch
    np.testing.assert_allclose(iou.tolist(), [[1, 50 / 150], [25 / 175, 0], [0, 0]])
    assert B.box_iou(a[2:], a[2:]).tolist() == [[0.0]]  # an empty union gives 0, not nan
    assert B.box_iou(a[:0], b).shape == (0, 2)


def test_iou_float32_stays_float32():
    a = np.array([[0, 0, 4, 4]], np.float32)
    assert B.box_iou(a, a).dtype == np.float32


def test_encode_by_hand_and_decode_inverts(rng):
    anchors = np.array([[0.0, 0, 10, 20]])  # centre (5, 10), size 10 × 20
    box = np.array([[2.0, 4, 22, 14]])  # centre (12, 9), size 20 × 10
    d = B.encode_boxes(box, anchors)
    np.testing.assert_allclose(d, [[0.7, -0.05, math.log(2), math.log(0.5)]])
    np.testing.assert_allclose(B.encode_boxes(box, anchors, (10.0, 10.0, 5.0, 5.0)), d * [10, 10, 5, 5])
    a, g = _random_boxes(rng, 20), _random_boxes(rng, 20)
    for w in [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)]:
        np.testing.assert_allclose(B.decode_boxes(B.encode_boxes(g, a, w), a, w), g, rtol=1e-12, atol=1e-9)


def test_decode_clamps_the_log_size_and_clips():
    anchors = np.array([[0.0, 0, 16, 16]])
    out = B.decode_boxes(np.array([[0.0, 0, 50.0, -1.0]]), anchors)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[0, 2] - out[0, 0], 1000.0)  # exp(log(1000/16)) · 16
    clipped = B.decode_boxes(np.array([[0.0, 0, 50.0, 0]]), anchors, clip_hw=(30, 40))
    np.testing.assert_allclose(clipped, [[0, 0, 40, 16]])
    np.testing.assert_allclose(B.clip_boxes(np.array([[-5.0, -1, 50, 20]]), (10, 40)), [[0, 0, 40, 10]])


def test_nms_by_hand():
    b = np.array([[0.0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]])
    s = np.array([0.9, 0.8, 0.7, 0.95])
    keep = B.nms(b, s, 0.5)
    assert keep.dtype == np.int64 and keep.tolist() == [3, 2]  # 0 and 1 overlap box 3 by > 0.5
    assert B.nms(b, s, 0.9).tolist() == [3, 0, 1, 2]
    assert B.nms(b[:0], s[:0], 0.5).tolist() == []


@pytest.mark.parametrize("thr", [0.0, 0.3, 0.7])
def test_nms_matches_the_brute_force_loop(thr, rng):
    b = _random_boxes(rng, 60)
    s = rng.random(60).round(2)  # some ties: the earlier index wins, as torchvision
    assert B.nms(b, s, thr).tolist() == _brute_nms(b, s, thr)


def test_nms_on_xp(xp, rng):
    b, s = _random_boxes(rng, 30), rng.random(30)
    keep = B.nms(xp.asarray(b), xp.asarray(s), 0.5)
    assert type(keep) is type(xp.asarray(b)) and keep.tolist() == _brute_nms(b, s, 0.5)


def test_batched_nms_keeps_classes_apart(rng):
    b, s = _random_boxes(rng, 50), rng.random(50)
    labels = rng.integers(0, 3, 50)
    keep = B.batched_nms(b, s, labels, 0.4)
    want = [k for c in range(3) for k in np.flatnonzero(labels == c)[_brute_nms(b[labels == c], s[labels == c], 0.4)]]
    assert sorted(keep.tolist()) == sorted(want)
    assert list(s[keep]) == sorted(s[keep], reverse=True)  # by descending score
    same = np.array([[0.0, 0, 10, 10], [0, 0, 10, 10]])
    assert B.batched_nms(same, np.array([0.5, 0.6]), np.array([0, 1]), 0.5).tolist() == [1, 0]
    assert B.batched_nms(same[:0], np.zeros(0), np.zeros(0, int), 0.5).tolist() == []


def test_make_anchors_layout():
    a = B.make_anchors((2, 3), 16, sizes=(32, 64), ratios=(0.5, 1.0, 2.0))
    assert a.shape == (2 * 3 * 6, 4) and a.dtype == np.float32
    a = a.reshape(2, 3, 3, 2, 4)  # rows, columns, ratios, sizes
    cx, cy = (a[..., 0] + a[..., 2]) / 2, (a[..., 1] + a[..., 3]) / 2
    np.testing.assert_allclose(cx[0, :, 0, 0], [8, 24, 40])
    np.testing.assert_allclose(cy[:, 0, 0, 0], [8, 24])
    w, h = a[..., 2] - a[..., 0], a[..., 3] - a[..., 1]
    np.testing.assert_allclose(w * h, np.broadcast_to(np.array([32.0, 64]) ** 2, w.shape), rtol=1e-5)
    np.testing.assert_allclose((h / w)[0, 0, :, 0], [0.5, 1, 2], rtol=1e-5)


def test_sample_anchors_rules():
    ious = np.array([[0.9, 0.0], [0.5, 0.1], [0.1, 0.2], [0.0, 0.25], [0.75, 0.0], [0.2, 0.0]])
    labels, matched = B.sample_anchors(ious, rng=0)
    # ≥ 0.7 positive; gt 1's best anchor (row 3, IoU 0.25) positive although below 0.7; < 0.3 negative
    assert labels.tolist() == [1, -1, 0, 1, 1, 0] and labels.dtype == np.int64
    assert matched.tolist() == [0, 0, 1, 1, 0, 0]
    ties = np.array([[0.4], [0.4], [0.1]])  # both anchors tying a gt's best IoU become positive
    assert B.sample_anchors(ties, rng=0)[0].tolist() == [1, 1, 0]
    labels, matched = B.sample_anchors(np.zeros((4, 0)), rng=0)
    assert labels.tolist() == [0, 0, 0, 0] and matched.tolist() == [0, 0, 0, 0]


def test_sample_anchors_subsamples_deterministically(rng):
    ious = rng.random((2000, 5)) ** 3
    labels, _ = B.sample_anchors(ious, batch=64, pos_fraction=0.25, rng=np.random.default_rng(3))
    assert (labels == 1).sum() == 16 and (labels == 0).sum() == 48
    again, _ = B.sample_anchors(ious, batch=64, pos_fraction=0.25, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(labels, again)
    few = np.full((10, 1), 0.8)  # too few negatives: the batch is not filled
    assert B.sample_anchors(few, batch=8, rng=0)[0].tolist().count(1) == 4


def test_errors():
    with pytest.raises(ValueError, match=r"box_iou: expected a of shape \(N, 4\)"):
        B.box_iou(np.zeros((3, 5)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="encode_boxes: boxes"):
        B.encode_boxes(np.ones((3, 4)), np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"nms: expected scores of shape \(2,\)"):
        B.nms(np.zeros((2, 4)), np.zeros(3), 0.5)
    with pytest.raises(ValueError, match="sample_anchors: expected ious of shape"):
        B.sample_anchors(np.zeros(3))
