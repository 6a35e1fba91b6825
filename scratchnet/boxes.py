"""Box geometry for detection: areas, IoU, the R-CNN box parameterisation, non-maximum
suppression, anchors and the anchor sampler of the region proposal network.

Legend: N, M boxes, A anchors, G ground-truth boxes, H, W feature-map (or image) size.
Boxes are ``(x1, y1, x2, y2)`` in pixels, float, on a continuous grid: a box's width is
``x2 − x1`` (no "+1"), as torchvision. Every function is plain ``xp`` code (NumPy or CuPy);
the greedy loops (NMS, sampling) run on the CPU and hand back arrays on the input's device.
See chapters/27-rcnn.md#boxes-and-iou, chapters/27-rcnn.md#box-parameterisation,
chapters/27-rcnn.md#non-maximum-suppression and chapters/27-rcnn.md#anchors.
"""
from __future__ import annotations

import math

import numpy as np

from ._random import get_rng
from .backend import asnumpy, get_array_module

__all__ = ["box_area", "box_iou", "encode_boxes", "decode_boxes", "nms", "batched_nms", "make_anchors",
           "sample_anchors", "clip_boxes", "BBOX_CLAMP"]

BBOX_CLAMP = math.log(1000.0 / 16)  # largest log size ratio decode_boxes applies (as the papers' code)


def _check_boxes(op, name, b):
    """ValueError unless ``b`` is an (N, 4) array."""
    if not hasattr(b, "shape") or b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{op}: expected {name} of shape (N, 4) as (x1, y1, x2, y2), "
                         f"got {tuple(getattr(b, 'shape', ())) or type(b).__name__}")


def box_area(b):
    """(x2 − x1)·(y2 − y1) of each box: (N, 4) → (N,)."""
    _check_boxes("box_area", "boxes", b)
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def box_iou(a, b):
    """Intersection over union of every pair: a (N, 4), b (M, 4) → (N, M).

    IoU = |a ∩ b| / (|a| + |b| − |a ∩ b|); a pair whose union is empty has IoU 0.
    See chapters/27-rcnn.md#eq-iou.
    """
    _check_boxes("box_iou", "a", a)
    _check_boxes("box_iou", "b", b)
    xp = get_array_module(a, b)
    lt = xp.maximum(a[:, None, :2], b[None, :, :2])  # (N, M, 2) top-left of the intersection
    rb = xp.minimum(a[:, None, 2:], b[None, :, 2:])  # (N, M, 2) bottom-right
    wh = xp.clip(rb - lt, 0, None)  # (N, M, 2), 0 where they do not overlap
    inter = wh[..., 0] * wh[..., 1]  # (N, M)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter  # (N, M)
    return xp.where(union > 0, inter / xp.where(union > 0, union, 1), 0).astype(inter.dtype)


def _centres(b):
    """(cx, cy, w, h) of (N, 4) boxes, four (N,) arrays."""
    w = b[:, 2] - b[:, 0]
    h = b[:, 3] - b[:, 1]
    return b[:, 0] + 0.5 * w, b[:, 1] + 0.5 * h, w, h


def encode_boxes(boxes, anchors, weights=(1.0, 1.0, 1.0, 1.0)):
    """Regression targets of ``boxes`` relative to ``anchors`` (both (N, 4)) → (N, 4) (tx, ty, tw, th).

    tx = wx (x − x_a)/w_a, ty = wy (y − y_a)/h_a, tw = ww log(w/w_a), th = wh log(h/h_a), on
    centres (x, y) and sizes (w, h) (Girshick et al. 2014, appendix C).
    See chapters/27-rcnn.md#eq-box-encode.
    """
    _check_boxes("encode_boxes", "boxes", boxes)
    _check_boxes("encode_boxes", "anchors", anchors)
    if boxes.shape != anchors.shape:
        raise ValueError(f"encode_boxes: boxes {tuple(boxes.shape)} and anchors {tuple(anchors.shape)} must match")
    xp = get_array_module(boxes, anchors)
    wx, wy, ww, wh = weights
    gx, gy, gw, gh = _centres(boxes)
    ax, ay, aw, ah = _centres(anchors)
    deltas = xp.stack([wx * (gx - ax) / aw, wy * (gy - ay) / ah,
                       ww * xp.log(gw / aw), wh * xp.log(gh / ah)], axis=1)  # (N, 4)
    return deltas.astype(boxes.dtype, copy=False)


