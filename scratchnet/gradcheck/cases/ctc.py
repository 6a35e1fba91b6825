"""Gradient-check cases of the CTC loss (float64, log-probabilities treated as free inputs)."""
from __future__ import annotations

import numpy as np

from ... import functional as F
from ..checker import check_function
from ..registry import register_case


def _problem(N, T, C, S, *, blank=0, seed=1234):
    r = np.random.default_rng(seed)
    lp = r.standard_normal((N, T, C)) - np.log(C)  # (N, T, C) off the simplex on purpose
    labels = np.array([c for c in range(C) if c != blank])
    targets = labels[r.integers(0, len(labels), size=(N, S))]  # (N, S)
    targets[0, 1] = targets[0, 0]  # a repeated label: needs a blank between
    target_lengths = np.array([S] + [max(S - n, 0) for n in range(1, N)])
    input_lengths = np.array([T] + [T - n for n in range(1, N)])
    return lp, targets, input_lengths, target_lengths


def _case(title, N, T, C, S, *, blank=0, **options):
    lp, tg, il, tl = _problem(N, T, C, S, blank=blank)
    return check_function(F.ctc_loss, F.ctc_loss_backward, [lp, tg, il, tl], wrt=[0], names=["log_probs"],
                          title=title, blank=blank, **options)


@register_case("ctc.ctc_loss[reductions]")
def ctc_reductions_case():
    return [_case(f"ctc_loss[{r}]", 3, 6, 4, 3, reduction=r) for r in ("mean", "sum", "none")]


@register_case("ctc.ctc_loss[blank=last]")
def ctc_blank_case():
    return _case("ctc_loss[blank=4]", 2, 7, 5, 3, blank=4)


@register_case("ctc.ctc_loss[zero_infinity]")
def ctc_zero_infinity_case():
    lp, tg, il, tl = _problem(3, 4, 4, 3)
    il[2], tl[2], tg[2] = 3, 3, [1, 1, 2]  # "1 _ 1 2" needs 4 frames: impossible in 3
    return check_function(F.ctc_loss, F.ctc_loss_backward, [lp, tg, il, tl], wrt=[0], names=["log_probs"],
                          title="ctc_loss[zero_infinity]", zero_infinity=True)
