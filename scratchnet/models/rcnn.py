"""Faster R-CNN (Ren, He, Girshick & Sun 2015) with a small backbone trained from scratch: a region
proposal network (RPN) on a shared feature map, a proposal layer, and the Fast R-CNN head
(Girshick 2015) on RoI-pooled features.

Legend: N images, C channels, H, W feature-map size, s stride, A anchors per cell, M = H·W·A
anchors per image, R regions of interest, K classes (+ 1 background), P pooled size.

Backbone: stages of [3×3 conv (no bias) → BN → ReLU] with a 2×2 max pool between stages, so
``len(widths) − 1`` pools give stride s = 2^(len − 1) (times ``stem_stride`` when the first conv is
strided, for large images). ``RPNHead``: 3×3 conv + ReLU, then two 1×1
convs (A objectness logits, 4A box deltas per cell). The proposal layer (decode, clip, drop tiny,
NMS, top-k) is not differentiable: its boxes are constants for the RoI head, which is Ren et al.'s
"approximate joint training" (the gradient of the RoI loss with respect to the proposal
coordinates is ignored; it is what their released code does). ``BoxHead``: RoIAlign (or RoI
pooling) to P × P, two fc layers, class scores and class-specific deltas. ``FasterRCNN.backward``
sums the feature-map gradients of the two branches before the backbone's backward.
See chapters/27-rcnn.md#faster-rcnn and chapters/27-rcnn.md#eq-feature-grad.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .._random import get_rng
from ..backend import asnumpy, get_array_module
from ..boxes import box_iou, decode_boxes, encode_boxes, make_anchors, sample_anchors
from ..nn import init
from ..nn.conv import Conv2d, MaxPool2d
from ..nn.layers import BatchNorm2d, Linear, ReLU
from ..nn.module import Module, Sequential, no_grad

__all__ = ["make_backbone", "RPNHead", "BoxHead", "FasterRCNN", "greedy_nms", "class_nms", "propose",
           "sample_rois", "rpn_targets", "HEAD_WEIGHTS"]

HEAD_WEIGHTS = (10.0, 10.0, 5.0, 5.0)  # box-head target scaling (the released code's normalisation)


def make_backbone(in_channels, widths, *, stem_stride=1, rng=None, dtype=np.float32):
    """[conv-BN-ReLU] per width, a 2×2 max pool between stages, the first conv strided by
    ``stem_stride`` (large images): stride stem_stride·2^(len(widths) − 1)."""
    rng = get_rng(rng)
    layers, cin = [], in_channels
    for i, w in enumerate(widths):
        if i:
            layers.append(MaxPool2d(2))
        layers += [Conv2d(cin, w, 3, stride=1 if i else stem_stride, padding=1, bias=False, init="he", rng=rng,
                          dtype=dtype), BatchNorm2d(w, dtype=dtype), ReLU()]
        cin = w
    return Sequential(*layers)


def _small(layer, std, rng):
    """Gaussian init with a small std and zero bias (the paper's for the output layers)."""
    layer.weight.data[...] = init.normal(layer.weight.shape, std, rng=rng, dtype=layer.weight.dtype)
    layer.bias.data[...] = 0
    return layer


class RPNHead(Module):
    """(N, C, H, W) features → objectness (N, M) logits and deltas (N, M, 4), M = H·W·A in
    ``make_anchors`` order (row, column, anchor). Backward: the two 1×1 convs' dx summed, the ReLU, the 3×3 conv."""

    def __init__(self, in_channels, num_anchors, *, mid_channels=None, rng=None, dtype=np.float32):
        super().__init__()
        rng = get_rng(rng)
        mid = mid_channels or in_channels
        self.num_anchors = num_anchors
        self.conv = Conv2d(in_channels, mid, 3, padding=1, init="he", rng=rng, dtype=dtype)
        self.relu = ReLU()
        self.cls = _small(Conv2d(mid, num_anchors, 1, rng=rng, dtype=dtype), 0.01, rng)
        self.reg = _small(Conv2d(mid, 4 * num_anchors, 1, rng=rng, dtype=dtype), 0.01, rng)

    # start-rpn-head
    def forward(self, h):
        N, _, H, W = h.shape
        t = self.relu(self.conv(h))  # (N, mid, H, W) the 3×3 "sliding window"
        o = self.cls(t)  # (N, A, H, W) one logit per anchor
        d = self.reg(t)  # (N, 4A, H, W) four deltas per anchor
        self.push((N, H, W))
        objectness = o.transpose(0, 2, 3, 1).reshape(N, -1)  # (N, H·W·A) anchor order
        deltas = d.transpose(0, 2, 3, 1).reshape(N, -1, 4)  # (N, H·W·A, 4)
        return objectness, deltas

    def backward(self, dout):
        dobjectness, ddeltas = dout
        N, H, W = self.pop()
        A = self.num_anchors
        do = dobjectness.reshape(N, H, W, A).transpose(0, 3, 1, 2)  # back to (N, A, H, W)
        dd = ddeltas.reshape(N, H, W, 4 * A).transpose(0, 3, 1, 2)  # back to (N, 4A, H, W)
        xp = get_array_module(do)
        dt = self.cls.backward(xp.ascontiguousarray(do)) + self.reg.backward(xp.ascontiguousarray(dd))  # t feeds both
        return self.conv.backward(self.relu.backward(dt))  # through the ReLU and the 3×3 conv
    # end-rpn-head


class BoxHead(Module):
    """Fast R-CNN head: (features (N, C, H, W), rois (R, 5)) → scores (R, K + 1), deltas (R, 4(K + 1)).

    ``pool`` "align" (RoIAlign, sampling ratio 2) or "pool" (RoI max pooling, the paper's).
    Backward: the two output layers' dh summed, the fc stack, the pooling's backward into the
    feature map (the rois get no gradient). See chapters/27-rcnn.md#fast-rcnn.
    """

    def __init__(self, in_channels, num_classes, *, spatial_scale, pool_size=7, hidden=256, pool="align",
                 rng=None, dtype=np.float32):
        super().__init__()
        if pool not in ("align", "pool"):
            raise ValueError(f"BoxHead: pool must be 'align' or 'pool', got {pool!r}")
        rng = get_rng(rng)
        self.num_classes, self.pool, self.pool_size, self.spatial_scale = num_classes, pool, pool_size, spatial_scale
        self.fc1 = Linear(in_channels * pool_size * pool_size, hidden, rng=rng, dtype=dtype)
        self.relu1, self.fc2, self.relu2 = ReLU(), Linear(hidden, hidden, rng=rng, dtype=dtype), ReLU()
        self.cls = _small(Linear(hidden, num_classes + 1, rng=rng, dtype=dtype), 0.01, rng)
        self.reg = _small(Linear(hidden, 4 * (num_classes + 1), rng=rng, dtype=dtype), 0.001, rng)

    # start-box-head
    def forward(self, features, rois):
        if self.pool == "align":
            p, c_pool = F.roi_align(features, rois, self.pool_size, self.spatial_scale, sampling_ratio=2)
        else:
            p, c_pool = F.roi_pool(features, rois, self.pool_size, self.spatial_scale)  # (R, C, P, P)
        self.push((c_pool, p.shape))
        h = self.relu2(self.fc2(self.relu1(self.fc1(p.reshape(p.shape[0], -1)))))  # (R, hidden)
        return self.cls(h), self.reg(h)  # (R, K + 1), (R, 4(K + 1))

    def backward(self, dout):
        dscores, ddeltas = dout
        c_pool, p_shape = self.pop()
        dh = self.cls.backward(dscores) + self.reg.backward(ddeltas)  # h feeds both outputs
        dz = self.fc1.backward(self.relu1.backward(self.fc2.backward(self.relu2.backward(dh))))  # (R, C·P·P)
        backward = F.roi_align_backward if self.pool == "align" else F.roi_pool_backward
        return backward(dz.reshape(p_shape), c_pool)  # (N, C, H, W) scattered back to the feature map
    # end-box-head


# -- the non-differentiable pieces: targets, proposals, sampling ------------------------------------
def rpn_targets(anchors, gt_boxes, *, batch=256, pos_thr=0.7, neg_thr=0.3, rng=None):
    """Labels (M,) in {1, 0, −1} and encoded targets (M, 4) of one image's anchors (paper's sampling)."""
    ious = box_iou(anchors, gt_boxes)  # (M, G)
    labels, matched = sample_anchors(ious, pos_thr, neg_thr, batch, 0.5, rng)
    if len(gt_boxes) == 0:
        return labels, np.zeros_like(anchors)
    return labels, encode_boxes(gt_boxes[matched], anchors)  # (M, 4), read only on positives


def greedy_nms(boxes, scores, iou_threshold, top=None):
    """``boxes.nms`` with the IoU matrix computed once and an early stop after ``top`` kept boxes
    (the same indices, by descending score; the proposal layer calls it on hundreds of boxes)."""
    order = np.argsort(-scores, kind="stable")  # (P,) best first
    iou = box_iou(boxes[order], boxes[order])  # (P, P) once, instead of one row per kept box
    gone, keep = np.zeros(len(order), dtype=bool), []
    for i in range(len(order)):  # visit in score order; a kept box suppresses its overlaps
        if gone[i]:
            continue
        keep.append(i)
        if top is not None and len(keep) == top:
            break
        gone |= iou[i] > iou_threshold
    return order[np.asarray(keep, dtype=np.int64)]


def class_nms(boxes, scores, labels, iou_threshold, top):
    """``greedy_nms`` within each class (boxes of different labels never suppress each other), the
    best ``top`` overall by descending score."""
    keep = [idx[greedy_nms(boxes[idx], scores[idx], iou_threshold)] for idx in
            (np.flatnonzero(labels == c) for c in np.unique(labels))]
    keep = np.concatenate(keep) if keep else np.zeros(0, dtype=np.int64)
    return keep[np.argsort(-scores[keep], kind="stable")][:top]


def propose(objectness, deltas, anchors, img_hw, *, pre_nms=600, post_nms=100, nms_iou=0.7, min_size=2.0):
    """The proposal layer for one image: top ``pre_nms`` anchors by objectness, decoded and clipped,
    boxes narrower than ``min_size`` dropped, NMS at ``nms_iou``, the best ``post_nms`` kept.
    objectness (M,), deltas (M, 4) → boxes (P, 4), scores (P,). Constants for what follows."""
    o, d = asnumpy(objectness), asnumpy(deltas)
    top = np.argsort(-o, kind="stable")[:pre_nms]  # (pre_nms,) best anchors first
    boxes = decode_boxes(d[top], anchors[top], clip_hw=img_hw)  # (pre_nms, 4)
    wide = ((boxes[:, 2] - boxes[:, 0]) >= min_size) & ((boxes[:, 3] - boxes[:, 1]) >= min_size)
    boxes, scores = boxes[wide], o[top][wide]
    keep = greedy_nms(boxes, scores, nms_iou, post_nms)
    return boxes[keep], scores[keep]


def sample_rois(proposals, gt_boxes, gt_labels, *, batch=64, fg_fraction=0.25, fg_thr=0.5, bg_lo=0.0,
                weights=HEAD_WEIGHTS, rng=None):
    """Fast R-CNN's mini-batch of regions for one image: the gt boxes join the proposals; foreground
    (IoU ≥ ``fg_thr``, at most batch·fg_fraction, label = class + 1) and background (IoU in
    [bg_lo, fg_thr), label 0) drawn at random. → rois (R, 4), labels (R,), targets (R, 4), matched (R,)."""
    rng = get_rng(rng)
    boxes = np.concatenate([proposals, gt_boxes]).astype(proposals.dtype)  # (P + G, 4)
    if len(gt_boxes) == 0:
        best, matched = np.zeros(len(boxes)), np.zeros(len(boxes), dtype=np.int64)
    else:
        ious = box_iou(boxes, gt_boxes)  # (P + G, G)
        matched, best = ious.argmax(axis=1), ious.max(axis=1)
    fg, bg = np.flatnonzero(best >= fg_thr), np.flatnonzero((best < fg_thr) & (best >= bg_lo))
    fg = rng.permutation(fg)[:int(batch * fg_fraction)]
    bg = rng.permutation(bg)[:batch - len(fg)]
    keep = np.concatenate([fg, bg])
    labels = np.zeros(len(keep), dtype=np.int64)
    labels[:len(fg)] = gt_labels[matched[fg]] + 1 if len(gt_boxes) else 0
    targets = np.zeros((len(keep), 4), dtype=boxes.dtype)
    if len(fg):
        targets[:len(fg)] = encode_boxes(gt_boxes[matched[fg]].astype(boxes.dtype), boxes[fg], weights)
    return boxes[keep], labels, targets, matched[keep]


def _with_batch_index(boxes_per_image, dtype):
    """[(R_n, 4)] → rois (ΣR_n, 5) with the image index in column 0."""
    return np.concatenate([np.concatenate([np.full((len(b), 1), n), b], axis=1)
                           for n, b in enumerate(boxes_per_image)]).astype(dtype)


class FasterRCNN(Module):
    """Backbone + RPN + box head. ``forward(x, rois)`` is the differentiable core: (objectness (N, M),
    deltas (N, M, 4), scores (R, K + 1), box deltas (R, 4(K + 1))). ``loss`` adds targets, proposals and
    sampling; ``predict`` gives boxes per image. ``box_head`` may be any module with the BoxHead
    interface; subclasses add RoI heads by overriding ``roi_losses`` / ``roi_backward``.
    """

    def __init__(self, num_classes, *, in_channels=1, widths=(16, 32, 64, 64), anchor_sizes=(16, 24, 36),
                 anchor_ratios=(1.0, 2.0), stem_stride=1, rpn_channels=None, pool="align", pool_size=7, hidden=256,
                 rpn_batch=256, roi_batch=64, pre_nms=600, post_nms=100, box_head=None, rng=None, dtype=np.float32):
        super().__init__()
        rng = get_rng(rng)
        self.num_classes, self.in_channels, self.widths = num_classes, in_channels, tuple(widths)
        self.stem_stride, self.stride = stem_stride, stem_stride * 2 ** (len(widths) - 1)
        self.anchor_sizes, self.anchor_ratios = tuple(anchor_sizes), tuple(anchor_ratios)
        self.rpn_batch, self.roi_batch, self.pre_nms, self.post_nms = rpn_batch, roi_batch, pre_nms, post_nms
        self.backbone = make_backbone(in_channels, widths, stem_stride=stem_stride, rng=rng, dtype=dtype)
        A = len(anchor_sizes) * len(anchor_ratios)
        self.rpn = RPNHead(widths[-1], A, mid_channels=rpn_channels, rng=rng, dtype=dtype)
        self.box_head = box_head or BoxHead(widths[-1], num_classes, spatial_scale=1.0 / self.stride,
                                            pool_size=pool_size, hidden=hidden, pool=pool, rng=rng, dtype=dtype)

    def anchors(self, img_hw):
        """The (M, 4) anchors of an image of size ``img_hw``."""
        return make_anchors((img_hw[0] // self.stride, img_hw[1] // self.stride), self.stride,
                            self.anchor_sizes, self.anchor_ratios)

    def _check(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[2] % self.stride or x.shape[3] % self.stride:
            raise ValueError(f"FasterRCNN: expected input (N, {self.in_channels}, H, W) with H and W multiples "
                             f"of the stride {self.stride}, got shape {tuple(x.shape)}")

    # start-faster-rcnn
    def forward(self, x, rois):
        self._check(x)
        features = self.backbone(x)  # (N, C, H/s, W/s) shared by both branches
        objectness, deltas = self.rpn(features)  # (N, M), (N, M, 4)
        scores, box_deltas = self.box_head(features, rois)  # (R, K + 1), (R, 4(K + 1))
        return objectness, deltas, scores, box_deltas

    def backward(self, dout):
        dobjectness, ddeltas, dscores, dbox_deltas = dout
        dfeat_roi = self.box_head.backward((dscores, dbox_deltas))  # the RoI branch, into the feature map
        dfeat_rpn = self.rpn.backward((dobjectness, ddeltas))  # the RPN branch
        return self.backbone.backward(dfeat_rpn + dfeat_roi)  # the shared map gets the sum
    # end-faster-rcnn

    # start-loss
    def loss(self, x, gt_boxes, gt_labels, *, rng=None, sampled=None, extra=None):
        """Total training loss of a batch (approximate joint training); ``backward_loss`` follows.
        ``sampled`` (from ``self.last_sampled``) replays a sampling: a fixed one for gradient checks.
        ``extra``: per-image targets of added heads (e.g. masks), handed to ``roi_losses``."""
        rng = get_rng(rng)
        self._check(x)
        img_hw, N = x.shape[2:], x.shape[0]
        features = self.backbone(x)  # (N, C, H/s, W/s)
        objectness, deltas = self.rpn(features)  # (N, M), (N, M, 4)
        anchors = self.anchors(img_hw)
        if sampled is None:
            rpn_t = [rpn_targets(anchors, gt_boxes[n], batch=self.rpn_batch, rng=rng) for n in range(N)]
            props = [propose(objectness[n], deltas[n], anchors, img_hw, pre_nms=self.pre_nms,
                             post_nms=self.post_nms)[0] for n in range(N)]  # constants: no gradient
            rois = [sample_rois(props[n], gt_boxes[n], gt_labels[n], batch=self.roi_batch, rng=rng)
                    for n in range(N)]
            sampled = (np.concatenate([t[0] for t in rpn_t]), np.concatenate([t[1] for t in rpn_t]), rois)
        self.last_sampled = sampled
        rpn_labels, rpn_t, rois = sampled  # drawn on the host (NumPy), whatever device x is on
        xp = get_array_module(objectness)
        l_rpn, c_rpn = F.rpn_loss(objectness.reshape(-1), deltas.reshape(-1, 4), xp.asarray(rpn_labels),
                                  xp.asarray(rpn_t))
        roi_boxes = xp.asarray(_with_batch_index([r[0] for r in rois], x.dtype))  # (R, 5) beside the features
        l_roi, c_roi = self.roi_losses(features, roi_boxes, rois, extra)
        self.push((c_rpn, c_roi, objectness.shape))
        self.parts = {**c_rpn.parts, **c_roi.parts}
        return l_rpn + l_roi

    def backward_loss(self, dloss=1.0):
        """Gradients of ``loss`` into every parameter (and the input image)."""
        c_rpn, c_roi, o_shape = self.pop()
        dobjectness, ddeltas = F.rpn_loss_backward(dloss, c_rpn)  # (N·M,), (N·M, 4)
        dfeat_roi = self.roi_backward(dloss, c_roi)  # the RoI branch(es)
        dfeat_rpn = self.rpn.backward((dobjectness.reshape(o_shape), ddeltas.reshape(*o_shape, 4)))
        return self.backbone.backward(dfeat_rpn + dfeat_roi)  # one backward through the shared backbone
    # end-loss

    def roi_losses(self, features, roi_boxes, rois, extra=None):
        """The Fast R-CNN head's loss on the sampled regions; ``rois[n]`` = (boxes, labels, targets,
        matched gt index) of image n. Override (with ``roi_backward``) to add heads, e.g. masks."""
        scores, box_deltas = self.box_head(features, roi_boxes)
        xp = get_array_module(features)
        labels = xp.asarray(np.concatenate([r[1] for r in rois]))  # (R,) host samples, beside the scores
        targets = xp.asarray(np.concatenate([r[2] for r in rois]).astype(features.dtype))  # (R, 4)
        return F.fast_rcnn_loss(scores, box_deltas, labels, targets)

    def roi_backward(self, dloss, cache):
        """dfeatures of ``roi_losses``."""
        return self.box_head.backward(F.fast_rcnn_loss_backward(dloss, cache))

    def predict(self, x, *, score_threshold=0.05, nms_iou=0.5, max_det=100, post_nms=None, batch_size=32):
        """[(boxes (d, 4), scores (d,), labels (d,) in [0, K))] per image: evaluation mode, per-class NMS."""
        self.eval()
        out = []
        with no_grad():
            for i in range(0, len(x), batch_size):
                out += self._predict_batch(x[i:i + batch_size], score_threshold, nms_iou, max_det,
                                           post_nms or self.post_nms)
        return out

    def _predict_batch(self, x, score_threshold, nms_iou, max_det, post_nms):
        img_hw, K = x.shape[2:], self.num_classes
        features = self.backbone(x)
        objectness, deltas = self.rpn(features)
        anchors = self.anchors(img_hw)
        props = [propose(objectness[n], deltas[n], anchors, img_hw, pre_nms=2 * post_nms, post_nms=post_nms)[0]
                 for n in range(len(x))]
        scores, box_deltas = self.box_head(features, _with_batch_index(props, x.dtype))
        probs = asnumpy(F.softmax(scores)[0])[:, 1:]  # (R, K) without the background
        box_deltas = asnumpy(box_deltas).reshape(-1, K + 1, 4)[:, 1:]  # (R, K, 4)
        out, start = [], 0
        for p in props:  # one image at a time
            r = slice(start, start + len(p))
            start += len(p)
            boxes = decode_boxes(box_deltas[r].reshape(-1, 4), np.repeat(p, K, axis=0), HEAD_WEIGHTS,
                                 clip_hw=img_hw)  # (R_n·K, 4) one box per class
            s, lab = probs[r].reshape(-1), np.tile(np.arange(K), len(p))
            keep = np.flatnonzero(s >= score_threshold)
            keep = keep[class_nms(boxes[keep], s[keep], lab[keep], nms_iou, max_det)]
            out.append((boxes[keep], s[keep], lab[keep]))
        return out

    def config(self):
        return {"class": "FasterRCNN", "num_classes": self.num_classes, "in_channels": self.in_channels,
                "widths": list(self.widths), "stem_stride": self.stem_stride, "anchor_sizes": list(self.anchor_sizes),
                "anchor_ratios": list(self.anchor_ratios)}

    def extra_repr(self):
        return (f"num_classes={self.num_classes}, stride={self.stride}, anchors={len(self.anchor_sizes)}×"
                f"{len(self.anchor_ratios)}")
