"""Losses. Each returns (loss, cache); each backward returns the gradient of the prediction only.

Legend: N batch, T time, K classes. ``reduction``: "mean" | "sum" | "none" (PyTorch's semantics).
Softmax cross-entropy makes one call into ``scratchnet/kernels/loss.py`` each way, which runs either
the reference here or a fused Numba loop. See chapters/01-mlp.md#eq-softmax-ce-backward.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._checks import check_float, check_grad, check_int
from ..backend import get_array_module
from ..kernels import loss as _kernels
from .activation import stable_sigmoid, stable_softplus

__all__ = [
    "cross_entropy", "cross_entropy_backward", "mse_loss", "mse_loss_backward",
    "binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits_backward",
    "kl_div", "kl_div_backward",
]

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(op, reduction, allowed=_REDUCTIONS):
    if reduction not in allowed:
        raise ValueError(f"{op}: reduction must be one of {allowed}, got {reduction!r}")


def check_dloss(op, dloss, shape, dtype, *, name="dloss"):
    """Check a loss's upstream gradient: an array of the loss's ``shape`` and ``dtype`` (reduction
    "none"), or for a scalar loss (shape ()) also a plain Python number, which takes the loss's dtype."""
    if shape == () and isinstance(dloss, (int, float)) and not isinstance(dloss, (bool, np.generic)):
        return
    check_grad(op, name, dloss, shape, dtype)


def _reduce(xp, per_item, reduction, denom):
    if reduction == "none":
        return per_item
    total = per_item.sum()
    return total / denom if reduction == "mean" else total


class CrossEntropyCache(NamedTuple):
    logp: object  # (..., K) log-softmax of the logits
    t: object  # (...) targets, ignored positions replaced by 0
    valid: object  # (...) positions that count (target != ignore_index)
    label_smoothing: float
    reduction: str
    count: int  # the "mean" denominator: positions that count (1 for "sum" and "none")


