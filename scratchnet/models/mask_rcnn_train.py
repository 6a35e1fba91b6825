"""Training and evaluation of the Mask R-CNN of ``mask_rcnn.py``: flips that move the masks with the
pixels, the mask IoU of an instance, the mask metric over a test set, and the training loop
(``train_detector``, as Faster R-CNN's, with the mask targets handed to the loss).

Legend: N images, k ground-truth instances of an image, d detections, H, W image size.
The mask metric: for each ground-truth instance, the mask IoU with the highest-scoring detection of
its class whose box IoU is ≥ 0.5 (0 if there is none); ``mask_iou`` is the mean over all instances,
``mask_iou_detected`` the mean over the instances that have such a detection.
See chapters/29-mask-rcnn.md#mask-metric.
"""
from __future__ import annotations

import numpy as np

from ..boxes import box_iou
from .detect_train import detector_map, train_detector

__all__ = ["flip_with_masks", "mask_iou", "mask_iou_score", "evaluate_masks", "train_mask_rcnn"]


def flip_with_masks(x, boxes, masks, rng):
    """Random left–right flips of images (N, C, H, W), their boxes [(k, 4)] and masks [(k, H, W)],
    each image independently → new arrays (the inputs are untouched)."""
    x, boxes, masks = x.copy(), [b.copy() for b in boxes], [m.copy() for m in masks]
    W = x.shape[3]
    for n in range(len(x)):  # one image at a time
        if rng.random() < 0.5:
            x[n] = x[n, :, :, ::-1]
            boxes[n][:, [0, 2]] = W - boxes[n][:, [2, 0]]
            masks[n] = masks[n][:, :, ::-1]
    return x, boxes, masks


def mask_iou(a, b):
    """IoU of two bool masks of one shape (0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


# start-mask-metric
def mask_iou_score(dets, gt_boxes, gt_labels, gt_masks, *, iou_threshold=0.5):
    """The instance mask metric. dets: per image (boxes (d, 4), scores (d,), labels (d,), masks (d, H, W)).
    For each gt instance: the highest-scoring detection of its class with box IoU ≥ ``iou_threshold``,
    and the IoU of the two masks (0 if no detection qualifies). → dict: mask_iou (mean over all
    instances), mask_iou_detected (mean over instances with a detection), detected (that fraction),
    per_instance (the IoUs, 0 for the missed ones)."""
    ious, found = [], []
    for (b, s, lab, m), gb, gl, gm in zip(dets, gt_boxes, gt_labels, gt_masks):  # one image at a time
        overlap = box_iou(np.asarray(gb, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4))
        for g in range(len(gb)):  # one ground-truth instance at a time
            ok = np.flatnonzero((lab == gl[g]) & (overlap[g] >= iou_threshold))  # same class, box IoU ≥ 0.5
            found.append(len(ok) > 0)
            ious.append(mask_iou(m[ok[np.argmax(s[ok])]], gm[g]) if len(ok) else 0.0)
    ious, found = np.asarray(ious, dtype=np.float64), np.asarray(found, dtype=bool)
    return {"mask_iou": float(ious.mean()) if ious.size else 0.0,
            "mask_iou_detected": float(ious[found].mean()) if found.any() else 0.0,
            "detected": float(found.mean()) if found.size else 0.0, "per_instance": ious}
# end-mask-metric


def evaluate_masks(model, images, boxes, labels, masks, *, score_threshold=0.01, dets=None):
    """Box mAP@0.5 and the mask metric of ``model.predict(images, masks=True)`` (or of ``dets``)
    → (dict: map50, mask_iou, mask_iou_detected, detected, ap, per_instance; the detections)."""
    if dets is None:
        dets = model.predict(images, masks=True, score_threshold=score_threshold)
    res = detector_map([d[:3] for d in dets], boxes, labels, model.num_classes)
    score = mask_iou_score(dets, boxes, labels, masks)
    return {"map50": float(res["map"]), "ap": res["ap"], **score}, dets


def train_mask_rcnn(model, images, boxes, labels, masks, val, *, epochs, batch_size, lr, max_minutes, flips=False,
                    rng=None, eval_every=1, weight_decay=1e-4, val_threshold=0.05, disable=None, desc="Mask R-CNN"):
    """``train_detector`` with Mask R-CNN's step (RPN + box head + mask head losses, one backward).

    ``val`` = (images, boxes, labels, masks): every ``eval_every`` epochs the validation score
    (box mAP@0.5 + mask IoU)/2 of the detections scoring ≥ ``val_threshold`` is measured and the best
    epoch's weights are restored at the end.
    ``flips``: random left–right flips of images, boxes and masks. Returns the history dict with
    ``val_detail`` [(box mAP, mask IoU)] per evaluation."""
    detail = []

    def step(idx, rng):  # one mini-batch: forward, the five losses, backward
        xb, bb, mb = images[idx], [boxes[j] for j in idx], [masks[j] for j in idx]
        if flips:
            xb, bb, mb = flip_with_masks(xb, bb, mb, rng)
        loss = model.loss(xb, bb, [labels[j] for j in idx], rng=rng, extra=mb)
        model.backward_loss()
        return loss, model.parts

    def val_score():  # the choice of epoch: box and mask quality alike
        res, _ = evaluate_masks(model, *val, score_threshold=val_threshold)
        detail.append((res["map50"], res["mask_iou"]))
        return 0.5 * (res["map50"] + res["mask_iou"])

    hist = train_detector(model, len(images), step, val_score, epochs=epochs, batch_size=batch_size, lr=lr,
                          max_minutes=max_minutes, rng=rng, eval_every=eval_every, weight_decay=weight_decay,
                          disable=disable, desc=desc)
    hist["val_detail"] = detail
    return hist
