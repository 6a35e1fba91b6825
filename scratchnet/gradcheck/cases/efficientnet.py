"""Gradient-check cases of EfficientNet's pieces (chapters/13-efficientnet.md): the squeeze-and-excitation
block, MBConv with expansion 1 and > 1, stride 1 (identity skip, a fixed drop-path mask) and stride 2,
batch norm in training and evaluation mode, and a tiny whole network (float64)."""
from __future__ import annotations

import numpy as np

from ...models.efficientnet import EfficientNet, MBConv, SqueezeExcite
from ..checker import check_module
from ..registry import register_case
from ._blocks import eval_mode


@register_case("efficientnet.squeeze_excite")
def squeeze_excite_case():
    rng = np.random.default_rng(1300)
    se = SqueezeExcite(6, 2, rng=rng, dtype=np.float64)
    report = check_module(se, rng.standard_normal((3, 6, 4, 5)))
    report.title = "efficientnet.squeeze_excite"
    return report


def _mbconv_case(title, cin, cout, k, stride, t, training, mask):
    def run():
        rng = np.random.default_rng(1301)
        blk = MBConv(cin, cout, k, stride, t, drop_rate=0.5, rng=rng, dtype=np.float64)
        if not training:
            eval_mode(blk, rng)
        kwargs = {"drop_mask": np.array(mask)} if (blk.skip and training) else None
        report = check_module(blk, rng.standard_normal((3, cin, 6, 5)), fast=True, forward_kwargs=kwargs)
        report.title = title
        return report
    return run


# (cin, cout, k, stride, t); a skip block in training mode drops sample 1 with the fixed mask (2, 0, 2)
_BLOCKS = {
    "mbconv[t=1,skip": (4, 4, 3, 1, 1),
    "mbconv[t=4,skip": (4, 4, 3, 1, 4),
    "mbconv[t=4,k=5,stride=2": (4, 6, 5, 2, 4),
    "mbconv[t=1,stride=2": (4, 6, 3, 2, 1),
}
for _name, _spec in _BLOCKS.items():
    for _training in (True, False):
        _full = f"efficientnet.{_name},{'train' if _training else 'eval'}]"
        register_case(_full)(_mbconv_case(_full, *_spec, _training, (2.0, 0.0, 2.0)))


@register_case("efficientnet.model[tiny]")
def tiny_model_case():
    rng = np.random.default_rng(1302)
    net = EfficientNet(3, stages=((1, 4, 1, 2, 3), (3, 4, 2, 1, 3), (3, 8, 1, 2, 5)), stem=4, head=8, dropout=0.0,
                       drop_connect=0.0, rng=rng, dtype=np.float64)
    report = check_module(net, rng.standard_normal((2, 1, 8, 8)), fast=True)
    report.title = "efficientnet.model[tiny]"
    return report
