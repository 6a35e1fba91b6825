"""Gradient-check cases of YOLO (chapters/28-yolo.md): the v1 loss with one, two and three predictors
per cell, a rectangular grid, other λ weights and an image without objects; the head and a tiny
detector as modules (float64). The loss's IoU confidence target is a constant: each case computes it
once and passes it as ``iou=``, so the finite differences see the same target and the same
responsible predictor (the problems keep the B IoUs of every object cell apart: no ties)."""
from __future__ import annotations

import numpy as np

from ... import functional as F
from ...models.yolo import YOLO, YOLOHead
from ..checker import check_function
from ..registry import register_case
from ._blocks import module_case


def yolo_problem(N=2, S=(3, 3), B=2, K=3, *, seed=1234, empty=False):
    """(pred, target, iou) float64: boxes of random sizes in an image of 48 × 48 pixels per 3 cells;
    every predictor of an object cell is a jittered copy of its target, so IoUs are positive and apart."""
    r = np.random.default_rng(seed)
    sy, sx = S
    H, W = 16 * sy, 16 * sx
    boxes, labels = [], []
    for n in range(N):
        k = 0 if (empty and n == 0) else 1 + n % 3
        c = r.uniform(4, [W - 4, H - 4], (k, 2))  # centres
        wh = r.uniform(6, 20, (k, 2))
        boxes.append(np.concatenate([c - wh / 2, c + wh / 2], axis=1)), labels.append(r.integers(0, K, k))
    target = F.yolo_targets(boxes, labels, (sy, sx), (H, W), num_classes=K, dtype=np.float64)
    pred = r.uniform(0.1, 0.9, (N, sy, sx, 5 * B + K))  # (N, S_y, S_x, 5B + K)
    obj = target[..., 4] > 0
    for b in range(B):  # predictors near the truth, each jittered by a different amount
        jitter = r.uniform(-1, 1, (int(obj.sum()), 4)) * (0.04 + 0.08 * b)
        xy = np.clip(target[obj][:, :2] + jitter[:, :2], 0.02, 0.98)
        wh = np.clip(target[obj][:, 2:4] * (1 + 2 * jitter[:, 2:4]), 0.05, 0.95)
        pred[obj, 5 * b:5 * b + 4] = np.concatenate([xy, wh], axis=1)
    pred[..., 5 * B:] /= pred[..., 5 * B:].sum(-1, keepdims=True)  # class probabilities
    iou = F.yolo_iou(pred, target, B=B)
    return pred, target, iou


def _loss_case(title, *, S=(3, 3), B=2, empty=False, **options):
    pred, target, iou = yolo_problem(S=S, B=B, empty=empty)
    return check_function(F.yolo_v1_loss, F.yolo_v1_loss_backward, [pred, target], wrt=[0], names=["pred"],
                          title=title, B=B, iou=iou, **options)


@register_case("yolo.v1_loss[B=2]")
def loss_b2_case():
    return _loss_case("yolo_v1_loss[B=2]")


@register_case("yolo.v1_loss[B=1]")
def loss_b1_case():
    return _loss_case("yolo_v1_loss[B=1]", B=1)


@register_case("yolo.v1_loss[B=3,grid 3x4]")
def loss_b3_case():
    return _loss_case("yolo_v1_loss[B=3, 3×4 grid]", S=(3, 4), B=3)


@register_case("yolo.v1_loss[lambdas,empty image]")
def loss_lambdas_case():
    return _loss_case("yolo_v1_loss[λ_coord=2, λ_noobj=1, an empty image]", empty=True, lambda_coord=2.0,
                      lambda_noobj=1.0)


register_case("yolo.head")(module_case(lambda r: YOLOHead(4, 3, 2, rng=r, dtype=np.float64), (2, 4, 3, 4),
                                       "YOLOHead", training=True, fast=False, seed=1234))
for _training in (True, False):
    _name = f"yolo.model[{'train' if _training else 'eval'}]"
    register_case(_name)(module_case(lambda r: YOLO(3, in_channels=2, widths=(3, 4), rng=r, dtype=np.float64),
                                     (2, 2, 8, 8), _name, training=_training, fast=True, seed=1234))
