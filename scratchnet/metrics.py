"""Evaluation metrics: classification accuracy and the confusion matrix; sequence error rates
(edit distance, character error rate CER, word error rate WER); detection average precision
(AP per class, mAP) over matched boxes.

CER = (substitutions + deletions + insertions) / reference characters, summed over the corpus;
WER the same over whitespace-separated words. See chapters/17-ctc.md#error-rates.
AP is the area under a class's precision-recall curve, mAP its mean over classes that have ground
truth. See chapters/27-rcnn.md#mean-average-precision.

Legend: N examples, T time steps, K classes, D detections, G ground-truth boxes.
"""
from __future__ import annotations

import numpy as np

from .backend import asnumpy, get_array_module

__all__ = ["accuracy", "confusion_matrix", "edit_distance", "cer", "wer", "average_precision", "detection_map"]


# -- classification ----------------------------------------------------------------------------------
def _is_classification(logits, y) -> bool:
    """Integer targets indexing the last axis of the logits: what CrossEntropyLoss trains on."""
    return (y is not None and hasattr(y, "dtype") and y.dtype.kind in "iu"
            and tuple(logits.shape[:-1]) == tuple(y.shape))


def _correct(logits, y):
    """(number of correct argmax predictions, number of counted targets); negative targets
    (``ignore_index=-100``) are not counted."""
    xp = get_array_module(logits, y)
    valid = y >= 0  # (N[, T]) positions that count
    hits = (logits.argmax(axis=-1) == y) & valid
    return int(xp.count_nonzero(hits)), int(xp.count_nonzero(valid))


def accuracy(logits, y) -> float:
    """Fraction of targets whose class has the largest logit. logits (N, K) or (N, T, K), y (N[, T])
    integers; negative targets are ignored."""
    if not _is_classification(logits, y):
        raise ValueError(f"accuracy: expected logits (..., K) and integer targets of shape logits.shape[:-1]; "
                         f"got logits {tuple(logits.shape)}, targets {tuple(getattr(y, 'shape', ()))} "
                         f"{getattr(y, 'dtype', type(y).__name__)}")
    hits, count = _correct(logits, y)
    return hits / max(count, 1)


