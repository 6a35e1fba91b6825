"""Training and evaluation of the Faster R-CNN of ``rcnn.py``, and the two ancestors' region sources:
sliding windows (R-CNN's stand-in for selective search) and crop-and-warp of image regions.

Legend: N images, R regions, H, W image size, S warped crop size, K classes.
Training is approximate joint training (Ren et al. 2015, section 3.2): one SGD step on the sum of
the RPN and Fast R-CNN losses, proposals treated as constants. See chapters/27-rcnn.md#rcnn-training.
"""
from __future__ import annotations

import math
import time

import numpy as np

from .. import functional as F
from ..metrics import detection_map
from ..optim import Adam, LambdaLR
from ..progress import progress

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
    dets = model.predict(images, score_threshold=score_threshold)
    return detection_map([d[0] for d in dets], [d[1] for d in dets], [d[2] for d in dets], boxes, labels,
                         model.num_classes, iou_threshold=iou_threshold, difficult=difficult)


def train_faster_rcnn(model, images, boxes, labels, val, *, epochs, batch_size, lr, max_minutes, flips=None,
                      rng=None, eval_every=1, weight_decay=1e-4, disable=None, desc="Faster R-CNN"):
    """Adam with a cosine decay that ends at ``epochs`` or at ``max_minutes``, whichever comes first.

    ``val`` = (images, boxes, labels[, difficult]): validation mAP@0.5 every ``eval_every`` epochs;
    the best epoch's weights are restored at the end (the number of epochs chosen on validation).
    ``flips``: None, "h" or "hv". Returns a history dict: step_loss and parts per step, val (epoch,
    mAP), best_epoch, steps, seconds, train_seconds and train_cpu_seconds (the steps alone).
    """
    rng = np.random.default_rng(rng)
    opt = Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = max(len(images) // batch_size, 1)
    total, t0 = epochs * steps_per_epoch, time.perf_counter()

    def factor(t):  # cosine over the progress of whichever runs out first: steps or wall-clock time
        done = max(t / total, (time.perf_counter() - t0) / (60 * max_minutes))
        return 0.5 * (1 + math.cos(math.pi * min(1.0, done)))

    sched = LambdaLR(opt, factor)
    hist = dict(step_loss=[], parts=[], val=[], best_epoch=0, steps=0, train_seconds=0.0, train_cpu_seconds=0.0)
    best, best_state, out_of_time = -1.0, None, False
    for epoch in progress(range(1, epochs + 1), desc=desc, disable=disable):
        order = rng.permutation(len(images))
        model.train()
        t_epoch, cpu_epoch = time.perf_counter(), time.process_time()
        for i in range(steps_per_epoch):  # one mini-batch of images per step
            idx = order[i * batch_size:(i + 1) * batch_size]
            xb, bb = images[idx], [boxes[j] for j in idx]
            if flips:
                xb, bb = flip_batch(xb, bb, rng, vertical=flips == "hv")
            loss = model.loss(xb, bb, [labels[j] for j in idx], rng=rng)
            opt.zero_grad()
            model.backward_loss()
            opt.step()
            sched.step()
            hist["step_loss"].append(float(loss)), hist["parts"].append(dict(model.parts))
            hist["steps"] += 1
            out_of_time = time.perf_counter() - t0 > 60 * max_minutes
            if out_of_time:
                break
        hist["train_seconds"] += time.perf_counter() - t_epoch
        hist["train_cpu_seconds"] += time.process_time() - cpu_epoch  # this process's CPU time, same steps
        if epoch % eval_every == 0 or epoch == epochs or out_of_time:
            m = evaluate_map(model, val[0], val[1], val[2], difficult=val[3] if len(val) > 3 else None)["map"]
            hist["val"].append((epoch, float(m)))
            if m > best:
                best, best_state, hist["best_epoch"] = m, model.state_dict(), epoch
        if out_of_time:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    hist["seconds"] = time.perf_counter() - t0
    return hist


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