def decode_boxes(deltas, anchors, weights=(1.0, 1.0, 1.0, 1.0), clip_hw=None):
    """Boxes from regression ``deltas`` (N, 4) relative to ``anchors`` (N, 4): the inverse of
    ``encode_boxes``. tw/th are clamped at log(1000/16) before the exponential (so one wild output
    cannot overflow); ``clip_hw=(H, W)`` clips the boxes to the image. See chapters/27-rcnn.md#eq-box-decode.
    """
    _check_boxes("decode_boxes", "deltas", deltas)
    _check_boxes("decode_boxes", "anchors", anchors)
    if deltas.shape != anchors.shape:
        raise ValueError(f"decode_boxes: deltas {tuple(deltas.shape)} and anchors {tuple(anchors.shape)} must match")
    xp = get_array_module(deltas, anchors)
    wx, wy, ww, wh = weights
    ax, ay, aw, ah = _centres(anchors)
    cx = deltas[:, 0] / wx * aw + ax
    cy = deltas[:, 1] / wy * ah + ay
    w = xp.exp(xp.minimum(deltas[:, 2] / ww, BBOX_CLAMP)) * aw
    h = xp.exp(xp.minimum(deltas[:, 3] / wh, BBOX_CLAMP)) * ah
    boxes = xp.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], axis=1)  # (N, 4)
    boxes = boxes.astype(deltas.dtype, copy=False)
    return boxes if clip_hw is None else clip_boxes(boxes, clip_hw)


def clip_boxes(boxes, hw):
    """Boxes (N, 4) with x clipped to [0, W] and y to [0, H], ``hw = (H, W)``; a new array."""
    _check_boxes("clip_boxes", "boxes", boxes)
    xp = get_array_module(boxes)
    H, W = hw
    out = boxes.copy()
    out[:, 0::2] = xp.clip(boxes[:, 0::2], 0, W)
    out[:, 1::2] = xp.clip(boxes[:, 1::2], 0, H)
    return out


# -- non-maximum suppression ------------------------------------------------------------------------
def nms(boxes, scores, iou_threshold):
    """Greedy non-maximum suppression → int64 indices of the kept boxes, by descending score.

    Take the best remaining box, drop every remaining box whose IoU with it exceeds
    ``iou_threshold``, repeat (torchvision.ops.nms; ties in score keep the earlier index).
    boxes (N, 4), scores (N,). See chapters/27-rcnn.md#non-maximum-suppression.
    """
    _check_boxes("nms", "boxes", boxes)
    if scores.shape != (boxes.shape[0],):
        raise ValueError(f"nms: expected scores of shape ({boxes.shape[0]},), got {tuple(scores.shape)}")
    xp = get_array_module(boxes, scores)
    b, s = asnumpy(boxes).astype(np.float64), asnumpy(scores)
    order = np.argsort(-s, kind="stable")  # (N,) best first
    keep = []
    while order.size:  # one kept box per pass
        i = order[0]
        keep.append(i)
        rest = order[1:]
        iou = box_iou(b[i:i + 1], b[rest])[0]  # (len(rest),)
        order = rest[iou <= iou_threshold]
    return xp.asarray(np.asarray(keep, dtype=np.int64))


def batched_nms(boxes, scores, labels, iou_threshold):
    """``nms`` within each class: boxes of different labels never suppress each other.

    Each class's boxes are shifted by label·(largest coordinate + 1) so that classes cannot
    overlap, then one ``nms`` runs (torchvision's trick). Returns int64 indices by descending score.
    """
    _check_boxes("batched_nms", "boxes", boxes)
    xp = get_array_module(boxes, scores)
    if boxes.shape[0] == 0:
        return xp.zeros(0, dtype=np.int64)
    span = float(xp.abs(boxes).max()) + 1.0
    offsets = labels.astype(boxes.dtype) * (2 * span)  # (N,)
    return nms(boxes + offsets[:, None], scores, iou_threshold)


