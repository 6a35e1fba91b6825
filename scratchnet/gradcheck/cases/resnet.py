"""Gradient-check cases of the residual blocks (chapters/10-resnet.md): basic and bottleneck blocks
with identity and projection shortcuts, batch norm in training and evaluation mode (float64)."""
from __future__ import annotations

import numpy as np

from ...models.resnet import BasicBlock, Bottleneck
from ..registry import register_case
from ._blocks import module_case


def _case(make, cin, title, training, fast):
    return module_case(make, (2, cin, 6, 5), title, training=training, fast=fast, seed=1234)


_BLOCKS = {
    "basic[identity]": (lambda r: BasicBlock(3, 3, rng=r, dtype=np.float64), 3),
    "basic[projection]": (lambda r: BasicBlock(3, 4, 2, rng=r, dtype=np.float64), 3),
    "basic[plain]": (lambda r: BasicBlock(3, 4, 2, residual=False, rng=r, dtype=np.float64), 3),
    "bottleneck[identity]": (lambda r: Bottleneck(8, 2, rng=r, dtype=np.float64), 8),
    "bottleneck[projection]": (lambda r: Bottleneck(4, 2, 2, rng=r, dtype=np.float64), 4),
}

for _name, (_make, _cin) in _BLOCKS.items():
    for _training in (True, False):
        _full = f"resnet.{_name[:-1]},{'train' if _training else 'eval'}]"
        # every entry for the basic identity block in training mode; random directions elsewhere
        _fast = not (_training and _name == "basic[identity]")
        register_case(_full)(_case(_make, _cin, _full, _training, _fast))
