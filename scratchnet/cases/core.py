"""Gradient-check cases of the spine's ops (linear, activations, dropout, norms, losses)."""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ..gradcheck import check_function, register_case


def _rng():
    return np.random.default_rng(1234)


def _off_kinks(shape, rng):
    """Standard normal values pushed away from 0, where relu-like functions have a kink."""
    x = rng.standard_normal(shape)
    return x + np.sign(x) * 0.1


@register_case("core.linear")
def linear_case():
    r = _rng()
    return [check_function(F.linear, F.linear_backward, [r.standard_normal((4, 5)), r.standard_normal((5, 3)),
                                                         r.standard_normal(3)], title="linear"),
            check_function(F.linear, F.linear_backward, [r.standard_normal((2, 3, 5)), r.standard_normal((5, 2)),
                                                         None], title="linear[3-D, no bias]")]


@register_case("core.embedding")
def embedding_case():
    r = _rng()
    ids = r.integers(0, 6, size=(3, 4))
    return check_function(F.embedding, F.embedding_backward, [ids, r.standard_normal((6, 5))], title="embedding")


_ELEMENTWISE = {
    "relu": (F.relu, F.relu_backward, {}), "leaky_relu": (F.leaky_relu, F.leaky_relu_backward, {"slope": 0.2}),
    "sigmoid": (F.sigmoid, F.sigmoid_backward, {}), "tanh": (F.tanh, F.tanh_backward, {}),
    "silu": (F.silu, F.silu_backward, {}), "softplus": (F.softplus, F.softplus_backward, {}),
    "gelu": (F.gelu, F.gelu_backward, {"approximate": "none"}),
    "gelu[tanh]": (F.gelu, F.gelu_backward, {"approximate": "tanh"}),
    "softmax": (F.softmax, F.softmax_backward, {"axis": -1}),
    "softmax[axis=0]": (F.softmax, F.softmax_backward, {"axis": 0}),
    "log_softmax": (F.log_softmax, F.log_softmax_backward, {"axis": -1}),
}


def _elementwise_case(name):
    fwd, bwd, opts = _ELEMENTWISE[name]
    return lambda: check_function(fwd, bwd, [_off_kinks((3, 7), _rng())], title=name, **opts)


for _name in _ELEMENTWISE:
    register_case(f"core.{_name}")(_elementwise_case(_name))


@register_case("core.dropout")
def dropout_case():
    r = _rng()
    x = r.standard_normal((4, 6))
    mask = (r.random((4, 6)) > 0.3) / 0.7
    return check_function(F.dropout, F.dropout_backward, [x], p=0.3, mask=mask, title="dropout[fixed mask]")


@register_case("core.batch_norm")
def batch_norm_case():
    r = _rng()
    reports = []
    for shape, training in (((6, 4), True), ((6, 4), False), ((3, 4, 2, 3), True), ((3, 4, 2, 3), False)):
        C = shape[1]
        inputs = [r.standard_normal(shape), 1.0 + r.random(C), r.standard_normal(C), r.standard_normal(C),
                  0.5 + r.random(C)]
        reports.append(check_function(F.batch_norm, F.batch_norm_backward, inputs, wrt=[0, 1, 2],
                                      training=training, title=f"batch_norm[{len(shape)}-D, training={training}]"))
    return reports


@register_case("core.layer_norm")
def layer_norm_case():
    r = _rng()
    return check_function(F.layer_norm, F.layer_norm_backward,
                          [r.standard_normal((2, 3, 5)), 1.0 + r.random(5), r.standard_normal(5)], title="layer_norm")


@register_case("core.cross_entropy")
def cross_entropy_case():
    r = _rng()
    reports = []
    for shape, smoothing, ignore in (((5, 4), 0.0, -100), ((5, 4), 0.1, -100), ((2, 3, 4), 0.2, 1)):
        target = r.integers(0, 4, size=shape[:-1])
        reports.append(check_function(F.cross_entropy, F.cross_entropy_backward, [r.standard_normal(shape), target],
                                      label_smoothing=smoothing, ignore_index=ignore,
                                      title=f"cross_entropy[{len(shape)}-D, ls={smoothing}, ignore={ignore}]"))
    return reports


@register_case("core.losses")
def other_losses_case():
    r = _rng()
    x, t = r.standard_normal((4, 3)), r.standard_normal((4, 3))
    p = r.random((4, 3))
    logq = F.log_softmax(r.standard_normal((4, 3)))[0]
    target = F.softmax(r.standard_normal((4, 3)))[0]
    return [check_function(F.mse_loss, F.mse_loss_backward, [x, t], wrt=[0], title="mse_loss"),
            check_function(F.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits_backward,
                           [x, p], wrt=[0], pos_weight=2.0, title="bce_with_logits[pos_weight]"),
            check_function(F.kl_div, F.kl_div_backward, [logq, target], wrt=[0], reduction="batchmean",
                           title="kl_div[batchmean]")]


@register_case("core.flatten")
def flatten_case():
    return check_function(F.flatten, F.flatten_backward, [_rng().standard_normal((2, 3, 4))], title="flatten")
