"""A small YOLO-style detector trained from scratch (after Redmon et al. 2016, "You only look once").

Legend: N batch, C channels, H, W image size, S_y × S_x the output grid (H / stride × W / stride),
B boxes per cell, K classes, D = 5B + K.

Backbone: stages of [3×3 conv (no bias) → BatchNorm → LeakyReLU(0.1)], a 2×2 max pool between
stages, so ``len(widths) − 1`` pools give stride 2^(len − 1); then one more 3×3 conv-BN-LeakyReLU.
Head (``YOLOHead``): a 1×1 conv to D channels, moved to channels-last (N, S_y, S_x, D), then
x, y, C = σ(t) ∈ (0, 1); w, h = σ(t) ∈ (0, 1) as fractions of the image, so w, h > 0 and the loss's
√w is defined with a finite derivative; the K class scores go through a softmax. (YOLO v1 ends in
fully connected layers and a linear output; a convolutional head, as in v2, is smaller and keeps
the grid.) ``decode`` turns the tensor into boxes: score = C·p(class), a threshold, per-class
NMS. See chapters/28-yolo.md#yolo-network.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .._checks import check_grad
from .._random import get_rng
from ..backend import asnumpy, get_array_module
from ..boxes import batched_nms, clip_boxes
from ..functional.yolo import _corners, yolo_v1_loss, yolo_v1_loss_backward
from ..nn.conv import Conv2d, MaxPool2d
from ..nn.layers import BatchNorm2d, LeakyReLU
from ..nn.module import Module, Sequential, no_grad
from .detect_train import detector_map, train_detector

__all__ = ["YOLOHead", "YOLO", "YOLOLoss", "decode", "flip_batch", "evaluate_map", "train_yolo"]


def _conv_bn_leaky(cin, cout, rng, dtype):
    """[3×3 conv (no bias: BN's β replaces it), BN, LeakyReLU(0.1)] as a list."""
    return [Conv2d(cin, cout, 3, padding=1, bias=False, init="he", rng=rng, dtype=dtype),
            BatchNorm2d(cout, dtype=dtype), LeakyReLU(0.1)]


class YOLOHead(Module):
    """(N, C, S_y, S_x) features → (N, S_y, S_x, 5B + K): 1×1 conv, σ on every box entry, softmax on classes.

    Backward: the two activations' backwards on their slices, back to channels-first, the conv's.
    ``conf_bias`` starts every confidence at σ(conf_bias) (most cells hold no object).
    """

    def __init__(self, in_channels, num_classes, B=2, *, conf_bias=-2.0, rng=None, dtype=np.float32):
        super().__init__()
        self.B, self.num_classes = B, num_classes
        self.conv = Conv2d(in_channels, 5 * B + num_classes, 1, rng=get_rng(rng), dtype=dtype)
        self.conv.bias.data[4:5 * B:5] = conf_bias  # the C entry of each predictor

    # start-head
    def forward(self, h):
        z = self.conv(h)  # (N, D, S_y, S_x) raw scores t
        t = z.transpose(0, 2, 3, 1)  # (N, S_y, S_x, D) channels-last: one vector per cell
        box, c_box = F.sigmoid(t[..., :5 * self.B])  # x, y, w, h, C ∈ (0, 1) for each of the B
        cls, c_cls = F.softmax(t[..., 5 * self.B:], axis=-1)  # p(class | object), (N, S_y, S_x, K)
        xp = get_array_module(box)
        out = xp.concatenate([box, cls], axis=-1)  # (N, S_y, S_x, 5B + K)
        self.push((c_box, c_cls, out.shape, out.dtype))
        return out

    def backward(self, dout):
        c_box, c_cls, shape, dtype = self.pop()
        check_grad("YOLOHead.backward", "dout", dout, shape, dtype)
        xp = get_array_module(dout)
        dbox = F.sigmoid_backward(xp.ascontiguousarray(dout[..., :5 * self.B]), c_box)  # σ' = σ(1 − σ)
        dcls = F.softmax_backward(xp.ascontiguousarray(dout[..., 5 * self.B:]), c_cls)  # p ⊙ (dp − Σ dp ⊙ p)
        dt = xp.concatenate([dbox, dcls], axis=-1)  # (N, S_y, S_x, D)
        dz = xp.ascontiguousarray(dt.transpose(0, 3, 1, 2))  # back to (N, D, S_y, S_x)
        return self.conv.backward(dz)  # adds dW, db; returns dh
    # end-head

    def extra_repr(self):
        return f"B={self.B}, num_classes={self.num_classes}"


class YOLO(Module):
    """Backbone + ``YOLOHead``: (N, in_channels, H, W) → (N, H/s, W/s, 5B + K) with s = 2^(len(widths) − 1)."""

    def __init__(self, num_classes, *, in_channels=1, B=2, widths=(16, 32, 64, 128), conf_bias=-2.0,
                 rng=None, dtype=np.float32):
        super().__init__()
        rng = get_rng(rng)
        if len(widths) < 1:
            raise ValueError("YOLO: widths must name at least one stage")
        self.num_classes, self.in_channels, self.B, self.widths = num_classes, in_channels, B, tuple(widths)
        self.stride = 2 ** (len(widths) - 1)
        layers, cin = [], in_channels
        for i, w in enumerate(widths):  # conv-BN-LeakyReLU, then halve the map (not after the last stage)
            layers += _conv_bn_leaky(cin, w, rng, dtype)
            if i < len(widths) - 1:
                layers.append(MaxPool2d(2))
            cin = w
        layers += _conv_bn_leaky(cin, cin, rng, dtype)  # one more 3×3 at the grid's resolution
        self.backbone = Sequential(*layers)
        self.head = YOLOHead(cin, num_classes, B, conf_bias=conf_bias, rng=rng, dtype=dtype)

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[2] % self.stride or x.shape[3] % self.stride:
            raise ValueError(f"YOLO: expected input (N, {self.in_channels}, H, W) with H and W multiples of "
                             f"the stride {self.stride}, got shape {tuple(x.shape)}")
        return self.head(self.backbone(x))  # (N, S_y, S_x, 5B + K)

    def backward(self, dout):
        dh = self.head.backward(dout)  # through the activations and the 1×1 conv
        return self.backbone.backward(dh)  # the conv stages, in reverse

    def outputs(self, x, *, batch_size=64):
        """The head's tensor (N, S_y, S_x, 5B + K) for many images: evaluation mode, nothing cached."""
        self.eval()
        with no_grad():
            outs = [asnumpy(self(x[i:i + batch_size])) for i in range(0, len(x), batch_size)]
        return np.concatenate(outs)

    def predict(self, x, *, conf_threshold=0.05, nms_iou=0.5, max_det=100, pre_nms_top=300, batch_size=64):
        """Boxes, scores and labels per image (a list of triples): ``decode`` of ``outputs``."""
        return decode(self.outputs(x, batch_size=batch_size), img_hw=x.shape[2:], B=self.B,
                      conf_threshold=conf_threshold, nms_iou=nms_iou, max_det=max_det, pre_nms_top=pre_nms_top)

    def config(self):
        return {"class": "YOLO", "num_classes": self.num_classes, "in_channels": self.in_channels, "B": self.B,
                "widths": list(self.widths)}

    def extra_repr(self):
        return f"num_classes={self.num_classes}, B={self.B}, widths={self.widths}, stride={self.stride}"


# start-decode
def decode(out, *, img_hw, B=2, conf_threshold=0.05, nms_iou=0.5, max_det=100, pre_nms_top=300):
    """(N, S_y, S_x, 5B + K) head outputs → per image (boxes (d, 4) pixels, scores (d,), labels (d,)).

    Every predictor proposes its box once per class with score C·p(class); scores below
    ``conf_threshold`` are dropped, the best ``pre_nms_top`` candidates go to NMS within each class
    (greedy NMS costs a pass per kept box), and the best ``max_det`` survivors stay.
    """
    out = asnumpy(out)
    N, sy, sx, _ = out.shape
    H, W = img_hw
    K = out.shape[-1] - 5 * B
    boxes = out[..., :5 * B].reshape(N, sy, sx, B, 5)  # (N, S_y, S_x, B, 5)
    x1, y1, x2, y2 = _corners(boxes[..., :4], sy, sx)  # image fractions, (N, S_y, S_x, B) each
    corners = np.stack([x1 * W, y1 * H, x2 * W, y2 * H], axis=-1).reshape(N, -1, 4)  # (N, S_y·S_x·B, 4)
    scores = (boxes[..., 4:5] * out[..., None, 5 * B:]).reshape(N, -1, K)  # (N, S_y·S_x·B, K) C·p(c)
    results = []
    for n in range(N):  # one image at a time
        idx, lab = np.nonzero(scores[n] > conf_threshold)  # (d,) candidate (predictor, class) pairs
        top = np.argsort(-scores[n][idx, lab], kind="stable")[:pre_nms_top]
        idx, lab = idx[top], lab[top]
        b = clip_boxes(corners[n][idx], (H, W)).astype(np.float32)
        s, lab = scores[n][idx, lab].astype(np.float32), lab.astype(np.int64)
        keep = np.asarray(batched_nms(b, s, lab, nms_iou))[:max_det]  # by descending score
        results.append((b[keep], s[keep], lab[keep]))
    return results
# end-decode


class YOLOLoss(Module):
    """``loss = crit(pred, target)``; ``dpred = crit.backward()``; ``crit.parts`` the last five terms."""

    def __init__(self, *, B=2, lambda_coord=5.0, lambda_noobj=0.5):
        super().__init__()
        self.opts = dict(B=B, lambda_coord=lambda_coord, lambda_noobj=lambda_noobj)
        self.parts = {}

    def forward(self, pred, target):
        loss, cache = yolo_v1_loss(pred, target, **self.opts)
        self.parts = cache.parts
        self.push(cache)
        return loss

    def backward(self, dloss=1.0):
        return yolo_v1_loss_backward(dloss, self.pop())


def flip_batch(x, target, rng, *, vertical=False):
    """Mirror each image (and its grid target) left–right with probability 1/2, and, with
    ``vertical``, top–bottom too. A box's cell mirrors and its offset becomes 1 − x (or 1 − y)."""
    x, target = x.copy(), target.copy()
    for img_axis, grid_axis, k in [(3, 2, 0)] + ([(2, 1, 1)] if vertical else []):
        flip = rng.random(len(x)) < 0.5  # (n,) which images flip along this axis
        x[flip] = np.flip(x[flip], axis=img_axis)
        t = np.flip(target[flip], axis=grid_axis)  # (n_flip, S_y, S_x, 5 + K)
        t[..., k] = np.where(t[..., 4] > 0, 1 - t[..., k], 0)  # the centre's offset, mirrored in its cell
        target[flip] = t
    return x, target


def evaluate_map(model, images, boxes, labels, *, conf_threshold=0.01, difficult=None, iou_threshold=0.5):
    """``detection_map`` (PASCAL VOC, IoU ≥ ``iou_threshold``) of ``model.predict`` on a split."""
    return detector_map(model.predict(images, conf_threshold=conf_threshold), boxes, labels, model.num_classes,
                        difficult=difficult, iou_threshold=iou_threshold)


def train_yolo(model, images, target, val, *, epochs, batch_size, lr, max_minutes, flips=None, rng=None,
               loss_fn=None, eval_every=1, disable=None, desc="YOLO"):
    """``train_detector`` (Adam, a cosine decay that ends at ``epochs`` or at ``max_minutes``, whichever
    comes first) with YOLO's step: the grid targets ``target`` (n, S, S, 5 + K), flipped with the images.

    ``val`` = (images, boxes, labels[, difficult]): validation mAP@0.5 every ``eval_every`` epochs;
    the weights of the best one are restored at the end (the number of epochs chosen on validation).
    ``flips``: None, "h" or "hv". Returns ``train_detector``'s history dict.
    """
    loss_fn = loss_fn or YOLOLoss(B=model.B)

    def step(idx, rng):  # one mini-batch: forward, loss, backward
        xb, tb = images[idx], target[idx]
        if flips:
            xb, tb = flip_batch(xb, tb, rng, vertical=flips == "hv")
        loss = loss_fn(model(xb), tb)
        model.backward(loss_fn.backward())
        return loss, loss_fn.parts

    def val_map():  # validation mAP@0.5
        return evaluate_map(model, val[0], val[1], val[2], difficult=val[3] if len(val) > 3 else None)["map"]

    return train_detector(model, len(images), step, val_map, epochs=epochs, batch_size=batch_size, lr=lr,
                          max_minutes=max_minutes, rng=rng, eval_every=eval_every, disable=disable, desc=desc)