def cross_entropy(logits, target, *, reduction="mean", label_smoothing=0.0, ignore_index=-100):
    """Softmax cross-entropy on integer class targets.

    logits (N, K) or (N, T, K); target (N,) or (N, T) integers. With smoothing ε the target
    distribution is q = (1 − ε)·onehot(t) + ε/K; positions whose target is ``ignore_index`` add
    nothing, and "mean" divides by the number of positions that count.
    Backward: dlogits = (softmax(logits) − q) · dloss / count. See chapters/01-mlp.md#eq-softmax-ce-backward.
    """
    check_float("cross_entropy", "logits", logits)
    check_int("cross_entropy", "target", target)
    _check_reduction("cross_entropy", reduction)
    if logits.ndim not in (2, 3) or target.shape != logits.shape[:-1]:
        raise ValueError(f"cross_entropy: expected logits (N, K) or (N, T, K) and target of shape "
                         f"logits.shape[:-1]; got logits {tuple(logits.shape)}, target {tuple(target.shape)}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    xp = get_array_module(logits, target)
    K = logits.shape[-1]
    valid = target != ignore_index  # (N[, T]) positions that count
    t = xp.where(valid, target, 0)  # safe index for ignored positions
    if bool(((t < 0) | (t >= K)).any()):
        raise ValueError(f"cross_entropy: target values must lie in [0, {K}) (or equal ignore_index={ignore_index})")
    # the fused loop of kernels/loss.py (large NumPy logits), or the readable _cross_entropy_ref below
    logp, per_item = _kernels.cross_entropy(logits, t, valid, label_smoothing, reference=_cross_entropy_ref)
    count = max(int(valid.sum()), 1) if reduction == "mean" else 1
    loss = _reduce(xp, per_item, reduction, count)
    return loss, CrossEntropyCache(logp, t, valid, label_smoothing, reduction, count)


def _cross_entropy_ref(logits, t, valid, label_smoothing):
    """The log-softmax (..., K) and each position's loss (...) (0 where not valid), vectorised."""
    xp = get_array_module(logits, t)
    z = logits - logits.max(axis=-1, keepdims=True)
    logp = z - xp.log(xp.exp(z).sum(axis=-1, keepdims=True))  # (..., K) log-softmax
    nll = -xp.take_along_axis(logp, t[..., None], axis=-1)[..., 0]  # (N[, T]) −log p_t
    per_item = (1.0 - label_smoothing) * nll
    if label_smoothing > 0.0:
        per_item = per_item - label_smoothing * logp.mean(axis=-1)
    return logp, per_item * valid


def cross_entropy_backward(dloss, cache):
    """dlogits of ``cross_entropy``."""
    logp, t, valid, eps, reduction, count = cache
    check_dloss("cross_entropy_backward", dloss, valid.shape if reduction == "none" else (), logp.dtype)
    xp = get_array_module(logp)
    K = logp.shape[-1]
    q = xp.zeros_like(logp)  # (..., K) smoothed target distribution
    xp.put_along_axis(q, t[..., None], 1.0 - eps, axis=-1)
    q += eps / K
    scale = valid.astype(logp.dtype)  # ignored positions get zero gradient
    if reduction == "none":
        scale = scale * dloss
    else:
        scale = scale * (dloss / count)
    return (xp.exp(logp) - q) * scale[..., None]


# The public backward: the readable function above (the reference, shown in the chapter) behind the
# fused loop of kernels/loss.py, which takes large NumPy logits (one read of log p, one write).
cross_entropy_backward = _kernels.fused_backward(cross_entropy_backward, check_dloss)


def mse_loss(pred, target, *, reduction="mean"):
    """ℓ = mean((pred − target)²). Backward: dpred = 2 (pred − target) · dℓ / n."""
    check_float("mse_loss", "pred", pred)
    _check_reduction("mse_loss", reduction)
    if pred.shape != target.shape:
        raise ValueError(f"mse_loss: pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
    xp = get_array_module(pred, target)
    diff = pred - target
    loss = _reduce(xp, diff * diff, reduction, diff.size)
    return loss, (diff, reduction)


def mse_loss_backward(dloss, cache):
    diff, reduction = cache
    check_dloss("mse_loss_backward", dloss, diff.shape if reduction == "none" else (), diff.dtype)
    scale = dloss / diff.size if reduction == "mean" else dloss
    return 2.0 * diff * scale


class BCEWithLogitsCache(NamedTuple):
    logits: object  # (...) the prediction
    target: object  # (...) probabilities in [0, 1]
    weight: object  # (...) 1 + (pos_weight − 1)·target, or 1.0
    reduction: str
    dtype: object  # the loss's dtype (target may widen the logits')


def binary_cross_entropy_with_logits(logits, target, *, reduction="mean", pos_weight=None):
    """ℓ = −[w_p t log σ(x) + (1 − t) log(1 − σ(x))], computed stably as (1 − t)x + (1 + (w_p − 1)t)·softplus(−x).

    Backward: dx = (1 + (w_p − 1)t)·(σ(x) − 1) + (1 − t), which is σ(x) − t when w_p = 1.
    """
    check_float("binary_cross_entropy_with_logits", "logits", logits)
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    if logits.shape != target.shape:
        raise ValueError(f"binary_cross_entropy_with_logits: logits shape {tuple(logits.shape)} != "
                         f"target shape {tuple(target.shape)}")
    xp = get_array_module(logits, target)
    weight = 1.0 if pos_weight is None else 1.0 + (pos_weight - 1.0) * target  # log-weight of positives
    per_item = (1.0 - target) * logits + weight * stable_softplus(-logits)
    loss = _reduce(xp, per_item, reduction, per_item.size)
    return loss, BCEWithLogitsCache(logits, target, weight, reduction, per_item.dtype)


def binary_cross_entropy_with_logits_backward(dloss, cache):
    logits, target, weight, reduction, dtype = cache
    check_dloss("binary_cross_entropy_with_logits_backward", dloss, logits.shape if reduction == "none" else (),
                dtype)
    dper = weight * (stable_sigmoid(logits) - 1.0) + (1.0 - target)
    scale = dloss / logits.size if reduction == "mean" else dloss
    return dper * scale


def kl_div(input, target, *, reduction="mean", log_target=False):
    """KL(target ‖ p) pointwise as PyTorch: ℓ = t (log t − input), with ``input`` = log p.

    reduction "batchmean" divides by N (the mathematically right KL per sample), "mean" by the
    number of elements. Backward: dinput = −t · dℓ / n (t = exp(target) when log_target).
    """
    check_float("kl_div", "input", input)
    _check_reduction("kl_div", reduction, _REDUCTIONS + ("batchmean",))
    if input.shape != target.shape:
        raise ValueError(f"kl_div: input shape {tuple(input.shape)} != target shape {tuple(target.shape)}")
    xp = get_array_module(input, target)
    if log_target:
        t = xp.exp(target)
        per_item = t * (target - input)
    else:
        t = target
        safe = xp.where(t > 0, t, 1.0)
        per_item = xp.where(t > 0, t * (xp.log(safe) - input), 0.0)  # 0·log 0 = 0
    n = input.shape[0] if reduction == "batchmean" else input.size
    red = "mean" if reduction == "batchmean" else reduction
    loss = _reduce(xp, per_item, red, n)
    return loss, (t, red, n, per_item.dtype)


def kl_div_backward(dloss, cache):
    t, reduction, n, dtype = cache
    check_dloss("kl_div_backward", dloss, t.shape if reduction == "none" else (), dtype)
    scale = dloss / n if reduction == "mean" else dloss
    return -t * scale
