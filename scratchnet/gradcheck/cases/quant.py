"""Gradient-check cases of int8 quantisation (chapters/34-quantization.md#ste-check).

A gradient check of ``fake_quant`` as it stands would test the wrong thing: round() is a step
function, its true derivative is 0 almost everywhere (and undefined at the steps), while the
straight-through estimator (STE) says 1. The STE backward is the *exact* gradient of a different,
smooth function: fake quantisation with the rounding residual δ = round(x/s) − x/s frozen at the
point of evaluation (``fake_quant(..., residual=δ)``), which equals fake_quant there. So the cases
freeze δ (and, for the layers, the weight scales and the observed ranges) and check that function,
with inputs kept away from the clip points q_min and q_max, where it has kinks. A 4-bit range makes
both the inside and the clipped branches appear in small arrays. The STE against the true finite
differences (which it fails, by design) is in tests/functional/test_quant.py.
"""
from __future__ import annotations

import numpy as np

from ... import functional as F
from ...models.mobilenet import MobileNet
from ...models.quant import QuantConv2d, QuantLinear, calibrate, fuse
from ...nn.conv import Conv2d, MaxPool2d
from ...nn.layers import Flatten, Linear, ReLU
from ...nn.module import Sequential
from ..checker import check_function, check_module
from ..registry import register_case

Q4 = dict(qmin=-8, qmax=7)  # 4 bits: a small array has values inside and outside the range


def _rng():
    return np.random.default_rng(1234)


def _off_the_clip_points(x, s, z, axis, qmin, qmax):
    """x with every element whose code round(x/s) + z is exactly q_min or q_max moved one step outwards
    (into the clipped branch): with δ frozen, those are the kinks of the function checked."""
    shape = [1] * x.ndim
    if axis is not None:
        shape[axis] = -1
    s_b, z_b = np.reshape(s, shape), np.reshape(z, shape)
    code = np.round(x / s_b) + z_b
    return x + s_b * ((code == qmax).astype(float) - (code == qmin))


def _fq_case(x, s, z, axis, title, qmin, qmax):
    x = _off_the_clip_points(x, s, z, axis, qmin, qmax)
    delta = F.rounding_residual(x, s, axis=axis)  # frozen at this point: the STE is exact for it
    return check_function(F.fake_quant, F.fake_quant_backward, [x, s, z], names=["x", "scale"], qmin=qmin,
                          qmax=qmax, axis=axis, residual=delta, title=title)


@register_case("quant.fake_quant")
def fake_quant_case():
    r = _rng()
    x4 = 2.0 * r.standard_normal((2, 3, 4, 4))
    return [
        _fq_case(2.0 * r.standard_normal((5, 6)), np.array(0.3), np.array(-2), None,
                 "fake_quant[per-tensor, 4-bit, z = −2]", **Q4),
        _fq_case(x4, np.array([0.2, 0.35, 0.5]), np.array([0, 1, -3]), 1,
                 "fake_quant[per-channel axis 1, 4-bit]", **Q4),
        _fq_case(x4, np.full(2, 0.25), np.zeros(2, np.int32), 0, "fake_quant[per-channel axis 0, symmetric]", -7, 7),
        _fq_case(r.standard_normal((4, 5)), np.array(0.02), np.array(-128), None, "fake_quant[int8, z = −128]",
                 -128, 127),
    ]


def _frozen(layer, x, headroom=1.3):
    """Observe x's output range once, then freeze rounding with the ranges widened (off the clip points)."""
    layer.train()
    layer(x)
    layer.clear_caches()
    layer.fake_quant = True
    span = (layer.obs.hi - layer.obs.lo) * (headroom - 1)  # widened both ways: z_y > q_min, off the clip
    layer.obs.lo -= span
    layer.obs.hi += span
    layer.freeze_rounding(headroom)
    return layer


@register_case("quant.quant_layers")
def quant_layers_case():
    r = _rng()
    out = []
    for per_channel in (True, False):
        conv = QuantConv2d(r.standard_normal((4, 2, 3, 3)), r.standard_normal(4), "relu", opts=dict(padding=1),
                           per_channel=per_channel)
        lin = QuantLinear(r.standard_normal((6, 3)), r.standard_normal(3), None, per_channel=per_channel)
        xc, xl = r.standard_normal((2, 2, 5, 5)), r.standard_normal((4, 6))
        for layer, x in ((conv, xc), (lin, xl)):
            rep = check_module(_frozen(layer, x), x)
            rep.title = f"{type(layer).__name__}[fake quant, {'per-channel' if per_channel else 'per-tensor'}]"
            out.append(rep)
    dw = QuantConv2d(r.standard_normal((3, 1, 3, 3)), r.standard_normal(3), "relu6",
                     opts=dict(stride=2, padding=1, groups=3))
    rep = check_module(_frozen(dw, xc[:, :1].repeat(3, axis=1)), xc[:, :1].repeat(3, axis=1))
    rep.title = "QuantConv2d[depthwise, stride 2, ReLU6, fake quant]"
    out.append(rep)
    rep = check_module(QuantLinear(r.standard_normal((6, 3)), r.standard_normal(3), "relu"), xl)
    rep.title = "QuantLinear[fake quant off]"
    return out + [rep]


def _tiny_lenet(r):
    return Sequential(Conv2d(1, 3, 3, rng=r, dtype=np.float64), ReLU(), MaxPool2d(2), Flatten(),
                      Linear(3 * 3 * 3, 4, rng=r, dtype=np.float64))


def _frozen_net(model, x, headroom=1.3):
    net = calibrate(fuse(model), x)
    net.enable_fake_quant()
    return net.freeze_rounding(headroom)


@register_case("quant.quantnet[lenet]")
def quantnet_lenet_case():
    r = _rng()
    x = r.standard_normal((3, 1, 8, 8))
    rep = check_module(_frozen_net(_tiny_lenet(r), x), x)
    rep.title = "QuantNet (tiny LeNet, fake quant, rounding frozen)"
    return rep


@register_case("quant.quantnet[mobilenet]")
def quantnet_mobilenet_case():
    r = _rng()
    model = MobileNet(3, alpha=0.125, blocks=((16, 2), (16, 1)), stem=16, rng=r, dtype=np.float64).eval()
    for bn in [m for m in model.modules() if hasattr(m, "running_var")]:
        bn.running_mean[...] = 0.3 * r.standard_normal(bn.running_mean.shape)
        bn.running_var[...] = r.uniform(0.5, 2.0, bn.running_var.shape)
    x = r.standard_normal((2, 1, 8, 8))
    rep = check_module(_frozen_net(model, x), x, fast=True)
    rep.title = "QuantNet (tiny MobileNet, BN folded, fake quant, rounding frozen)"
    return rep
