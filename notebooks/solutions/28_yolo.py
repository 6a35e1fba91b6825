"""Reference solutions for notebooks/28-yolo.ipynb's "your turn" cells (chapter 28)."""
import numpy as np

import scratchnet.functional as F
from scratchnet.exercises import check_pair
from scratchnet.gradcheck.cases.yolo import yolo_problem

YOUR_TURN = ["my_yolo_loss", "my_yolo_loss_backward"]


def my_yolo_loss(pred, target, *, B=2, lambda_coord=5.0, lambda_noobj=0.5, iou=None):
    """The five sum-squared terms of YOLO v1, summed over cells and predictors, divided by N."""
    N, sy, sx, _ = pred.shape
    boxes = pred[..., :5 * B].reshape(N, sy, sx, B, 5)  # (N, S_y, S_x, B, 5)
    cls = pred[..., 5 * B:]  # (N, S_y, S_x, K)
    obj = target[..., 4]  # (N, S_y, S_x)
    if iou is None:
        iou = F.yolo_iou(pred, target, B=B)  # the confidence target: a constant
    one = (np.arange(B) == iou.argmax(-1)[..., None]) * obj[..., None]  # 1_ij: the responsible predictor
    t = target[..., None, :4]  # (N, S_y, S_x, 1, 4)
    sw, sh = np.sqrt(boxes[..., 2]), np.sqrt(boxes[..., 3])
    e = [boxes[..., 0] - t[..., 0], boxes[..., 1] - t[..., 1], sw - np.sqrt(t[..., 2]), sh - np.sqrt(t[..., 3])]
    loss = (lambda_coord * (one * (e[0] ** 2 + e[1] ** 2 + e[2] ** 2 + e[3] ** 2)).sum()
            + (one * (boxes[..., 4] - iou) ** 2).sum() + lambda_noobj * ((1 - one) * boxes[..., 4] ** 2).sum()
            + (obj[..., None] * (cls - target[..., 5:]) ** 2).sum()) / N
    return loss, (boxes, cls, target, one, iou, e, sw, sh, lambda_coord, lambda_noobj)


def my_yolo_loss_backward(dloss, cache):
    """Only the responsible predictor gets coordinate gradients; d√w/dw = 1/(2√w); the IoU is constant."""
    boxes, cls, target, one, iou, e, sw, sh, lambda_coord, lambda_noobj = cache
    N, sy, sx, B, _ = boxes.shape
    d = np.zeros_like(boxes)
    d[..., 0] = 2 * lambda_coord * one * e[0]
    d[..., 1] = 2 * lambda_coord * one * e[1]
    d[..., 2] = lambda_coord * one * e[2] / sw  # 2λ(√w − √ŵ) · 1/(2√w)
    d[..., 3] = lambda_coord * one * e[3] / sh
    d[..., 4] = 2 * one * (boxes[..., 4] - iou) + 2 * lambda_noobj * (1 - one) * boxes[..., 4]
    dcls = 2 * target[..., 4:5] * (cls - target[..., 5:])
    return np.concatenate([d.reshape(N, sy, sx, 5 * B), dcls], axis=-1) * (dloss / N)


def check(strict=True):
    """The notebook's check, run on these solutions."""
    pred, target, iou = yolo_problem(N=2, S=(3, 4), B=2, K=3, seed=7)
    return [
        check_pair((my_yolo_loss, my_yolo_loss_backward), (F.yolo_v1_loss, F.yolo_v1_loss_backward),
                   [pred, target], options=dict(B=2, iou=iou), wrt=[0], title="your YOLO loss", strict=strict),
    ]
