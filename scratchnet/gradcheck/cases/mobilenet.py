"""Gradient-check cases of MobileNet's pieces (chapters/12-mobilenet.md): the depthwise convolution
(groups = C_in, channel multiplier 2, stride 2), the depthwise-separable block and the inverted
residual (stride 1 with its identity shortcut, stride 2 without, t = 1), batch norm in training and
evaluation mode (float64)."""
from __future__ import annotations

import numpy as np

from ... import functional as F
from ...models.mobilenet import DepthwiseSeparable, InvertedResidual
from ..checker import check_function
from ..registry import register_case
from ._blocks import module_case


@register_case("mobilenet.depthwise_conv[m2,stride2]")
def depthwise_conv():
    """groups = C_in = 3, C_out = 2·C_in, stride 2, padding 1, with a bias; and dilation 2 at stride 1."""
    rng = np.random.default_rng(1200)
    x = rng.standard_normal((2, 3, 7, 6))  # (N, C_in, H, W)
    w, b = rng.standard_normal((6, 1, 3, 3)), rng.standard_normal(6)  # (m·C_in, 1, 3, 3), (m·C_in,)
    return [check_function(F.conv2d, F.conv2d_backward, [x, w, b], stride=2, padding=1, groups=3,
                           title="mobilenet.depthwise_conv[m2,stride2]"),
            check_function(F.conv2d, F.conv2d_backward, [x, w, None], padding=2, dilation=2, groups=3,
                           title="mobilenet.depthwise_conv[m2,dilation2]")]



def _case(make, cin, title, training, fast):
    return module_case(make, (2, cin, 6, 5), title, training=training, fast=fast, seed=1201)


_BLOCKS = {
    "separable[stride1]": (lambda r: DepthwiseSeparable(3, 5, rng=r, dtype=np.float64), 3),
    "separable[stride2]": (lambda r: DepthwiseSeparable(3, 5, 2, rng=r, dtype=np.float64), 3),
    "inverted_residual[shortcut]": (lambda r: InvertedResidual(4, 4, 1, 3, rng=r, dtype=np.float64), 4),
    "inverted_residual[stride2]": (lambda r: InvertedResidual(3, 5, 2, 2, rng=r, dtype=np.float64), 3),
    "inverted_residual[t1]": (lambda r: InvertedResidual(4, 4, 1, 1, rng=r, dtype=np.float64), 4),
}

for _name, (_make, _cin) in _BLOCKS.items():
    for _training in (True, False):
        _full = f"mobilenet.{_name[:-1]},{'train' if _training else 'eval'}]"
        # every entry in training mode (gradients through the batch statistics); random directions in eval
        register_case(_full)(_case(_make, _cin, _full, _training, not _training))
