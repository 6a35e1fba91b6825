"""Gradient-check cases of the DenseNet pieces (chapters/11-densenet.md): the dense layer with and
without the bottleneck, the dense block in the naive and the shared memory layout, the transition
with compression θ < 1 (batch norm in training and evaluation mode), and a tiny DenseNet-BC (float64)."""
from __future__ import annotations

import numpy as np

from ...models.densenet import DenseBlock, DenseLayer, DenseNet, Transition
from ..checker import check_module
from ..registry import register_case
from ._blocks import module_case


def _case(make, cin, title, training, fast):
    return module_case(make, (2, cin, 5, 6), title, training=training, fast=fast, seed=1234)


_PIECES = {
    "layer[bottleneck]": (lambda r: DenseLayer(4, 2, rng=r, dtype=np.float64), 4, False),
    "layer[plain]": (lambda r: DenseLayer(4, 2, bottleneck=False, rng=r, dtype=np.float64), 4, False),
    "block[naive]": (lambda r: DenseBlock(3, 3, 2, memory="naive", rng=r, dtype=np.float64), 3, False),
    "block[shared]": (lambda r: DenseBlock(3, 3, 2, memory="shared", rng=r, dtype=np.float64), 3, True),
    "transition[theta=0.5]": (lambda r: Transition(6, 0.5, rng=r, dtype=np.float64), 6, False),
}

for _name, (_make, _cin, _fast) in _PIECES.items():
    for _training in (True, False):
        _full = f"densenet.{_name[:-1]},{'train' if _training else 'eval'}]"
        register_case(_full)(_case(_make, _cin, _full, _training, _fast))


@register_case("densenet.model[bc,fast]")
def tiny_densenet():
    rng = np.random.default_rng(1234)
    net = DenseNet((2, 2), growth_rate=3, num_classes=3, stem_pool=True, rng=rng, dtype=np.float64)
    report = check_module(net, rng.standard_normal((2, 1, 8, 8)), fast=True)
    report.title = "densenet.model[bc,fast]"
    return report
