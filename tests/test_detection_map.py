"""Average precision and detection mAP (scratchnet.metrics) on hand-computed cases, and against
torchmetrics' MeanAveragePrecision where both must agree (when torchmetrics is installed)."""
import numpy as np
import pytest

from scratchnet.metrics import average_precision, detection_map

A = np.array([[0.0, 0, 10, 10]])
FAR = np.array([[50.0, 50, 60, 60]])


def _one(boxes, scores, labels, gts, gt_labels, **kw):
    return detection_map([np.asarray(boxes, float).reshape(-1, 4)], [np.asarray(scores, float)],
                         [np.asarray(labels)], [np.asarray(gts, float).reshape(-1, 4)], [np.asarray(gt_labels)],
                         **kw)


def test_average_precision_by_hand():
    assert average_precision([1.0], [1.0]) == 1.0
    assert average_precision([], []) == 0.0
    # recall 0.5 at precision 1, then recall 1 at precision 0.5: area 0.5·1 + 0.5·0.5
    assert average_precision([0.5, 0.5, 1.0], [1.0, 0.5, 2 / 3]) == pytest.approx(0.5 + 0.5 * 2 / 3)
    # the envelope: a later higher precision lifts the earlier points
    assert average_precision([0.25, 0.5], [0.5, 1.0]) == pytest.approx(0.5)
    # COCO: 101 recall levels; recall 0.5 at precision 1 covers levels 0 … 0.5 (51 of them)
    assert average_precision([0.5], [1.0], interpolation="coco101") == pytest.approx(51 / 101)
    with pytest.raises(ValueError, match="interpolation"):
        average_precision([1.0], [1.0], interpolation="voc07")


def test_detection_map_by_hand():
    """Two images, class 0 with 3 gts: TP (0.9), FP (0.8, another image's empty spot), TP (0.7),
    duplicate of the first gt (0.6) → precision 1, ½, ⅔, ½ at recall ⅓, ⅓, ⅔, ⅔; AP = ⅓ + ⅓·⅔."""
    gts = [np.array([[0.0, 0, 10, 10], [20, 20, 30, 30]]), np.array([[0.0, 0, 10, 10]])]
    pb = [np.array([[0.0, 0, 10, 10], [21, 21, 31, 31], [1, 1, 10, 10]]), np.array([[40.0, 40, 50, 50]])]
    ps = [np.array([0.9, 0.7, 0.6]), np.array([0.8])]
    out = detection_map(pb, ps, [np.zeros(3, int), np.zeros(1, int)], gts, [np.zeros(2, int), np.zeros(1, int)],
                        num_classes=2)
    np.testing.assert_allclose(out["precision"][0], [1, 0.5, 2 / 3, 0.5])
    np.testing.assert_allclose(out["recall"][0], [1 / 3, 1 / 3, 2 / 3, 2 / 3])
    assert out["ap"][0] == pytest.approx(1 / 3 + 2 / 9)
    assert np.isnan(out["ap"][1]) and out["map"] == pytest.approx(1 / 3 + 2 / 9)  # class 1: no gt, left out


def test_mean_over_classes_and_misses():
    out = _one([[0, 0, 10, 10], [50, 50, 60, 60]], [0.9, 0.8], [0, 1], [[0, 0, 10, 10], [0, 0, 5, 5]], [0, 1],
               num_classes=3)
    assert out["ap"][0] == 1.0 and out["ap"][1] == 0.0 and np.isnan(out["ap"][2])
    assert out["map"] == 0.5
    wrong_class = _one(A, [0.9], [1], A, [0], num_classes=2)
    assert wrong_class["ap"][0] == 0.0 and wrong_class["precision"][0].size == 0
    assert np.isnan(_one(A[:0], [], [], A[:0], [], num_classes=1)["map"])


def test_iou_threshold():
    half = [[0.0, 0, 10, 5]]  # IoU 0.5 with A
    assert _one(half, [0.9], [0], A, [0], num_classes=1)["map"] == 1.0  # IoU ≥ threshold matches
    assert _one(half, [0.9], [0], A, [0], num_classes=1, iou_threshold=0.75)["map"] == 0.0


def test_difficult_neither_counts_nor_penalises():
    gts = np.concatenate([A, FAR])
    hard = [np.array([False, True])]
    args = ([np.concatenate([FAR, A])], [np.array([0.9, 0.8])], [np.zeros(2, int)], [gts], [np.zeros(2, int)])
    out = detection_map(*args, num_classes=1, difficult=hard)
    assert out["map"] == 1.0 and out["recall"][0].tolist() == [1.0]  # the hit on the difficult gt is dropped
    missed = detection_map([A[:0]], [np.zeros(0)], [np.zeros(0, int)], [gts], [np.zeros(2, int)], num_classes=1,
                           difficult=[np.array([True, True])])
    assert np.isnan(missed["ap"][0])  # only difficult gts: nothing to find


def test_errors():
    with pytest.raises(ValueError, match="pred_boxes has 2 entries, expected one per image"):
        detection_map([A, A], [[1.0]], [[0]], [A], [[0]], num_classes=1)


def test_matches_torchmetrics_coco101():
    """Where VOC and COCO agree (distinct scores, no crowd, < 100 detections an image, IoU well away
    from 0.5), our "coco101" AP equals torchmetrics' (pycocotools-style) map at IoU 0.5."""
    torch = pytest.importorskip("torch")
    tm = pytest.importorskip("torchmetrics.detection")
    r = np.random.default_rng(5)
    preds, target, pb, ps, pl, gb, gl = [], [], [], [], [], [], []
    for _ in range(6):
        g = np.concatenate([r.uniform(0, 100, (4, 2)), np.zeros((4, 2))], axis=1)
        g[:, 2:] = g[:, :2] + r.uniform(20, 40, (4, 2))
        labels = r.integers(0, 3, 4)
        keep = r.random(4) < 0.7
        det = np.concatenate([g[keep] + r.uniform(-1, 1, (keep.sum(), 4)), g[:2] + 60])  # hits and far misses
        dl = np.concatenate([labels[keep], labels[:2]])
        sc = r.random(len(det))
        pb.append(det), ps.append(sc), pl.append(dl), gb.append(g), gl.append(labels)
        preds.append({"boxes": torch.tensor(det), "scores": torch.tensor(sc), "labels": torch.tensor(dl)})
        target.append({"boxes": torch.tensor(g), "labels": torch.tensor(labels)})
    metric = tm.MeanAveragePrecision(iou_thresholds=[0.5], class_metrics=True)
    metric.update(preds, target)
    want = metric.compute()
    ours = detection_map(pb, ps, pl, gb, gl, num_classes=3, interpolation="coco101")
    assert ours["map"] == pytest.approx(float(want["map"]), abs=1e-6)
