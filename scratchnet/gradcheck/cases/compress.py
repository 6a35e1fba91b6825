"""Gradient-check cases of model compression: masked linear and conv2d (chapters/33-pruning.md), the
masked layers and LeNet-300-100 / LeNet-5 as modules with pruned masks, the soft-target and
distillation losses at several temperatures and weights (chapters/35-distillation.md), and the
distilled student with its loss."""
from __future__ import annotations

import numpy as np

from ... import functional as F
from ...models.pruning import LeNet5Caffe, LeNet300100, MaskedConv2d, MaskedLinear, apply_masks, magnitude_masks
from ..checker import check_function, check_module
from ..registry import register_case


def _rng():
    return np.random.default_rng(1234)


def _mask(r, shape, keep=0.6):
    return (r.random(shape) < keep).astype(np.float64)


@register_case("compress.masked_linear")
def masked_linear_case():
    r = _rng()
    x, w, b = r.standard_normal((4, 5)), r.standard_normal((5, 3)), r.standard_normal(3)
    x3 = r.standard_normal((2, 3, 5))
    f, bw = F.masked_linear, F.masked_linear_backward
    n = ["x", "w", "b"]
    return [check_function(f, bw, [x, w, b], names=n, mask=_mask(r, (5, 3)), title="masked_linear"),
            check_function(f, bw, [x3, w, None], names=["x", "w"], mask=_mask(r, (5, 3), 0.3) > 0,
                           title="masked_linear[3-D, bool mask, no bias]"),
            check_function(f, bw, [x, w, b], names=n, mask=np.ones((5, 3)), title="masked_linear[dense mask]")]


@register_case("compress.masked_conv2d")
def masked_conv2d_case():
    r = _rng()
    x, w, b = r.standard_normal((2, 3, 6, 5)), r.standard_normal((4, 3, 3, 3)), r.standard_normal(4)
    wg = r.standard_normal((4, 1, 3, 3))
    f, bw = F.masked_conv2d, F.masked_conv2d_backward
    n = ["x", "w", "b"]
    return [check_function(f, bw, [x, w, b], names=n, mask=_mask(r, w.shape), title="masked_conv2d"),
            check_function(f, bw, [x, w, b], names=n, mask=_mask(r, w.shape), stride=2, padding=1,
                           title="masked_conv2d[stride 2, padding 1]"),
            check_function(f, bw, [x[:, :2], wg[:2], b[:2]], names=n, mask=_mask(r, wg[:2].shape), groups=2,
                           title="masked_conv2d[groups 2]")]


@register_case("compress.masked_layers")
def masked_layers_case():
    r = _rng()
    lin = MaskedLinear(6, 4, rng=r, dtype=np.float64)
    conv = MaskedConv2d(2, 3, 3, padding=1, rng=r, dtype=np.float64)
    lin.mask[...] = _mask(r, lin.mask.shape)
    conv.mask[...] = _mask(r, conv.mask.shape)
    return [check_module(lin, r.standard_normal((3, 6))), check_module(conv, r.standard_normal((2, 2, 5, 5)))]


@register_case("compress.lenet300100[pruned]")
def lenet300100_case():
    r = _rng()
    model = LeNet300100(rng=r, dtype=np.float64)
    apply_masks(model, magnitude_masks(model, {"layers.0": 0.9, "layers.2": 0.9, "layers.4": 0.7}))
    report = check_module(model, r.standard_normal((3, 784)), fast=True)
    report.title = "LeNet-300-100 (pruned to ~10 %)"
    return report


@register_case("compress.lenet5caffe[pruned]")
def lenet5caffe_case():
    r = _rng()
    model = LeNet5Caffe(rng=r, dtype=np.float64)
    apply_masks(model, magnitude_masks(model, 0.5))
    report = check_module(model, r.standard_normal((2, 1, 28, 28)), fast=True)
    report.title = "LeNet-5 (Caffe, pruned to 50 %)"
    return report


@register_case("compress.soft_target_loss")
def soft_target_case():
    r = _rng()
    s, t = r.standard_normal((5, 7)), 3 * r.standard_normal((5, 7))
    return [check_function(F.soft_target_loss, F.soft_target_loss_backward, [s, t], wrt=[0], names=["s"], T=T,
                           title=f"soft_target_loss[T={T}]") for T in (1.0, 2.5, 20.0)]


@register_case("compress.distillation_loss")
def distillation_case():
    r = _rng()
    s, t, y = r.standard_normal((6, 4)), 2 * r.standard_normal((6, 4)), r.integers(0, 4, 6)
    f, bw = F.distillation_loss, F.distillation_loss_backward
    return [check_function(f, bw, [s, t, y], wrt=[0], names=["s"], T=T, alpha=a,
                           title=f"distillation_loss[T={T}, alpha={a}]")
            for T, a in ((1.0, 0.5), (4.0, 0.9), (20.0, 0.7), (3.0, 0.0), (3.0, 1.0))]
