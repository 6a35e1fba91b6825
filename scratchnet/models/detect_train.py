"""The training loop the detectors share (chapters 27 and 28): Adam, a cosine decay that ends with
the planned steps or the wall-clock budget, whichever comes first, validation mAP@0.5 every few
epochs and the best epoch's weights restored at the end.

Legend: n training images, B images per step. The model-specific part of a step (forward, loss,
backward) comes in as ``step(idx, rng) -> (loss, parts)``; the loop owns everything around it.
See chapters/27-rcnn.md and chapters/28-yolo.md for the models that use it.
"""
from __future__ import annotations

import math
import time

import numpy as np

from ..metrics import detection_map
from ..optim import Adam, LambdaLR
from ..progress import progress

__all__ = ["detector_map", "train_detector"]


def detector_map(dets, boxes, labels, num_classes, *, difficult=None, iou_threshold=0.5):
    """``detection_map`` (PASCAL VOC all-point AP, IoU ≥ ``iou_threshold``) of a model's detections,
    a list of (boxes, scores, labels) per image."""
    return detection_map([d[0] for d in dets], [d[1] for d in dets], [d[2] for d in dets], boxes, labels,
                         num_classes, iou_threshold=iou_threshold, difficult=difficult)


def train_detector(model, n, step, val_map, *, epochs, batch_size, lr, max_minutes, rng=None, eval_every=1,
                   weight_decay=0.0, disable=None, desc="detector"):
    """Train ``model`` on ``n`` images with ``step(idx, rng) -> (loss, parts)`` doing one mini-batch's
    forward and backward; ``val_map()`` → validation mAP, measured every ``eval_every`` epochs and at
    the end. Training stops after ``epochs`` or when ``max_minutes`` are spent (checked every step).
    Returns a history dict: step_loss and parts per step, val (epoch, mAP), best_epoch, steps, seconds,
    train_seconds and train_cpu_seconds (the steps alone, without the evaluations)."""
    rng = np.random.default_rng(rng)
    opt = Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = max(n // batch_size, 1)
    total, t0 = epochs * steps_per_epoch, time.perf_counter()

    def factor(t):  # cosine over the progress of whichever runs out first: steps or wall-clock time
        done = max(t / total, (time.perf_counter() - t0) / (60 * max_minutes))
        return 0.5 * (1 + math.cos(math.pi * min(1.0, done)))

    sched = LambdaLR(opt, factor)
    hist = dict(step_loss=[], parts=[], val=[], best_epoch=0, steps=0, train_seconds=0.0, train_cpu_seconds=0.0)
    best, best_state, out_of_time = -1.0, None, False
    for epoch in progress(range(1, epochs + 1), desc=desc, disable=disable):
        order = rng.permutation(n)
        model.train()
        t_epoch, cpu_epoch = time.perf_counter(), time.process_time()
        for i in range(steps_per_epoch):  # one mini-batch per step (the last partial batch is dropped)
            opt.zero_grad()
            loss, parts = step(order[i * batch_size:(i + 1) * batch_size], rng)
            opt.step()
            sched.step()
            hist["step_loss"].append(float(loss)), hist["parts"].append(dict(parts))
            hist["steps"] += 1
            out_of_time = time.perf_counter() - t0 > 60 * max_minutes
            if out_of_time:
                break
        hist["train_seconds"] += time.perf_counter() - t_epoch
        hist["train_cpu_seconds"] += time.process_time() - cpu_epoch  # this process's CPU time, same steps
        if epoch % eval_every == 0 or epoch == epochs or out_of_time:
            m = val_map()
            hist["val"].append((epoch, float(m)))
            if m > best:
                best, best_state, hist["best_epoch"] = m, model.state_dict(), epoch
        if out_of_time:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    hist["seconds"] = time.perf_counter() - t0
    return hist
