"""The masked-language-model loss: cross-entropy averaged over the selected (masked) positions only.

Legend: N batch, T positions, V vocabulary, M number of selected positions.
See chapters/22-bert.md#eq-mlm-loss.
"""
from __future__ import annotations

from .._checks import check_float, check_int
from ..backend import get_array_module
from .loss import check_dloss, cross_entropy, cross_entropy_backward

__all__ = ["masked_lm_loss", "masked_lm_loss_backward"]

_IGNORE = -100  # the target written at unselected positions: cross_entropy skips it


# start-mlm-loss
def masked_lm_loss(logits, target, selected):
    """L = (1/M) Σ over selected (n, t) of −log softmax(z_nt)[target_nt]; M = number selected.

    logits (N, T, V) float; target (N, T) ints (the original ids); selected (N, T) bool.
    It is ``cross_entropy`` with every unselected target replaced by ``ignore_index``: those positions
    add nothing to the sum and nothing to M.
    Backward: dz_nt = selected_nt · (softmax(z_nt) − onehot(target_nt)) · dL / M, exactly zero elsewhere.
    See chapters/22-bert.md#eq-mlm-loss.
    """
    check_float("masked_lm_loss", "logits", logits)
    check_int("masked_lm_loss", "target", target)
    if logits.ndim != 3 or target.shape != logits.shape[:2] or selected.shape != logits.shape[:2]:
        raise ValueError(f"masked_lm_loss: expected logits (N, T, V), target and selected (N, T); got logits "
                         f"{tuple(logits.shape)}, target {tuple(target.shape)}, selected {tuple(selected.shape)}")
    xp = get_array_module(logits, target)
    t = xp.where(selected.astype(bool), target, _IGNORE)  # (N, T) only the selected positions count
    if bool((((t < 0) | (t >= logits.shape[-1])) & (t != _IGNORE)).any()):
        raise ValueError(f"masked_lm_loss: selected targets must lie in [0, {logits.shape[-1]})")
    return cross_entropy(logits, t, ignore_index=_IGNORE)


def masked_lm_loss_backward(dloss, cache):
    """dlogits (N, T, V): (softmax − onehot) · dloss / M on selected positions, 0 on the others."""
    check_dloss("masked_lm_loss_backward", dloss, (), cache.logp.dtype)  # a scalar, named for this op
    return cross_entropy_backward(dloss, cache)
# end-mlm-loss
