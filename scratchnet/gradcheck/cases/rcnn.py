"""Gradient-check cases of Faster R-CNN (chapters/27-rcnn.md): the RPN loss and the Fast R-CNN head
loss with a fixed sampling (and their options), the RPN head, the box head with RoIAlign and with
RoI pooling on fixed regions, the whole network's differentiable core, and the whole training loss
with its sampling replayed (float64)."""
from __future__ import annotations

import numpy as np

from ... import functional as F
from ...backend import get_array_module
from ...models.rcnn import BoxHead, FasterRCNN, RPNHead
from ...nn.module import Module
from ..checker import check_function, check_module
from ..registry import register_case


def _rng():
    return np.random.default_rng(2701)


def rpn_problem(M=14, seed=2701):
    """objectness (M,), deltas (M, 4), labels (M,) with positives, negatives and ignored, targets (M, 4)."""
    r = np.random.default_rng(seed)
    labels = r.choice([1, 0, -1], size=M, p=[0.3, 0.4, 0.3])
    labels[:3] = [1, 0, -1]
    return [r.standard_normal(M), r.standard_normal((M, 4)), labels, r.standard_normal((M, 4))]


def head_problem(R=7, K=3, seed=2702):
    """scores (R, K + 1), deltas (R, 4(K + 1)), labels (R,) with background and foreground, targets (R, 4)."""
    r = np.random.default_rng(seed)
    labels = r.integers(0, K + 1, size=R)
    labels[:2] = [0, 1]
    return [r.standard_normal((R, K + 1)), r.standard_normal((R, 4 * (K + 1))), labels, r.standard_normal((R, 4))]


def tiny_scene(seed=2703):
    """Two 8×8 one-channel images with two and one boxes of classes in [0, 3)."""
    r = np.random.default_rng(seed)
    x = r.standard_normal((2, 1, 8, 8))
    boxes = [np.array([[0.5, 1.0, 5.0, 6.5], [3.0, 2.5, 8.0, 7.0]]), np.array([[1.0, 0.0, 6.0, 4.0]])]
    return x, boxes, [np.array([0, 2]), np.array([1])]


def tiny_model(pool="align", seed=2704):
    """A stride-2 Faster R-CNN with 2 anchors per cell, 2×2 pooling and a 6-unit head (float64)."""
    return FasterRCNN(3, in_channels=1, widths=(3, 4), anchor_sizes=(4.0,), anchor_ratios=(1.0, 2.0), pool=pool,
                      pool_size=2, hidden=6, rpn_batch=12, roi_batch=6, pre_nms=20, post_nms=6, rng=seed,
                      dtype=np.float64)


class WithRois(Module):
    """``inner(x, rois)`` with the regions held fixed, so ``check_module`` sees one float input."""

    def __init__(self, inner, rois):
        super().__init__()
        self.inner, self.rois = inner, rois

    def forward(self, x):
        return self.inner(x, get_array_module(x).asarray(self.rois))  # the regions beside x (device_parity)

    def backward(self, dy):
        return self.inner.backward(dy)


class LossWithSampling(Module):
    """``FasterRCNN.loss`` with its anchor and region sampling drawn once and replayed."""

    def __init__(self, model, x, boxes, labels):
        super().__init__()
        self.model, self.boxes, self.labels = model, boxes, labels
        model.loss(x, boxes, labels, rng=0)
        model.clear_caches()
        self.sampled = model.last_sampled

    def forward(self, x):
        return self.model.loss(x, self.boxes, self.labels, sampled=self.sampled)

    def backward(self, dloss):
        return self.model.backward_loss(dloss)


ROIS = np.array([[0, 0.5, 1.0, 5.0, 6.5], [1, 2.2, 0.3, 7.6, 5.1], [0, 3.1, 2.4, 7.7, 7.3]])


@register_case("rcnn.rpn_loss")
def rpn_loss_cases():
    f, b, n = F.rpn_loss, F.rpn_loss_backward, ["objectness", "deltas"]
    args = rpn_problem()
    none_pos = list(args)
    none_pos[2] = np.where(args[2] == 1, 0, args[2])  # an image without objects: classification only
    return [check_function(f, b, args, wrt=[0, 1], names=n, title="rpn_loss"),
            check_function(f, b, args, wrt=[0, 1], names=n, lambda_reg=10.0, n_reg=40, beta=1.0,
                           title="rpn_loss[paper: λ=10, N_reg, β=1]"),
            check_function(f, b, none_pos, wrt=[0, 1], names=n, title="rpn_loss[no positives]")]


@register_case("rcnn.fast_rcnn_loss")
def fast_rcnn_loss_cases():
    f, b, n = F.fast_rcnn_loss, F.fast_rcnn_loss_backward, ["scores", "deltas"]
    args = head_problem()
    bg = list(args)
    bg[2] = np.zeros_like(args[2])  # background only: no regression term
    return [check_function(f, b, args, wrt=[0, 1], names=n, title="fast_rcnn_loss"),
            check_function(f, b, args, wrt=[0, 1], names=n, lambda_reg=2.0, beta=0.5,
                           title="fast_rcnn_loss[λ=2, β=0.5]"),
            check_function(f, b, bg, wrt=[0, 1], names=n, title="fast_rcnn_loss[background only]")]


@register_case("rcnn.rpn_head")
def rpn_head_case():
    r = _rng()
    rep = check_module(RPNHead(3, 2, mid_channels=4, rng=r, dtype=np.float64), r.standard_normal((2, 3, 3, 4)))
    rep.title = "rpn_head"
    return rep


@register_case("rcnn.box_head")
def box_head_cases():
    reps = []
    for pool in ("align", "pool"):
        r = _rng()
        head = BoxHead(2, 3, spatial_scale=0.5, pool_size=2, hidden=5, pool=pool, rng=r, dtype=np.float64)
        rep = check_module(WithRois(head, ROIS), r.standard_normal((2, 2, 4, 4)))
        rep.title = f"box_head[{pool}]"
        reps.append(rep)
    return reps


@register_case("rcnn.faster_rcnn")
def faster_rcnn_case():
    x, _, _ = tiny_scene()
    rep = check_module(WithRois(tiny_model(), ROIS), x, fast=True)
    rep.title = "faster_rcnn[forward(x, rois), train]"
    return rep


@register_case("rcnn.faster_rcnn_loss")
def faster_rcnn_loss_cases():
    reps = []
    for pool in ("align", "pool"):
        x, boxes, labels = tiny_scene()
        rep = check_module(LossWithSampling(tiny_model(pool), x, boxes, labels), x, fast=True)
        rep.title = f"faster_rcnn.loss[{pool}, fixed sampling]"
        reps.append(rep)
    return reps
