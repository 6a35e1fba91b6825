"""YOLO v1's loss (Redmon, Divvala, Girshick & Farhadi 2016, "You only look once: unified, real-time
object detection"): the grid targets, the responsible predictor and the weighted sum-squared loss.

Legend: N batch, S_y × S_x grid (S × S in the paper), B boxes per cell, K classes, D = 5B + K; a
cell's vector is B groups (x, y, w, h, C) then K class probabilities. x, y: the box centre's offset
inside its cell in [0, 1); w, h: the box size as a fraction of the image; C: the confidence.

The loss is summed over cells and divided by N. Of the B predictors of a cell holding an object's
centre, the one whose box has the highest IoU with the object is "responsible": it alone gets the
coordinate terms and the confidence target IoU; every other predictor is pushed to C = 0 with
weight λ_noobj. See chapters/28-yolo.md#eq-yolo-loss.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._checks import check_float, check_same_dtype
from ..backend import get_array_module
from .loss import check_dloss

__all__ = ["yolo_targets", "yolo_iou", "yolo_v1_loss", "yolo_v1_loss_backward"]


def _grid(S):
    """(S_y, S_x) from an int S or a pair."""
    sy, sx = (S, S) if np.isscalar(S) else tuple(S)
    if int(sy) < 1 or int(sx) < 1:
        raise ValueError(f"yolo_targets: the grid S must be positive, got {S!r}")
    return int(sy), int(sx)


# start-yolo-targets
def yolo_targets(boxes, labels, S, img_hw, *, num_classes, dtype=np.float32):
    """Grid targets (N, S_y, S_x, 5 + K) from per-image boxes: (x, y, w, h, 1, one-hot class).

    ``boxes``: a list of N arrays (k, 4) of (x1, y1, x2, y2) pixels; ``labels``: N integer arrays
    (k,). The cell holding a box's centre gets it; x, y are the centre's offsets in that cell, w, h
    fractions of the image. One object per cell (a v1 limit): when two centres share a cell the
    larger box keeps it. Not differentiable (no backward): it only builds the regression targets.
    See chapters/28-yolo.md#eq-yolo-targets.
    """
    sy, sx = _grid(S)
    H, W = img_hw
    if len(boxes) != len(labels):
        raise ValueError(f"yolo_targets: got {len(boxes)} box arrays but {len(labels)} label arrays")
    target = np.zeros((len(boxes), sy, sx, 5 + num_classes), dtype=dtype)  # (N, S_y, S_x, 5 + K)
    for n, (b, lab) in enumerate(zip(boxes, labels)):
        b = np.asarray(b, dtype=np.float64).reshape(-1, 4)  # (k, 4)
        lab = np.asarray(lab).reshape(-1)  # (k,)
        if len(lab) != len(b):
            raise ValueError(f"yolo_targets: image {n} has {len(b)} boxes but {len(lab)} labels")
        if len(lab) and (lab.min() < 0 or lab.max() >= num_classes):
            raise ValueError(f"yolo_targets: labels must lie in [0, {num_classes}), got {lab.min()}..{lab.max()}")
        cx, cy = (b[:, 0] + b[:, 2]) / 2 / W * sx, (b[:, 1] + b[:, 3]) / 2 / H * sy  # centres in cells
        w, h = (b[:, 2] - b[:, 0]) / W, (b[:, 3] - b[:, 1]) / H  # (k,) fractions of the image
        col = np.clip(np.floor(cx), 0, sx - 1).astype(int)
        row = np.clip(np.floor(cy), 0, sy - 1).astype(int)
        for k in np.argsort(w * h, kind="stable"):  # small first: a larger box sharing the cell overwrites
            target[n, row[k], col[k], :5] = (cx[k] - col[k], cy[k] - row[k], w[k], h[k], 1.0)
            target[n, row[k], col[k], 5:] = 0.0
            target[n, row[k], col[k], 5 + lab[k]] = 1.0
    return target
# end-yolo-targets


def _corners(xywh, sy, sx):
    """(..., S_y, S_x, [B,] 4) cell-relative (x, y, w, h) → image-fraction corners x1, y1, x2, y2."""
    xp = get_array_module(xywh)
    extra = xywh.ndim - 4  # 1 when a B axis sits before the last
    col = xp.arange(sx, dtype=xywh.dtype).reshape((1, sx) + (1,) * extra)
    row = xp.arange(sy, dtype=xywh.dtype).reshape((sy, 1) + (1,) * extra)
    cx = (col + xywh[..., 0]) / sx  # (..., S_y, S_x[, B]) centre, fraction of the width
    cy = (row + xywh[..., 1]) / sy
    half_w, half_h = xywh[..., 2] / 2, xywh[..., 3] / 2
    return cx - half_w, cy - half_h, cx + half_w, cy + half_h


def yolo_iou(pred, target, *, B=2):
    """IoU (N, S_y, S_x, B) of each predictor's box with its cell's target box (0 where no object).

    IoU is unchanged by scaling x and y separately, so image fractions give the pixel IoU. No
    gradient flows through it: the loss uses it as a constant. See chapters/28-yolo.md#eq-yolo-iou.
    """
    xp = get_array_module(pred, target)
    N, sy, sx, _ = pred.shape
    p = pred[..., :5 * B].reshape(N, sy, sx, B, 5)  # (N, S_y, S_x, B, 5)
    px1, py1, px2, py2 = _corners(p[..., :4], sy, sx)  # each (N, S_y, S_x, B)
    tx1, ty1, tx2, ty2 = (c[..., None] for c in _corners(target[..., :4], sy, sx))  # (N, S_y, S_x, 1)
    iw = xp.clip(xp.minimum(px2, tx2) - xp.maximum(px1, tx1), 0, None)
    ih = xp.clip(xp.minimum(py2, ty2) - xp.maximum(py1, ty1), 0, None)
    inter = iw * ih  # (N, S_y, S_x, B)
    union = (px2 - px1) * (py2 - py1) + (tx2 - tx1) * (ty2 - ty1) - inter
    iou = xp.where(union > 0, inter / xp.where(union > 0, union, 1), 0)
    return iou * (target[..., 4:5] > 0)


class YoloLossCache(NamedTuple):
    boxes: object  # (N, S_y, S_x, B, 5) the predictors' (x, y, w, h, C)
    cls: object  # (N, S_y, S_x, K) predicted class probabilities
    target: object  # (N, S_y, S_x, 5 + K)
    resp: object  # (N, S_y, S_x, B) 1.0 for the responsible predictor of an object cell, else 0
    iou: object  # (N, S_y, S_x, B) the confidence target of the responsible predictor (a constant)
    lambdas: tuple  # (λ_coord, λ_noobj)
    parts: dict  # the five terms of the loss (floats, for plots)


def _check(pred, target, B, iou):
    check_float("yolo_v1_loss", "pred", pred)
    check_float("yolo_v1_loss", "target", target)
    check_same_dtype("yolo_v1_loss", pred=pred, target=target)
    if pred.ndim != 4 or pred.shape[-1] <= 5 * B:
        raise ValueError(f"yolo_v1_loss: expected pred (N, S_y, S_x, 5B + K) with B={B} and K >= 1, "
                         f"got shape {tuple(pred.shape)}")
    K = pred.shape[-1] - 5 * B
    if target.shape != pred.shape[:3] + (5 + K,):
        raise ValueError(f"yolo_v1_loss: expected target of shape {pred.shape[:3] + (5 + K,)} "
                         f"(N, S_y, S_x, 5 + K), got {tuple(target.shape)}")
    wh = pred[..., :5 * B].reshape(pred.shape[:3] + (B, 5))[..., 2:4]
    if bool((wh < 0).any()):
        raise ValueError("yolo_v1_loss: predicted w and h must be >= 0 (the model's head keeps them in (0, 1))")
    if iou is not None and tuple(iou.shape) != pred.shape[:3] + (B,):
        raise ValueError(f"yolo_v1_loss: expected iou of shape {pred.shape[:3] + (B,)} (N, S_y, S_x, B), "
                         f"got {tuple(iou.shape)}")


def _sqrt(v):
    """√v with v floored at the dtype's smallest normal number, so 1/√v stays finite."""
    xp = get_array_module(v)
    return xp.sqrt(xp.maximum(v, np.finfo(v.dtype).tiny))


