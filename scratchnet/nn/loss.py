"""Loss modules: ``loss = crit(pred, target)``; ``dpred = crit.backward()`` (dloss defaults to 1)."""
from __future__ import annotations

from .. import functional as F
from .module import Module

__all__ = ["CrossEntropyLoss", "MSELoss", "BCEWithLogitsLoss", "KLDivLoss"]


class _Loss(Module):
    _fn = _bwd = None

    def __init__(self, **opts):
        super().__init__()
        self.opts = opts

    def forward(self, pred, target):
        loss, cache = type(self)._fn(pred, target, **self.opts)
        self.push(cache)
        return loss

    def backward(self, dloss=1.0):
        return type(self)._bwd(dloss, self.pop())

    def extra_repr(self):
        return ", ".join(f"{k}={v}" for k, v in self.opts.items())


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy on integer targets (label smoothing, ignore_index)."""
    _fn, _bwd = staticmethod(F.cross_entropy), staticmethod(F.cross_entropy_backward)

    def __init__(self, *, reduction="mean", label_smoothing=0.0, ignore_index=-100):
        super().__init__(reduction=reduction, label_smoothing=label_smoothing, ignore_index=ignore_index)


class MSELoss(_Loss):
    _fn, _bwd = staticmethod(F.mse_loss), staticmethod(F.mse_loss_backward)

    def __init__(self, *, reduction="mean"):
        super().__init__(reduction=reduction)


class BCEWithLogitsLoss(_Loss):
    _fn = staticmethod(F.binary_cross_entropy_with_logits)
    _bwd = staticmethod(F.binary_cross_entropy_with_logits_backward)

    def __init__(self, *, reduction="mean", pos_weight=None):
        super().__init__(reduction=reduction, pos_weight=pos_weight)


class KLDivLoss(_Loss):
    _fn, _bwd = staticmethod(F.kl_div), staticmethod(F.kl_div_backward)

    def __init__(self, *, reduction="mean", log_target=False):
        super().__init__(reduction=reduction, log_target=log_target)