def confusion_matrix(pred, y, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts on the CPU: row = true class, column = predicted class.

    ``pred`` are class indices shaped like ``y``, or logits with one more (last) axis.
    """
    pred, y = asnumpy(pred), asnumpy(y)
    if pred.ndim == y.ndim + 1:
        pred = pred.argmax(axis=-1)
    if pred.shape != y.shape:
        raise ValueError(f"confusion_matrix: pred {pred.shape} and targets {y.shape} differ in shape")
    pred, y = pred.reshape(-1).astype(np.int64), y.reshape(-1).astype(np.int64)
    for name, a in (("pred", pred), ("targets", y)):
        if a.size and (a.min() < 0 or a.max() >= num_classes):
            raise ValueError(f"confusion_matrix: {name} must lie in [0, {num_classes}), "
                             f"got range [{a.min()}, {a.max()}]")
    counts = np.bincount(y * num_classes + pred, minlength=num_classes * num_classes)  # (K·K,)
    return counts.reshape(num_classes, num_classes)


# -- sequences ---------------------------------------------------------------------------------------


def edit_distance(ref, hyp) -> int:
    """Levenshtein distance between two sequences (strings, lists of ints or words)."""
    ref, hyp = list(ref), list(hyp)
    prev = list(range(len(hyp) + 1))  # distances from the empty prefix of ref
    for i, r in enumerate(ref, 1):  # one reference item per row of the table
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):  # one hypothesis item per column
            cur[j] = min(prev[j] + 1,  # deletion of r
                         cur[j - 1] + 1,  # insertion of h
                         prev[j - 1] + (r != h))  # substitution (free when equal)
        prev = cur
    return prev[-1]


def _pairs(op, refs, hyps):
    if isinstance(refs, str) != isinstance(hyps, str):
        raise TypeError(f"{op}: give two strings or two lists of strings, got {type(refs).__name__} and "
                        f"{type(hyps).__name__}")
    if isinstance(refs, str):
        refs, hyps = [refs], [hyps]
    refs, hyps = list(refs), list(hyps)
    if len(refs) != len(hyps):
        raise ValueError(f"{op}: {len(refs)} references but {len(hyps)} hypotheses")
    return refs, hyps


def _rate(op, refs, hyps, split):
    refs, hyps = _pairs(op, refs, hyps)
    errors = sum(edit_distance(split(r), split(h)) for r, h in zip(refs, hyps))
    total = sum(len(split(r)) for r in refs)
    if total == 0:
        return 0.0 if errors == 0 else float("inf")
    return errors / total


def cer(refs, hyps) -> float:
    """Character error rate over a corpus (a string each, or lists of strings); spaces count."""
    return _rate("cer", refs, hyps, list)


def wer(refs, hyps) -> float:
    """Word error rate over a corpus: edit distance on ``str.split()`` words / reference words."""
    return _rate("wer", refs, hyps, str.split)


# -- detection ---------------------------------------------------------------------------------------
def average_precision(recall, precision, *, interpolation="voc") -> float:
    """Area under a precision-recall curve (points in detection order, recall non-decreasing).

    ``"voc"``: all-point interpolation (PASCAL VOC 2010+): precision replaced by its running maximum
    from the right, AP = Σ (r_{i+1} − r_i)·p_interp(r_{i+1}). ``"coco101"``: the mean of the
    interpolated precision at recall 0, 0.01, ..., 1 (COCO; 0 past the largest recall reached).
    See chapters/27-rcnn.md#eq-average-precision.
    """
    r = np.asarray(asnumpy(recall), dtype=np.float64).reshape(-1)
    p = np.asarray(asnumpy(precision), dtype=np.float64).reshape(-1)
    if r.shape != p.shape:
        raise ValueError(f"average_precision: recall {r.shape} and precision {p.shape} differ in shape")
    if interpolation == "voc":
        mrec = np.concatenate([[0.0], r, [1.0]])  # sentinels at recall 0 and 1
        mpre = np.concatenate([[0.0], p, [0.0]])
        mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # the precision envelope
        step = np.flatnonzero(mrec[1:] != mrec[:-1])  # where recall changes
        return float(np.sum((mrec[step + 1] - mrec[step]) * mpre[step + 1]))
    if interpolation == "coco101":
        if r.size == 0:
            return 0.0
        env = np.maximum.accumulate(p[::-1])[::-1]  # (D,)
        idx = np.searchsorted(r, np.linspace(0.0, 1.0, 101), side="left")  # first point reaching each level
        return float(np.where(idx < r.size, env[np.minimum(idx, r.size - 1)], 0.0).mean())
    raise ValueError(f'average_precision: interpolation must be "voc" or "coco101", got {interpolation!r}')


def _as_list(op, name, seq, n):
    if len(seq) != n:
        raise ValueError(f"detection_map: {name} has {len(seq)} entries, expected one per image ({n})")
    return [np.asarray(asnumpy(a)) for a in seq]


def _match_class(dets, gts, hard, iou_threshold):
    """TP/FP flags of one class's detections, best score first, and its count of counted gts.

    dets: (score, image, box) per detection; gts/hard: per image, (G, 4) boxes and (G,) difficult.
    Each detection takes the gt of its image with the highest IoU; above the threshold it is a TP if
    that gt is unmatched (the gt becomes matched), an FP if matched already; a difficult gt makes it
    neither. Below the threshold it is an FP.
    """
    from .boxes import box_iou
    order = sorted(range(len(dets)), key=lambda d: -dets[d][0])  # stable: ties keep their order
    used = [np.zeros(len(g), dtype=bool) for g in gts]  # (G,) per image: matched already
    tp, fp = [], []
    for d in order:  # one detection at a time, best first
        _, i, box = dets[d]
        if len(gts[i]) == 0:
            tp.append(0), fp.append(1)
            continue
        iou = box_iou(box[None].astype(np.float64), gts[i].astype(np.float64))[0]  # (G,)
        j = int(iou.argmax())
        if iou[j] < iou_threshold:
            tp.append(0), fp.append(1)
        elif hard[i][j]:
            continue  # a difficult gt: the detection neither counts nor penalises
        elif used[i][j]:
            tp.append(0), fp.append(1)
        else:
            used[i][j] = True
            tp.append(1), fp.append(0)
    npos = sum(int((~h).sum()) for h in hard)
    return np.asarray(tp, dtype=np.float64), np.asarray(fp, dtype=np.float64), npos


def detection_map(pred_boxes, pred_scores, pred_labels, gt_boxes, gt_labels, num_classes, *,
                  iou_threshold=0.5, difficult=None, interpolation="voc") -> dict:
    """Mean average precision of detections over a set of images (PASCAL VOC's protocol).

    Each argument is a list with one array per image: pred_boxes (D_i, 4), pred_scores (D_i,),
    pred_labels (D_i,), gt_boxes (G_i, 4), gt_labels (G_i,), difficult (G_i,) bool or None.
    Per class, detections of all images are ranked by score and matched greedily (each gt at most
    once, IoU ≥ ``iou_threshold``); precision and recall follow the ranking and AP is
    ``average_precision`` of them. Returns ``dict(map, ap (K,), precision, recall)`` (lists of K
    arrays); a class without counted ground truth has AP nan and is left out of the mean.
    See chapters/27-rcnn.md#mean-average-precision.
    """
    n = len(gt_boxes)
    pb = _as_list("detection_map", "pred_boxes", pred_boxes, n)
    ps = _as_list("detection_map", "pred_scores", pred_scores, n)
    pl = _as_list("detection_map", "pred_labels", pred_labels, n)
    gb = _as_list("detection_map", "gt_boxes", gt_boxes, n)
    gl = _as_list("detection_map", "gt_labels", gt_labels, n)
    dif = ([np.zeros(len(g), dtype=bool) for g in gl] if difficult is None
           else [d.astype(bool) for d in _as_list("detection_map", "difficult", difficult, n)])
    ap = np.full(num_classes, np.nan)
    precision, recall = [], []
    for c in range(num_classes):  # one class at a time
        dets = [(float(s), i, b) for i in range(n) for b, s, lab in zip(pb[i], ps[i], pl[i]) if lab == c]
        gts = [gb[i][gl[i] == c].reshape(-1, 4) for i in range(n)]
        hard = [dif[i][gl[i] == c] for i in range(n)]
        tp, fp, npos = _match_class(dets, gts, hard, iou_threshold)
        ctp, cfp = np.cumsum(tp), np.cumsum(fp)  # (D,)
        rec = ctp / max(npos, 1)
        prec = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
        precision.append(prec), recall.append(rec)
        if npos > 0:
            ap[c] = average_precision(rec, prec, interpolation=interpolation)
    valid = ~np.isnan(ap)
    return {"map": float(ap[valid].mean()) if valid.any() else float("nan"), "ap": ap,
            "precision": precision, "recall": recall}