# -- anchors ----------------------------------------------------------------------------------------
def make_anchors(feature_hw, stride, sizes, ratios, *, dtype=np.float32):
    """Anchors centred on every cell of a feature map → (H·W·A, 4), A = len(ratios)·len(sizes).

    Cell (i, j) has centre ((j + ½)·stride, (i + ½)·stride) in image pixels; each anchor has area
    size² and aspect ratio h/w = ratio (w = size/√ratio, h = size·√ratio). Order: row i, column j,
    then ratio, then size (anchor index ((i·W + j)·len(ratios) + r)·len(sizes) + s).
    See chapters/27-rcnn.md#anchors.
    """
    H, W = feature_hw
    r = np.asarray(ratios, dtype=np.float64)[:, None]  # (R, 1)
    s = np.asarray(sizes, dtype=np.float64)[None, :]  # (1, S)
    w = (s / np.sqrt(r)).reshape(-1)  # (A,)
    h = (s * np.sqrt(r)).reshape(-1)  # (A,)
    base = np.stack([-w / 2, -h / 2, w / 2, h / 2], axis=1)  # (A, 4) around the origin
    cy, cx = np.meshgrid((np.arange(H) + 0.5) * stride, (np.arange(W) + 0.5) * stride, indexing="ij")
    centres = np.stack([cx, cy, cx, cy], axis=-1).reshape(H * W, 1, 4)  # (H·W, 1, 4)
    return (centres + base[None]).reshape(-1, 4).astype(dtype)  # (H·W·A, 4)


def sample_anchors(ious, pos_thr=0.7, neg_thr=0.3, batch=256, pos_fraction=0.5, rng=None):
    """Label anchors for the RPN loss and subsample a mini-batch (Ren et al. 2015, section 3.1.2).

    ious (A, G) → (labels (A,) int64 in {1 positive, 0 negative, −1 ignored}, matched (A,) int64
    index of each anchor's best gt). An anchor is positive when its best IoU ≥ ``pos_thr``, and
    each gt's best anchor(s) (every anchor tying its highest IoU, when that IoU is > 0) are
    positive too; negative when its best IoU < ``neg_thr`` and not positive. Then at most
    ``batch·pos_fraction`` positives are kept at random, and negatives fill the batch to
    ``batch``; the rest become −1. With G = 0 every anchor is negative and matched is 0.
    See chapters/27-rcnn.md#anchor-sampling.
    """
    if not hasattr(ious, "ndim") or ious.ndim != 2:
        raise ValueError(f"sample_anchors: expected ious of shape (A, G), got {tuple(getattr(ious, 'shape', ()))}")
    xp = get_array_module(ious)
    rng = get_rng(rng)
    m = asnumpy(ious)
    A, G = m.shape
    labels = np.full(A, -1, dtype=np.int64)  # (A,) ignored until decided
    if G == 0:
        labels[:] = 0
        matched = np.zeros(A, dtype=np.int64)
    else:
        matched = m.argmax(axis=1).astype(np.int64)  # (A,) best gt of each anchor
        best = m[np.arange(A), matched]  # (A,)
        labels[best < neg_thr] = 0
        gt_best = m.max(axis=0)  # (G,) each gt's highest IoU
        forced = ((m == gt_best[None]) & (gt_best[None] > 0)).any(axis=1)  # (A,) some gt's best anchor
        labels[(best >= pos_thr) | forced] = 1
    labels = _subsample(labels, batch, pos_fraction, rng)
    return xp.asarray(labels), xp.asarray(matched)


def _subsample(labels, batch, pos_fraction, rng):
    """Keep at most batch·pos_fraction random positives and fill the batch with random negatives."""
    pos = np.flatnonzero(labels == 1)
    n_pos = min(pos.size, int(batch * pos_fraction))
    labels[rng.permutation(pos)[n_pos:]] = -1
    neg = np.flatnonzero(labels == 0)
    n_neg = min(neg.size, batch - n_pos)
    labels[rng.permutation(neg)[n_neg:]] = -1
    return labels
