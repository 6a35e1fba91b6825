"""Mask R-CNN (He, Gkioxari, Dollár & Girshick 2017): the Faster R-CNN of ``rcnn.py`` with a third
head, a small fully convolutional network that predicts one M × M mask per class for each region.

Legend: N images, C channels, H, W feature-map size (image size for masks), s stride, R regions,
R_fg foreground regions, K classes, S RoIAlign size (S = M/2), M mask size, d detections.

``MaskHead``: RoIAlign to S × S on the shared feature map → ``num_convs`` × [3×3 conv + ReLU] → a
2×2 transposed conv of stride 2 + ReLU (S → M = 2S) → a 1×1 conv to K mask logits. Training runs
it on the foreground regions of the Fast R-CNN sample only, with the target of each one its
matched ground-truth mask cut out by the region and resampled to M × M (``mask_targets``); the
loss is ``F.mask_loss`` on the gt class's channel. ``MaskRCNN.roi_backward`` sums the box head's and
the mask head's feature-map gradients; ``FasterRCNN.backward_loss`` adds the RPN's.
See chapters/29-mask-rcnn.md#mask-head and chapters/29-mask-rcnn.md#eq-mask-feature-grad.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import functional as F
from .._random import get_rng
from ..backend import asnumpy, get_array_module
from ..nn.conv import Conv2d, ConvTranspose2d
from ..nn.layers import ReLU
from ..nn.module import Module, Sequential, no_grad
from .rcnn import FasterRCNN, _with_batch_index

__all__ = ["MaskHead", "MaskRCNN", "TappedBackbone", "mask_targets", "paste_masks"]


class TappedBackbone(Sequential):
    """The backbone's layers, unchanged, with the output of layer ``tap`` kept as ``tapped`` (a finer
    feature map for the mask head) and a gradient for it taken by ``add_tap_grad``: ``backward``
    adds that gradient where the tap leaves the chain. See chapters/29-mask-rcnn.md#mask-stage.
    """

    def __init__(self, layers, tap):
        super().__init__(*layers)
        self.tap_index, self.tapped, self._dtap = tap, None, None

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i == self.tap_index:
                self.tapped = x  # (N, C_tap, H/s_tap, W/s_tap)
        return x

    def add_tap_grad(self, dtap):
        self._dtap = dtap if self._dtap is None else self._dtap + dtap

    def backward(self, dy):
        for i in reversed(range(len(self.layers))):  # dy is d(output of layer i) here
            if i == self.tap_index and self._dtap is not None:
                dy, self._dtap = dy + self._dtap, None  # the mask branch joins the chain
            dy = self.layers[i].backward(dy)
        return dy


class MaskHead(Module):
    """(features (N, C, H, W), rois (R, 5)) → mask logits (R, K, M, M), M = 2·roi_size.

    Backward: the 1×1 conv, the upsampling's ReLU and transposed conv, the conv stack in reverse,
    then RoIAlign's scatter into the feature map (the rois get no gradient).
    See chapters/29-mask-rcnn.md#mask-head.
    """

    def __init__(self, in_channels, num_classes, *, spatial_scale, roi_size=14, channels=64, num_convs=2,
                 rng=None, dtype=np.float32):
        super().__init__()
        if num_convs < 1 or roi_size < 1:
            raise ValueError(f"MaskHead: need num_convs ≥ 1 and roi_size ≥ 1, got {num_convs}, {roi_size}")
        rng = get_rng(rng)
        self.num_classes, self.roi_size, self.spatial_scale = num_classes, roi_size, spatial_scale
        self.convs = [Conv2d(in_channels if i == 0 else channels, channels, 3, padding=1, init="he", rng=rng,
                             dtype=dtype) for i in range(num_convs)]
        self.relus = [ReLU() for _ in range(num_convs)]
        self.up = ConvTranspose2d(channels, channels, 2, stride=2, init="he", rng=rng, dtype=dtype)
        self.up_relu = ReLU()
        self.out = Conv2d(channels, num_classes, 1, rng=rng, dtype=dtype)

    # start-mask-head
    def forward(self, features, rois):
        p, c_align = F.roi_align(features, rois, self.roi_size, self.spatial_scale, sampling_ratio=2)  # (R, C, S, S)
        self.push(c_align)
        h = p
        for conv, relu in zip(self.convs, self.relus):  # 3×3 convs at S × S: the FCN keeps the layout
            h = relu(conv(h))  # (R, channels, S, S)
        u = self.up_relu(self.up(h))  # (R, channels, M, M) upsampled ×2
        return self.out(u)  # (R, K, M, M) one mask logit map per class

    def backward(self, dlogits):
        c_align = self.pop()
        du = self.out.backward(dlogits)  # (R, channels, M, M) through the 1×1 conv
        dh = self.up.backward(self.up_relu.backward(du))  # (R, channels, S, S) through ReLU and the upsampling
        for conv, relu in zip(reversed(self.convs), reversed(self.relus)):  # the conv stack in reverse
            dh = conv.backward(relu.backward(dh))
        return F.roi_align_backward(dh, c_align)  # (N, C, H, W) scattered to the four taps of each sample
    # end-mask-head


# start-mask-targets
def mask_targets(gt_masks, boxes, matched, mask_size, *, dtype=np.float32):
    """Each region's target: its matched ground-truth mask (G, H, W) bool, cut out by the region's box
    (R, 4) and resampled to mask_size² with RoIAlign (the same sampling as the features), ≥ 0.5.
    matched (R,) indexes gt_masks. → (R, M, M) in {0, 1}, a constant (no gradient flows to it)."""
    gt_masks, boxes = np.asarray(gt_masks), np.asarray(boxes)
    if gt_masks.ndim != 3 or boxes.ndim != 2 or boxes.shape[1] != 4 or np.shape(matched) != boxes.shape[:1]:
        raise ValueError(f"mask_targets: expected gt_masks (G, H, W), boxes (R, 4), matched (R,); got "
                         f"{gt_masks.shape}, {boxes.shape}, {np.shape(matched)}")
    if len(boxes) == 0:
        return np.zeros((0, mask_size, mask_size), dtype=dtype)
    rois = np.concatenate([np.asarray(matched)[:, None], boxes], axis=1).astype(dtype)  # (R, 5): mask as "image"
    soft, _ = F.roi_align(gt_masks[:, None].astype(dtype), rois, mask_size, 1.0, sampling_ratio=2)  # (R, 1, M, M)
    return (soft[:, 0] >= 0.5).astype(dtype)  # binarised, as the paper's targets
# end-mask-targets


def _paste_matrix(lo, hi, length, M):
    """(d, length, M) bilinear weights of the M mask cells at each pixel centre of one image axis, zero
    for pixels whose centre lies outside [lo, hi] (the inverse of RoIAlign's sampling)."""
    c = np.arange(length) + 0.5  # (length,) pixel centres
    size = np.maximum(hi - lo, 1e-6)[:, None]  # (d, 1)
    u = np.clip((c[None, :] - lo[:, None]) / size * M - 0.5, 0, M - 1)  # (d, length) mask coordinates
    i0 = np.floor(u).astype(np.int64)
    i1, f = np.minimum(i0 + 1, M - 1), u - i0
    inside = (c[None, :] >= lo[:, None]) & (c[None, :] <= hi[:, None])  # (d, length)
    A = np.zeros((len(lo), length, M))  # (d, length, M)
    d_idx, p_idx = np.meshgrid(np.arange(len(lo)), np.arange(length), indexing="ij")
    np.add.at(A, (d_idx, p_idx, i0), (1 - f) * inside)
    np.add.at(A, (d_idx, p_idx, i1), f * inside)
    return A


# start-paste
def paste_masks(probs, boxes, img_hw, threshold=0.5):
    """Paste each M × M probability map (d, M, M) into its box (d, 4) on an image of size img_hw:
    bilinear resize to the box, zero outside it, thresholded → bool (d, H, W)."""
    probs, boxes = np.asarray(probs, dtype=np.float64), np.asarray(boxes, dtype=np.float64)
    H, W = int(img_hw[0]), int(img_hw[1])
    if len(boxes) == 0:
        return np.zeros((0, H, W), dtype=bool)
    M = probs.shape[-1]
    Ay = _paste_matrix(boxes[:, 1], boxes[:, 3], H, M)  # (d, H, M) rows
    Ax = _paste_matrix(boxes[:, 0], boxes[:, 2], W, M)  # (d, W, M) columns
    full = (Ay @ probs) @ Ax.transpose(0, 2, 1)  # (d, H, W) = A_y P A_xᵀ per detection, two small products
    return full >= threshold
# end-paste


class MaskRoICache(NamedTuple):
    """The box head's loss cache, the mask loss's (None when no region was foreground), the terms."""
    c_box: object
    c_mask: object
    parts: dict


class MaskRCNN(FasterRCNN):
    """Faster R-CNN + ``MaskHead`` on the same feature map. ``forward(x, rois)`` adds the mask logits
    (R, K, M, M) of the given regions; ``loss(x, boxes, labels, extra=masks)`` adds the mask loss on
    the foreground regions (``masks`` per image: bool (k, H, W)); ``predict(x, masks=True)`` adds a
    full-image bool mask per detection. Other keywords as ``FasterRCNN``."""

    def __init__(self, num_classes, *, mask_size=28, mask_channels=64, mask_convs=2, mask_stage=None, rng=None,
                 dtype=np.float32, **kwargs):
        if mask_size < 2 or mask_size % 2:
            raise ValueError(f"MaskRCNN: mask_size must be an even number ≥ 2 (RoIAlign at mask_size/2, "
                             f"upsampled ×2), got {mask_size}")
        rng = get_rng(rng)
        super().__init__(num_classes, rng=rng, dtype=dtype, **kwargs)
        self.mask_size, self.mask_channels, self.mask_convs = mask_size, mask_channels, mask_convs
        last = len(self.widths) - 1
        self.mask_stage = last if mask_stage is None else int(mask_stage)
        if not 0 <= self.mask_stage <= last:
            raise ValueError(f"MaskRCNN: mask_stage must be a backbone stage in [0, {last}], got {mask_stage}")
        if self.mask_stage < last:  # the mask head reads a finer map: tap the backbone after that stage's ReLU
            stage_ends = [i for i, layer in enumerate(self.backbone.layers) if isinstance(layer, ReLU)]
            self.backbone = TappedBackbone(self.backbone.layers, stage_ends[self.mask_stage])
        mask_stride = self.stem_stride * 2 ** self.mask_stage
        self.mask_head = MaskHead(self.widths[self.mask_stage], num_classes, spatial_scale=1.0 / mask_stride,
                                  roi_size=mask_size // 2, channels=mask_channels, num_convs=mask_convs, rng=rng,
                                  dtype=dtype)

    def forward(self, x, rois):
        self._check(x)
        features = self.backbone(x)  # (N, C, H/s, W/s) shared by the three heads
        objectness, deltas = self.rpn(features)  # (N, M), (N, M, 4)
        scores, box_deltas = self.box_head(features, rois)  # (R, K + 1), (R, 4(K + 1))
        return objectness, deltas, scores, box_deltas, self.mask_head(self._mask_features(features), rois)

    def backward(self, dout):
        *dbox, dmasks = dout
        dfeat_mask = self._mask_feature_grad(self.mask_head.backward(dmasks))  # the mask branch
        dfeat_roi = self.box_head.backward(tuple(dbox[2:]))
        dfeat_rpn = self.rpn.backward(tuple(dbox[:2]))
        return self.backbone.backward(dfeat_rpn + dfeat_roi + dfeat_mask)  # three branches, one sum

    def _mask_features(self, features):
        """The map the mask head reads: the shared one, or the tapped finer stage."""
        return features if self.mask_stage == len(self.widths) - 1 else self.backbone.tapped

    def _mask_feature_grad(self, dmask_features):
        """The mask branch's gradient as a gradient of the shared map (zero when it went to the tap)."""
        if self.mask_stage == len(self.widths) - 1:
            return dmask_features
        self.backbone.add_tap_grad(dmask_features)  # joins the chain inside the backbone's backward
        return 0.0

    # start-mask-roi-losses
    def roi_losses(self, features, roi_boxes, rois, extra=None):
        """Box head loss + mask loss; ``extra`` = each image's gt masks (k, H, W), ``rois[n][3]`` the
        matched gt index of each region. The mask head sees the foreground regions only."""
        self._check_masks(features, rois, extra)
        l_box, c_box = super().roi_losses(features, roi_boxes, rois)
        labels = np.concatenate([r[1] for r in rois])  # (R,) 0 = background
        fg = np.flatnonzero(labels >= 1)  # (R_fg,) in the same order as the per-image fg rows below
        if len(fg) == 0:
            return l_box, MaskRoICache(c_box, None, {**c_box.parts, "mask": 0.0})
        targets = np.concatenate([mask_targets(extra[n], r[0][r[1] >= 1], r[3][r[1] >= 1], self.mask_size,
                                               dtype=features.dtype) for n, r in enumerate(rois)])  # (R_fg, M, M)
        xp = get_array_module(features)  # the host-drawn samples go beside the features
        logits = self.mask_head(self._mask_features(features), roi_boxes[xp.asarray(fg)])  # (R_fg, K, M, M)
        l_mask, c_mask = F.mask_loss(logits, xp.asarray(labels[fg]), xp.asarray(targets))
        return l_box + l_mask, MaskRoICache(c_box, c_mask, {**c_box.parts, **c_mask.parts})

    def roi_backward(self, dloss, cache):
        """dfeatures of ``roi_losses``: the box head's plus the mask head's."""
        dfeat = super().roi_backward(dloss, cache.c_box)  # (N, C, H, W) the box branch
        if cache.c_mask is not None:
            dlogits = F.mask_loss_backward(dloss, cache.c_mask)  # (R_fg, K, M, M) only the gt channel
            dfeat = dfeat + self._mask_feature_grad(self.mask_head.backward(dlogits))  # the mask branch, summed
        return dfeat
    # end-mask-roi-losses

    def _check_masks(self, features, rois, extra):
        if extra is None or len(extra) != len(rois):
            raise ValueError(f"MaskRCNN.loss: extra must hold one bool mask array (k, H, W) per image "
                             f"({len(rois)} images), got {None if extra is None else len(extra)}")
        H, W = features.shape[2] * self.stride, features.shape[3] * self.stride
        for n, m in enumerate(extra):
            if np.ndim(m) != 3 or np.shape(m)[1:] != (H, W) or len(m) < int(np.max(rois[n][3], initial=-1)) + 1:
                raise ValueError(f"MaskRCNN.loss: image {n}'s masks must be (k, {H}, {W}) with one mask per gt "
                                 f"box, got shape {np.shape(m)}")

    def predict_masks(self, x, boxes, labels, *, batch_size=32, roi_chunk=128):
        """Mask probabilities (d, M, M) of each image's detections: the channel of the predicted class.
        The mask head runs on at most ``roi_chunk`` regions at a time (its im2col grows with them)."""
        self.eval()
        out, M = [], self.mask_size
        with no_grad():
            for i in range(0, len(x), batch_size):
                bb, ll = boxes[i:i + batch_size], labels[i:i + batch_size]
                counts = [len(b) for b in bb]
                if sum(counts) == 0:
                    out += [np.zeros((0, M, M), dtype=x.dtype) for _ in bb]
                    continue
                features = self.backbone(x[i:i + batch_size])  # recomputed: predict's box pass keeps none
                rois, lab = _with_batch_index(bb, x.dtype), np.concatenate(ll).astype(np.int64)
                p = np.concatenate([self._mask_probs(features, rois[k:k + roi_chunk], lab[k:k + roi_chunk])
                                    for k in range(0, len(rois), roi_chunk)])  # (d, M, M)
                out += np.split(p, np.cumsum(counts)[:-1])
        return out

    def _mask_probs(self, features, rois, labels):
        logits = asnumpy(self.mask_head(self._mask_features(features), rois))  # (r, K, M, M)
        return F.stable_sigmoid(logits[np.arange(len(labels)), labels])  # (r, M, M) the predicted class's mask

    def predict(self, x, *, masks=False, mask_threshold=0.5, batch_size=32, **kwargs):
        """``FasterRCNN.predict``; with ``masks`` each image's tuple gains bool masks (d, H, W)."""
        dets = super().predict(x, batch_size=batch_size, **kwargs)
        if not masks:
            return dets
        probs = self.predict_masks(x, [d[0] for d in dets], [d[2] for d in dets], batch_size=batch_size)
        return [(b, s, lab, paste_masks(p, b, x.shape[2:], mask_threshold)) for (b, s, lab), p in zip(dets, probs)]

    def config(self):
        return {**super().config(), "class": "MaskRCNN", "mask_size": self.mask_size,
                "mask_channels": self.mask_channels, "mask_convs": self.mask_convs, "mask_stage": self.mask_stage}
