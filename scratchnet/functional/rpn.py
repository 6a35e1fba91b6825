"""The two multi-task detection losses of Faster R-CNN: the region proposal network's (objectness
binary cross-entropy over the sampled anchors + smooth-L1 on the positives' box deltas) and the
Fast R-CNN head's (softmax cross-entropy over K + 1 classes + class-specific smooth-L1 on the
foreground regions).

Legend: M anchors, R regions of interest, K object classes (class 0 is the background),
labels of anchors in {1 positive, 0 negative, −1 ignored}. Both losses are compositions of
existing pairs (``binary_cross_entropy_with_logits``, ``cross_entropy``, ``smooth_l1_loss``);
their backwards walk those pairs in reverse. The sampled labels and regression targets come in
as constants, so a gradient check with a fixed sampling is exact.
See chapters/27-rcnn.md#eq-rpn-loss and chapters/27-rcnn.md#eq-fast-rcnn-loss.
"""
from __future__ import annotations

from typing import NamedTuple

from .._checks import check_float, check_int
from ..backend import get_array_module
from .loss import (
    binary_cross_entropy_with_logits,
    binary_cross_entropy_with_logits_backward,
    check_dloss,
    cross_entropy,
    cross_entropy_backward,
)
from .smooth_l1 import smooth_l1_loss, smooth_l1_loss_backward

__all__ = ["rpn_loss", "rpn_loss_backward", "fast_rcnn_loss", "fast_rcnn_loss_backward"]


def _check_shapes(op, first, deltas, labels, targets, width):
    """ValueError unless deltas (M, width), labels (M,) integers and targets (M, 4)."""
    check_float(op, "deltas", deltas)
    check_int(op, "labels", labels)
    M = first.shape[0]
    if (first.ndim < 1 or deltas.shape != (M, width) or labels.shape != (M,)
            or targets.shape != (M, 4)):
        raise ValueError(f"{op}: expected {'scores' if width > 4 else 'objectness'} ({M}, ...), deltas "
                         f"({M}, {width}), labels ({M},), targets ({M}, 4); got {tuple(first.shape)}, "
                         f"{tuple(deltas.shape)}, {tuple(labels.shape)}, {tuple(targets.shape)}")


class RPNLossCache(NamedTuple):
    """What rpn_loss_backward needs: the sampled and positive anchors, both sub-caches, the sizes."""
    sampled: object  # (M,) bool, label ≥ 0
    positive: object  # (M,) bool, label = 1
    c_cls: object  # cache of the BCE over the sampled anchors
    c_reg: object  # cache of the smooth-L1 over the positives
    n_cls: float
    scale_reg: float  # λ / N_reg
    dtype: object
    parts: dict  # the two terms as floats, for logging


# start-rpn-loss
def rpn_loss(objectness, deltas, labels, targets, *, lambda_reg=1.0, n_reg=None, beta=1.0 / 9):
    """L = (1/N_cls) Σ_{sampled a} BCE(o_a, p*_a) + (λ/N_reg) Σ_{a: p*_a = 1} smoothL1_β(t_a − t*_a).

    objectness (M,) logits, deltas (M, 4), labels (M,) in {1, 0, −1} (−1: not in the mini-batch),
    targets (M, 4) encoded gt boxes (read only where the label is 1). N_cls = number of sampled
    anchors; N_reg = ``n_reg`` (default N_cls, so λ = 1 weighs both terms alike; the paper's
    N_reg = anchor locations with λ = 10 is the same balance). Returns loss, cache (``cache.parts``).
    Backward: do_a = (σ(o_a) − p*_a)/N_cls on sampled anchors, dt_a = λ/N_reg · s'_β(t_a − t*_a)
    on positives, zero elsewhere. See chapters/27-rcnn.md#eq-rpn-loss.
    """
    check_float("rpn_loss", "objectness", objectness)
    _check_shapes("rpn_loss", objectness, deltas, labels, targets, 4)
    xp = get_array_module(objectness, deltas)
    sampled, positive = labels >= 0, labels == 1  # (M,) masks
    n_cls = max(int(sampled.sum()), 1)
    scale_reg = lambda_reg / max(n_cls if n_reg is None else n_reg, 1)
    l_cls, c_cls = binary_cross_entropy_with_logits(
        objectness[sampled], positive[sampled].astype(objectness.dtype), reduction="sum")
    l_reg, c_reg = smooth_l1_loss(deltas[positive], targets[positive].astype(deltas.dtype), beta=beta,
                                  reduction="sum")
    loss = l_cls / n_cls + scale_reg * l_reg
    parts = {"rpn_cls": float(l_cls) / n_cls, "rpn_reg": float(scale_reg * l_reg)}
    return xp.asarray(loss, dtype=objectness.dtype), RPNLossCache(
        sampled, positive, c_cls, c_reg, n_cls, scale_reg, objectness.dtype, parts)


