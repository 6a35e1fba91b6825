"""Mask R-CNN's mask loss: a per-pixel sigmoid binary cross-entropy on the mask logits of the
ground-truth class only, averaged over the pixels of the foreground regions.

Legend: R regions of interest, K object classes (label 0 is the background, labels 1..K pick the
mask channel label − 1), M × M mask resolution (MH × MW in general). The loss takes one channel
per region, so the classes never compete for a pixel (no softmax across them): the class decision
belongs to the box head. See chapters/29-mask-rcnn.md#eq-mask-loss.
"""
from __future__ import annotations

from typing import NamedTuple

from .._checks import check_float, check_int
from ..backend import get_array_module
from .activation import stable_sigmoid, stable_softplus
from .loss import check_dloss

__all__ = ["mask_loss", "mask_loss_backward"]


def _check(logits, labels, targets):
    """ValueError / TypeError unless logits (R, K, MH, MW), labels (R,) integers in [0, K], targets (R, MH, MW)."""
    check_float("mask_loss", "logits", logits)
    check_int("mask_loss", "labels", labels)
    if logits.ndim != 4 or labels.shape != logits.shape[:1] or tuple(targets.shape) != (
            logits.shape[0],) + tuple(logits.shape[2:]):
        R = logits.shape[0] if logits.ndim else "R"
        raise ValueError(f"mask_loss: expected logits (R, K, M, M), labels (R,) and targets (R, M, M) with one R "
                         f"and one M; got logits {tuple(logits.shape)}, labels {tuple(labels.shape)}, targets "
                         f"{tuple(targets.shape)} (R = {R})")
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) > logits.shape[1]):
        raise ValueError(f"mask_loss: labels must lie in [0, K] = [0, {logits.shape[1]}] (0 = background), got "
                         f"range [{int(labels.min())}, {int(labels.max())}]")


class MaskLossCache(NamedTuple):
    """What mask_loss_backward needs: the fg rows and their channels, the chosen logits and targets,
    the pixel count of the mean, the logits' shape and dtype, and the loss for logging."""
    fg: object  # (R_fg,) int64 rows with label ≥ 1
    channel: object  # (R_fg,) int64 their gt class's channel, label − 1
    z: object  # (R_fg, MH, MW) the logits of that channel
    t: object  # (R_fg, MH, MW) the targets of those rows
    n: int  # R_fg · MH · MW pixels in the mean (at least 1)
    shape: tuple  # logits' shape
    dtype: object
    parts: dict  # {"mask": loss} as a float


# start-mask-loss
def mask_loss(logits, labels, targets):
    """L = 1/(R_fg·M²) Σ_{r: u_r ≥ 1} Σ_{i,j} [softplus(z_rij) − t_rij·z_rij], z_r = logits[r, u_r − 1].

    logits (R, K, M, M) one mask per class, labels (R,) u_r in [0, K] (0: background, no term),
    targets (R, M, M) in {0, 1} (read on foreground rows only). softplus(z) − t·z is the sigmoid
    BCE −[t log σ(z) + (1 − t) log(1 − σ(z))], computed stably. No foreground row: L = 0.
    Backward: dlogits[r, u_r − 1] = (σ(z_r) − t_r)/(R_fg·M²) on foreground rows; zero on every other
    channel and on background rows. See chapters/29-mask-rcnn.md#eq-mask-loss.
    """
    _check(logits, labels, targets)
    xp = get_array_module(logits)
    fg = xp.flatnonzero(labels >= 1)  # (R_fg,) foreground rows
    channel = labels[fg] - 1  # (R_fg,) the gt class's mask channel
    z = logits[fg, channel]  # (R_fg, M, M) one channel per region: no competition between classes
    t = targets[fg].astype(logits.dtype)  # (R_fg, M, M)
    n = max(int(z.size), 1)
    loss = (stable_softplus(z) - t * z).sum() / n  # mean sigmoid BCE over the foreground pixels
    loss = xp.asarray(loss, dtype=logits.dtype)
    return loss, MaskLossCache(fg, channel, z, t, n, tuple(logits.shape), logits.dtype, {"mask": float(loss)})


def mask_loss_backward(dloss, cache):
    """dlogits of ``mask_loss``."""
    fg, channel, z, t, n, shape, dtype, _ = cache
    check_dloss("mask_loss_backward", dloss, (), dtype)
    xp = get_array_module(z)
    dlogits = xp.zeros(shape, dtype=dtype)  # (R, K, M, M) zero off the gt channel and on background rows
    dlogits[fg, channel] = (stable_sigmoid(z) - t) * (dloss / n)  # σ(z) − t, scaled by the mean
    return dlogits
# end-mask-loss
