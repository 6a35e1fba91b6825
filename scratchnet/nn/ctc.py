"""``CTCLoss``: the CTC loss as a module. ``loss = crit(log_probs, targets, input_lengths,
target_lengths)``; ``dlog_probs = crit.backward()``. See chapters/17-ctc.md#eq-ctc-grad."""
from __future__ import annotations

from .. import functional as F
from .module import Module

__all__ = ["CTCLoss"]


class CTCLoss(Module):
    """CTC negative log-likelihood of (N, T, C) log-probabilities (batch-first), PyTorch's reductions."""

    def __init__(self, *, blank=0, reduction="mean", zero_infinity=False):
        super().__init__()
        self.blank, self.reduction, self.zero_infinity = blank, reduction, zero_infinity

    def forward(self, log_probs, targets, input_lengths, target_lengths):
        loss, cache = F.ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=self.blank,
                                 reduction=self.reduction, zero_infinity=self.zero_infinity)
        self.push(cache)
        return loss

    def backward(self, dloss=1.0):
        """dlog_probs (N, T, C); zero past each input length."""
        return F.ctc_loss_backward(dloss, self.pop())

    def extra_repr(self):
        return f"blank={self.blank}, reduction={self.reduction!r}, zero_infinity={self.zero_infinity}"