def rpn_loss_backward(dloss, cache):
    """(dobjectness, ddeltas) of ``rpn_loss``."""
    sampled, positive, c_cls, c_reg, n_cls, scale_reg, dtype, _ = cache
    check_dloss("rpn_loss_backward", dloss, (), dtype)
    xp = get_array_module(sampled)
    M = sampled.shape[0]
    dobjectness = xp.zeros(M, dtype=dtype)  # (M,) zero for ignored anchors
    dobjectness[sampled] = binary_cross_entropy_with_logits_backward(dloss / n_cls, c_cls)  # σ(o) − p*
    ddeltas = xp.zeros((M, 4), dtype=dtype)  # (M, 4) zero except on positives
    ddeltas[positive] = smooth_l1_loss_backward(dloss * scale_reg, c_reg)  # λ/N_reg · s'(t − t*)
    return dobjectness, ddeltas
# end-rpn-loss


class FastRCNNLossCache(NamedTuple):
    """What fast_rcnn_loss_backward needs: the CE cache, the fg rows and their class columns, the
    smooth-L1 cache, R, λ and the dtype."""
    c_cls: object
    fg: object  # (R_fg,) int64 rows with label ≥ 1
    cols: object  # (R_fg, 4) int64 columns 4u … 4u + 3 of each fg row's class u
    c_reg: object
    n: int  # R (at least 1)
    lambda_reg: float
    dtype: object
    parts: dict  # the two terms as floats, for logging


# start-fast-rcnn-loss
def fast_rcnn_loss(scores, deltas, labels, targets, *, lambda_reg=1.0, beta=1.0):
    """L = (1/R) Σ_r [−log p_r(u_r)] + (λ/R) Σ_{r: u_r ≥ 1} smoothL1_β(t_r^{u_r} − v_r).

    scores (R, K + 1) logits (column 0 the background), deltas (R, 4(K + 1)) one box per class
    (the paper's class-specific regression), labels (R,) u_r in [0, K], targets (R, 4) v_r (read
    only on foreground rows). Returns loss, cache (``cache.parts``).
    Backward: dscores = (softmax(scores) − onehot(u))/R; ddeltas[r, 4u:4u+4] = λ/R · s'_β(t − v) on
    foreground rows, zero in every other column. See chapters/27-rcnn.md#eq-fast-rcnn-loss.
    """
    check_float("fast_rcnn_loss", "scores", scores)
    if scores.ndim != 2:
        raise ValueError(f"fast_rcnn_loss: expected scores (R, K + 1), got {tuple(scores.shape)}")
    _check_shapes("fast_rcnn_loss", scores, deltas, labels, targets, 4 * scores.shape[1])
    xp = get_array_module(scores, deltas)
    R = scores.shape[0]
    l_cls, c_cls = cross_entropy(scores, labels, reduction="sum")
    fg = xp.flatnonzero(labels >= 1)  # (R_fg,) foreground rows
    cols = 4 * labels[fg][:, None] + xp.arange(4)[None, :]  # (R_fg, 4) that class's four deltas
    l_reg, c_reg = smooth_l1_loss(deltas[fg[:, None], cols], targets[fg].astype(deltas.dtype), beta=beta,
                                  reduction="sum")
    n = max(R, 1)
    loss = l_cls / n + lambda_reg * l_reg / n
    parts = {"head_cls": float(l_cls) / n, "head_reg": float(lambda_reg * l_reg) / n}
    return xp.asarray(loss, dtype=scores.dtype), FastRCNNLossCache(
        c_cls, fg, cols, c_reg, n, lambda_reg, scores.dtype, parts)


def fast_rcnn_loss_backward(dloss, cache):
    """(dscores, ddeltas) of ``fast_rcnn_loss``."""
    c_cls, fg, cols, c_reg, n, lambda_reg, dtype, _ = cache
    check_dloss("fast_rcnn_loss_backward", dloss, (), dtype)
    xp = get_array_module(c_cls.logp)
    R = c_cls.logp.shape[0]
    dscores = cross_entropy_backward(dloss / n, c_cls)  # (softmax − onehot)/R
    ddeltas = xp.zeros((R, 4 * c_cls.logp.shape[1]), dtype=dtype)  # (R, 4(K + 1)) zero off the true class
    ddeltas[fg[:, None], cols] = smooth_l1_loss_backward(dloss * lambda_reg / n, c_reg)  # λ/R · s'(t − v)
    return dscores, ddeltas
# end-fast-rcnn-loss
