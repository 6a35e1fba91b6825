"""Gradient-check cases of Mask R-CNN (chapters/29-mask-rcnn.md): the mask loss at several shapes
(background rows, one class, no foreground), RoIAlign at the mask head's output size, the mask
head as a module on fixed regions, the whole network's forward(x, rois), and the whole training
loss with its sampling replayed and fixed ground-truth masks (float64)."""
from __future__ import annotations

import numpy as np

from ... import functional as F
from ...models.mask_rcnn import MaskHead, MaskRCNN
from ...nn.module import Module
from ..checker import check_function, check_module
from ..registry import register_case
from .rcnn import ROIS, WithRois, tiny_scene


def mask_problem(R=5, K=3, M=4, seed=2901):
    """logits (R, K, M, M), labels (R,) with background and foreground rows, targets (R, M, M) in {0, 1}."""
    r = np.random.default_rng(seed)
    labels = r.integers(0, K + 1, size=R)
    labels[:2] = [0, K][:R]  # a background row and the last class, when R allows
    return [r.standard_normal((R, K, M, M)), labels, (r.random((R, M, M)) < 0.5).astype(np.float64)]


def tiny_masks(boxes, hw=(8, 8), seed=2902):
    """Random bool masks (k, H, W) inside each box of one image (at least the box's centre pixel set)."""
    r = np.random.default_rng(seed)
    out = np.zeros((len(boxes),) + hw, dtype=bool)
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        ys, xs = slice(int(y1), int(np.ceil(y2))), slice(int(x1), int(np.ceil(x2)))
        out[k, ys, xs] = r.random(out[k, ys, xs].shape) < 0.6
        out[k, int((y1 + y2) / 2), int((x1 + x2) / 2)] = True
    return out


def off_kinks(head, seed=2906):
    """Non-zero biases in a mask head: a region whose features the ReLUs zero out would otherwise feed
    the next ReLU exactly 0 (the bias), a kink where central differences and the ReLU's rule disagree."""
    r = np.random.default_rng(seed)
    for layer in head.convs + [head.up, head.out]:
        layer.bias.data[...] = r.uniform(0.1, 0.3, layer.bias.shape)
    return head


def tiny_mask_model(seed=2903, mask_stage=None):
    """A stride-2 Mask R-CNN: 2 anchors per cell, 2×2 box pooling, 2×2 RoIAlign → 4×4 masks of 3 channels
    (``mask_stage=0``: the mask head reads the stride-1 map of the first stage)."""
    model = MaskRCNN(3, in_channels=1, widths=(3, 4), anchor_sizes=(4.0,), anchor_ratios=(1.0, 2.0), pool_size=2,
                     hidden=6, rpn_batch=12, roi_batch=6, pre_nms=20, post_nms=6, mask_size=4, mask_channels=3,
                     mask_convs=1, mask_stage=mask_stage, rng=seed, dtype=np.float64)
    off_kinks(model.mask_head)
    return model


class MaskLossWithSampling(Module):
    """``MaskRCNN.loss`` with its sampling drawn once and replayed, and the gt masks fixed."""

    def __init__(self, model, x, boxes, labels, masks):
        super().__init__()
        self.model, self.boxes, self.labels, self.masks = model, boxes, labels, masks
        model.loss(x, boxes, labels, rng=0, extra=masks)
        model.clear_caches()
        self.sampled = model.last_sampled

    def forward(self, x):
        return self.model.loss(x, self.boxes, self.labels, sampled=self.sampled, extra=self.masks)

    def backward(self, dloss):
        return self.model.backward_loss(dloss)


@register_case("mask_rcnn.mask_loss")
def mask_loss_cases():
    f, b = F.mask_loss, F.mask_loss_backward
    reps = []
    for title, args in (("mask_loss[R=5, K=3, M=4]", mask_problem()),
                        ("mask_loss[K=1, M=3]", mask_problem(R=4, K=1, M=3, seed=5)),
                        ("mask_loss[R=3, K=2, M=6]", mask_problem(R=3, K=2, M=6, seed=6))):
        reps.append(check_function(f, b, args, wrt=[0], names=["logits"], title=title))
    bg = mask_problem(R=3, K=2, M=2, seed=7)
    bg[1] = np.zeros(3, dtype=np.int64)  # background only: the loss is 0, and so is every gradient
    reps.append(check_function(f, b, bg, wrt=[0], names=["logits"], title="mask_loss[background only]"))
    return reps


@register_case("mask_rcnn.roi_align")
def roi_align_cases():
    r = np.random.default_rng(2904)
    x = r.standard_normal((2, 2, 4, 4))
    f, b = F.roi_align, F.roi_align_backward
    return [check_function(f, b, [x, ROIS], wrt=[0], names=["x"], output_size=14, spatial_scale=0.5,
                           title="roi_align[14×14, the mask head's]"),
            check_function(f, b, [x, ROIS], wrt=[0], names=["x"], output_size=(3, 5), spatial_scale=0.5,
                           sampling_ratio=0, title="roi_align[3×5, adaptive sampling]")]


@register_case("mask_rcnn.mask_head")
def mask_head_case():
    r = np.random.default_rng(2905)
    head = off_kinks(MaskHead(2, 3, spatial_scale=0.5, roi_size=3, channels=3, num_convs=2, rng=r, dtype=np.float64))
    rep = check_module(WithRois(head, ROIS), r.standard_normal((2, 2, 4, 4)))
    rep.title = "mask_head[2 convs, 3×3 → 6×6 masks]"
    return rep


@register_case("mask_rcnn.mask_rcnn")
def mask_rcnn_case():
    x, _, _ = tiny_scene()
    reports = []
    for stage, title in ((None, ""), (0, ", mask head on stage 0")):
        rep = check_module(WithRois(tiny_mask_model(mask_stage=stage), ROIS), x, fast=True)
        rep.title = f"mask_rcnn[forward(x, rois), train{title}]"
        reports.append(rep)
    return reports


@register_case("mask_rcnn.mask_rcnn_loss")
def mask_rcnn_loss_case():
    x, boxes, labels = tiny_scene()
    masks = [tiny_masks(b, seed=k) for k, b in enumerate(boxes)]
    reports = []
    for stage, title in ((None, ""), (0, ", mask head on stage 0")):
        model = tiny_mask_model(mask_stage=stage)
        rep = check_module(MaskLossWithSampling(model, x, boxes, labels, masks), x, fast=True)
        rep.title = f"mask_rcnn.loss[fixed sampling, fixed masks{title}]"
        reports.append(rep)
    return reports
