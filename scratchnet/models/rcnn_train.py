"""Training and evaluation of the Faster R-CNN of ``rcnn.py``, and the two ancestors' region sources:
sliding windows (R-CNN's stand-in for selective search) and crop-and-warp of image regions.

Legend: N images, R regions, H, W image size, S warped crop size, K classes.
Training is approximate joint training (Ren et al. 2015, section 3.2): one SGD step on the sum of
the RPN and Fast R-CNN losses, proposals treated as constants. See chapters/27-rcnn.md#rcnn-training.
"""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .detect_train import detector_map, train_detector

__all__ = ["flip_batch", "evaluate_map", "train_faster_rcnn", "sliding_windows", "warp_crops"]


def flip_batch(x, boxes, rng, *, vertical=False):
    """Random left–right (and, with ``vertical``, top–bottom) flips of images (N, C, H, W) and their
    boxes (a list of (k, 4)), each image independently → new arrays."""
    x, boxes = x.copy(), [b.copy() for b in boxes]
    H, W = x.shape[2:]
    for n in range(len(x)):  # one image at a time
        if rng.random() < 0.5:
            x[n] = x[n, :, :, ::-1]
            boxes[n][:, [0, 2]] = W - boxes[n][:, [2, 0]]
        if vertical and rng.random() < 0.5:
            x[n] = x[n, :, ::-1, :]
            boxes[n][:, [1, 3]] = H - boxes[n][:, [3, 1]]
    return x, boxes


def evaluate_map(model, images, boxes, labels, *, score_threshold=0.01, difficult=None, iou_threshold=0.5):
    """``detection_map`` (PASCAL VOC all-point AP, IoU ≥ ``iou_threshold``) of ``model.predict``."""
    return detector_map(model.predict(images, score_threshold=score_threshold), boxes, labels, model.num_classes,
                        difficult=difficult, iou_threshold=iou_threshold)


def train_faster_rcnn(model, images, boxes, labels, val, *, epochs, batch_size, lr, max_minutes, flips=None,
                      rng=None, eval_every=1, weight_decay=1e-4, disable=None, desc="Faster R-CNN"):
    """``train_detector`` (Adam, a cosine decay that ends at ``epochs`` or at ``max_minutes``, whichever
    comes first) with Faster R-CNN's step: the RPN and head losses of ``model.loss``, walked back together.

    ``val`` = (images, boxes, labels[, difficult]): validation mAP@0.5 every ``eval_every`` epochs;
    the best epoch's weights are restored at the end (the number of epochs chosen on validation).
    ``flips``: None, "h" or "hv". Returns ``train_detector``'s history dict.
    """
    def step(idx, rng):  # one mini-batch: forward, the four losses, backward
        xb, bb = images[idx], [boxes[j] for j in idx]
        if flips:
            xb, bb = flip_batch(xb, bb, rng, vertical=flips == "hv")
        loss = model.loss(xb, bb, [labels[j] for j in idx], rng=rng)
        model.backward_loss()
        return loss, model.parts

    def val_map():  # validation mAP@0.5
        return evaluate_map(model, val[0], val[1], val[2], difficult=val[3] if len(val) > 3 else None)["map"]

    return train_detector(model, len(images), step, val_map, epochs=epochs, batch_size=batch_size, lr=lr,
                          max_minutes=max_minutes, rng=rng, eval_every=eval_every, weight_decay=weight_decay,
                          disable=disable, desc=desc)


def sliding_windows(img_hw, sizes, ratios, step):
    """Every box of area size² and aspect h/w = ratio whose centre lies on a grid of pitch ``step``,
    clipped to the image → (R, 4): the region source of our R-CNN and Fast R-CNN sketches."""
    H, W = img_hw
    cy, cx = np.meshgrid(np.arange(step / 2, H, step), np.arange(step / 2, W, step), indexing="ij")
    out = []
    for s in sizes:
        for r in ratios:
            w, h = s / math.sqrt(r), s * math.sqrt(r)
            out.append(np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1).reshape(-1, 4))
    b = np.concatenate(out)
    b[:, 0::2], b[:, 1::2] = b[:, 0::2].clip(0, W), b[:, 1::2].clip(0, H)
    return b.astype(np.float32)


def warp_crops(images, rois, size):
    """R-CNN's "warp": each region (R, 5) [image, x1, y1, x2, y2] resampled (bilinear, whatever its
    aspect) to an S × S crop of the image itself → (R, C, S, S). RoIAlign on the pixels is exactly that."""
    crops, _ = F.roi_align(images, rois, size, 1.0, sampling_ratio=1)
    return crops