# start-yolo-loss
def yolo_v1_loss(pred, target, *, B=2, lambda_coord=5.0, lambda_noobj=0.5, iou=None):
    """The YOLO v1 sum-squared loss, summed over cells and predictors, divided by N.

    pred (N, S_y, S_x, 5B + K) after the head's activations; target from ``yolo_targets``.
    The responsible predictor is the argmax over B of the IoU (ties to the lower index), and the IoU
    is its confidence target, a constant: ``iou`` (N, S_y, S_x, B) supplies it, fixed (gradient
    checks do, so the finite differences see the same constant); by default it is ``yolo_iou``
    of the forward's boxes. Backward, with r = 1 for the responsible predictor, o = 1 in an object
    cell, each times dloss / N: dx = 2λ_coord·r·(x − x̂), dw = λ_coord·r·(√w − √ŵ)/√w,
    dC = 2r·(C − IoU) + 2λ_noobj·(1 − r)·C, dp = 2o·(p − p̂). See chapters/28-yolo.md#eq-yolo-backward.
    """
    _check(pred, target, B, iou)
    xp = get_array_module(pred, target)
    N, sy, sx, _ = pred.shape
    boxes = pred[..., :5 * B].reshape(N, sy, sx, B, 5)  # (N, S_y, S_x, B, 5)
    cls = pred[..., 5 * B:]  # (N, S_y, S_x, K)
    obj = target[..., 4]  # (N, S_y, S_x) 1 where an object's centre falls
    if iou is None:
        iou = yolo_iou(pred, target, B=B)  # (N, S_y, S_x, B) a constant: no gradient flows through it
    r = xp.argmax(iou, axis=-1)  # (N, S_y, S_x) the responsible predictor, chosen once and cached
    resp = (xp.arange(B) == r[..., None]) * obj[..., None]  # (N, S_y, S_x, B) indicator 1_ij^obj
    t = target[..., None, :4]  # (N, S_y, S_x, 1, 4) broadcast over B
    coord = lambda_coord * (resp * ((boxes[..., 0] - t[..., 0]) ** 2 + (boxes[..., 1] - t[..., 1]) ** 2)).sum()
    size = lambda_coord * (resp * ((_sqrt(boxes[..., 2]) - _sqrt(t[..., 2])) ** 2
                                   + (_sqrt(boxes[..., 3]) - _sqrt(t[..., 3])) ** 2)).sum()
    conf_obj = (resp * (boxes[..., 4] - iou) ** 2).sum()  # C → IoU for the responsible one
    conf_noobj = lambda_noobj * ((1 - resp) * boxes[..., 4] ** 2).sum()  # C → 0 for all the others
    cls_term = (obj[..., None] * (cls - target[..., 5:]) ** 2).sum()  # only in cells with an object
    parts = {"coord": coord, "size": size, "obj": conf_obj, "noobj": conf_noobj, "class": cls_term}
    loss = (coord + size + conf_obj + conf_noobj + cls_term) / N
    parts = {k: float(v) / N for k, v in parts.items()}
    return loss, YoloLossCache(boxes, cls, target, resp, iou, (lambda_coord, lambda_noobj), parts)


