"""The time reduction of the pyramidal BiLSTM (Chan et al. 2016, "Listen, Attend and Spell"):
neighbouring frames concatenated in pairs, halving the sequence and doubling the features.

Legend: N batch, T frames, D features per frame, T' = ⌊T/2⌋ frames after the reduction.
Odd lengths: the last frame of an odd-length sequence has no partner and is dropped (the paper's
recipe, and what ``pyramid_lengths`` counts); its gradient is zero. See chapters/24-las.md#las-pyramid.
"""
from __future__ import annotations

import numpy as np

from .._checks import check_float, check_grad, check_ndim
from ..backend import get_array_module

__all__ = ["pyramid_concat", "pyramid_concat_backward", "pyramid_lengths"]


# start-pyramid
def pyramid_concat(x):
    """y[:, t] = [x[:, 2t]; x[:, 2t+1]]: (N, T, D) → (N, ⌊T/2⌋, 2D); an odd last frame is dropped.

    A pure rearrangement of x's entries, so backward puts every entry back:
    dx[:, 2t] = dy[:, t, :D], dx[:, 2t+1] = dy[:, t, D:], and dx = 0 on a dropped last frame.
    See chapters/24-las.md#eq-pyramid.
    """
    check_float("pyramid_concat", "x", x)
    check_ndim("pyramid_concat", "x", x, 3)
    N, T, D = x.shape
    if T < 2:
        raise ValueError(f"pyramid_concat: expected x (N, T, D) with T >= 2 frames, got shape {tuple(x.shape)}")
    Tr = T // 2
    y = x[:, :2 * Tr].reshape(N, Tr, 2 * D)  # (N, T', 2D) rows 2t and 2t+1 side by side (a view when T is even)
    return y, (x.shape, x.dtype)


def pyramid_concat_backward(dy, cache):
    """dx (N, T, D): each half of dy[:, t] goes back to its frame; a dropped odd frame gets zero."""
    (N, T, D), dtype = cache
    check_grad("pyramid_concat_backward", "dy", dy, (N, T // 2, 2 * D), dtype)
    xp = get_array_module(dy)
    dx = xp.zeros((N, T, D), dtype=dtype)  # (N, T, D) zero on the dropped frame
    dx[:, :2 * (T // 2)] = dy.reshape(N, 2 * (T // 2), D)  # undo the reshape
    return dx
# end-pyramid


def pyramid_lengths(lengths, levels=1):
    """Valid frames after ``levels`` reductions: ⌊T_n / 2^levels⌋ (a dropped odd frame never counts)."""
    out = get_array_module(lengths).asarray(lengths, dtype=np.int64)  # (N,) on the lengths' device
    for _ in range(levels):
        out = out // 2
    return out
