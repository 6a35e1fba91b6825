"""The masked-language-model loss: cross-entropy averaged over the selected (masked) positions only.

Legend: N batch, T positions, V vocabulary, M number of selected positions.
See chapters/22-bert.md#eq-mlm-loss.
"""
from __future__ import annotations

from typing import NamedTuple

from .._checks import check_float, check_int
from ..backend import get_array_module
from .loss import check_dloss

__all__ = ["masked_lm_loss", "masked_lm_loss_backward"]


class MaskedLMCache(NamedTuple):
    logp: object  # (N, T, V) log-softmax of the logits (needed for softmax in backward)
    target: object  # (N, T) original ids (0 where not selected)
    selected: object  # (N, T) bool, the positions that count
    count: int  # M, at least 1


# start-mlm-loss
def masked_lm_loss(logits, target, selected):
    """L = (1/M) Σ over selected (n, t) of −log softmax(z_nt)[target_nt]; M = number selected.

    logits (N, T, V) float; target (N, T) ints (the original ids); selected (N, T) bool.
    Backward: dz_nt = selected_nt · (softmax(z_nt) − onehot(target_nt)) · dL / M, exactly zero elsewhere.
    See chapters/22-bert.md#eq-mlm-loss.
    """
    check_float("masked_lm_loss", "logits", logits)
    check_int("masked_lm_loss", "target", target)
    if logits.ndim != 3 or target.shape != logits.shape[:2] or selected.shape != logits.shape[:2]:
        raise ValueError(f"masked_lm_loss: expected logits (N, T, V), target and selected (N, T); got logits "
                         f"{tuple(logits.shape)}, target {tuple(target.shape)}, selected {tuple(selected.shape)}")
    xp = get_array_module(logits, target)
    sel = selected.astype(bool)  # (N, T)
    t = xp.where(sel, target, 0)  # (N, T) a safe index where nothing is selected
    if bool(((t < 0) | (t >= logits.shape[-1])).any()):
        raise ValueError(f"masked_lm_loss: selected targets must lie in [0, {logits.shape[-1]})")
    z = logits - logits.max(axis=-1, keepdims=True)  # (N, T, V) shifted for stability
    logp = z - xp.log(xp.exp(z).sum(axis=-1, keepdims=True))  # (N, T, V) log-softmax
    nll = -xp.take_along_axis(logp, t[..., None], axis=-1)[..., 0]  # (N, T) −log p(target)
    count = max(int(sel.sum()), 1)  # M
    loss = (nll * sel).sum() / count  # () unselected positions multiply by 0
    return loss, MaskedLMCache(logp, t, sel, count)


def masked_lm_loss_backward(dloss, cache):
    """dlogits (N, T, V): (softmax − onehot) · dloss / M on selected positions, 0 on the others."""
    logp, t, sel, count = cache
    check_dloss("masked_lm_loss_backward", dloss, (), logp.dtype)
    xp = get_array_module(logp)
    dz = xp.exp(logp)  # (N, T, V) softmax
    xp.put_along_axis(dz, t[..., None], xp.take_along_axis(dz, t[..., None], axis=-1) - 1.0, axis=-1)
    return dz * (sel[..., None] * (dloss / count)).astype(logp.dtype)  # (N, T, V) zero rows where unselected
# end-mlm-loss