def yolo_v1_loss_backward(dloss, cache):
    boxes, cls, target, resp, iou, (lambda_coord, lambda_noobj), _ = cache
    check_dloss("yolo_v1_loss_backward", dloss, (), boxes.dtype)
    xp = get_array_module(boxes)
    N, sy, sx, B, _ = boxes.shape
    t = target[..., None, :4]  # (N, S_y, S_x, 1, 4)
    dboxes = xp.zeros_like(boxes)  # (N, S_y, S_x, B, 5): zero for every unused entry
    dboxes[..., 0] = 2 * lambda_coord * resp * (boxes[..., 0] - t[..., 0])  # d/dx of λ(x − x̂)²
    dboxes[..., 1] = 2 * lambda_coord * resp * (boxes[..., 1] - t[..., 1])
    for k in (2, 3):  # d/dw of λ(√w − √ŵ)²: 2λ(√w − √ŵ)·1/(2√w)
        sw = _sqrt(boxes[..., k])
        dboxes[..., k] = lambda_coord * resp * (sw - _sqrt(t[..., k])) / sw
    dboxes[..., 4] = 2 * resp * (boxes[..., 4] - iou) + 2 * lambda_noobj * (1 - resp) * boxes[..., 4]
    dcls = 2 * target[..., 4:5] * (cls - target[..., 5:])  # (N, S_y, S_x, K)
    dpred = xp.concatenate([dboxes.reshape(N, sy, sx, 5 * B), dcls], axis=-1)  # (N, S_y, S_x, 5B + K)
    return dpred * (dloss / N)
# end-yolo-loss
