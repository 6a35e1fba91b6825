"""Gradient-check cases of GoogLeNet (chapters/09-googlenet.md): the Inception module (four branches;
without the pool branch; without batch norm, the paper's version), the auxiliary classifier, batch
norm in training and evaluation mode, and a whole small network trained through its auxiliary loss
CE(main) + 0.3·Σ CE(aux) (float64)."""
from __future__ import annotations

import numpy as np

from ...backend import get_array_module
from ...models.googlenet import AuxClassifier, GoogLeNet, GoogLeNetLoss, Inception
from ...nn.module import Module
from ..checker import check_module
from ..registry import register_case
from ._blocks import module_case

__all__ = ["TotalLoss", "tiny_googlenet"]


class TotalLoss(Module):
    """x → CE(main) + aux_weight·Σ_k CE(aux_k) of ``model`` on fixed labels: one scalar, so a gradient
    check covers the trunk, the auxiliary heads and the way their gradients join at the taps."""

    def __init__(self, model, target, aux_weight=0.3):
        super().__init__()
        self.model, self.target = model, target
        self.criterion = GoogLeNetLoss(model, aux_weight)

    def forward(self, x):
        target = get_array_module(x).asarray(self.target)  # the labels beside x (a GPU copy in device_parity)
        return self.criterion(self.model(x), target)

    def backward(self, dloss=1.0):
        return self.model.backward(self.criterion.backward(dloss))


def tiny_googlenet(rng, *, aux=True, batch_norm=True, dtype=np.float64):
    """A 12×12-input GoogLeNet with both auxiliary taps: stem → 6×6, 3a, pool → 3×3, 4a and 4d (the
    taps), global pool; width 1/32 of the paper's. Without batch norm the conv biases are random: zero
    biases behind dead ReLUs put exact zeros at the next ReLU's kink (and ties in the max pools)."""
    model = GoogLeNet(3, image_size=12, width=1 / 32, layout=("3a", "M", "4a", "4d"), aux=aux,
                      batch_norm=batch_norm, rng=rng, dtype=dtype)
    if not batch_norm:
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.data[...] = 0.1 * rng.standard_normal(p.data.shape)
    return model



def _case(make, input_shape, title, training, fast):
    return module_case(make, input_shape, title, training=training, fast=fast, seed=909)


_INCEPTION = dict(c1=2, c3_reduce=2, c3=3, c5_reduce=1, c5=2)
_BLOCKS = {  # (block, option) → (make, input shape)
    ("inception", "pool,"): (lambda r: Inception(3, **_INCEPTION, pool_proj=2, rng=r, dtype=np.float64), (2, 3, 5, 4)),
    ("inception", "no-pool,"): (lambda r: Inception(3, **_INCEPTION, pool_proj=0, rng=r, dtype=np.float64),
                                (2, 3, 5, 4)),
    ("inception", "no-bn,"): (lambda r: Inception(3, **_INCEPTION, pool_proj=2, batch_norm=False, rng=r,
                                                  dtype=np.float64), (2, 3, 5, 4)),
    ("inception", "kernel5=3,"): (lambda r: Inception(3, **_INCEPTION, pool_proj=2, kernel5=3, rng=r,
                                                      dtype=np.float64), (2, 3, 5, 4)),
    ("aux_head", ""): (lambda r: AuxClassifier(4, 3, conv_channels=3, hidden=5, map_size=5, rng=r, dtype=np.float64),
                       (4, 4, 5, 5)),
}

for (_block, _option), (_make, _shape) in _BLOCKS.items():
    for _training in (True, False):
        if _option == "no-bn," and not _training:
            continue  # without batch norm the two modes compute the same function
        _full = f"googlenet.{_block}[{_option}{'train' if _training else 'eval'}]"
        _fast = not (_training and _option == "pool,")  # every entry of the four-branch module in training
        register_case(_full)(_case(_make, _shape, _full, _training, _fast))


@register_case("googlenet.model[aux-loss]")
def model_with_aux_loss():
    """The whole network, trained through CE(main) + 0.3·Σ CE(aux), along random directions."""
    rng = np.random.default_rng(910)
    target = rng.integers(0, 3, 4)
    report = check_module(TotalLoss(tiny_googlenet(rng), target), rng.standard_normal((4, 1, 12, 12)), fast=True,
                          n_dirs=3)
    report.title = "googlenet.model[aux-loss]"
    return report


@register_case("googlenet.model[no-bn,aux-loss]")
def model_without_bn():
    """The paper's network (no batch norm) through the same loss."""
    rng = np.random.default_rng(911)
    target = rng.integers(0, 3, 4)
    report = check_module(TotalLoss(tiny_googlenet(rng, batch_norm=False), target),
                          rng.standard_normal((4, 1, 12, 12)), fast=True, n_dirs=3)
    report.title = "googlenet.model[no-bn,aux-loss]"
    return report
