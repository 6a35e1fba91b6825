"""Gradient-check cases of the spine's ops (linear, activations, dropout, norms, losses, reshapes):
several shapes each, and every option that changes the math (bias, axis, training, affine,
reductions, label smoothing, ignore_index, pos_weight, log_target)."""
from __future__ import annotations

import numpy as np

from ... import functional as F
from ..checker import check_function
from ..registry import register_case


def _rng():
    return np.random.default_rng(1234)


def _off_kinks(shape, rng):
    """Standard normal values pushed away from 0, where relu-like functions have a kink."""
    x = rng.standard_normal(shape)
    return x + np.sign(x) * 0.1


SHAPES = [(3, 4), (2, 3, 5), (1, 7)]  # 2-D, 3-D (leading axes batch) and a single row


@register_case("core.linear")
def linear_case():
    r = _rng()
    return [check_function(F.linear, F.linear_backward, [r.standard_normal(shape), r.standard_normal((shape[-1], 3)),
                                                         r.standard_normal(3) if bias else None],
                           title=f"linear[{shape}, bias={bias}]")
            for shape in SHAPES for bias in (True, False)]


@register_case("core.embedding")
def embedding_case():
    r = _rng()
    reports = []
    for ids_shape in ((5,), (2, 3)):
        ids = r.integers(0, 4, size=ids_shape)
        ids.flat[0] = ids.flat[-1]  # a repeated id must accumulate
        reports.append(check_function(F.embedding, F.embedding_backward, [ids, r.standard_normal((4, 3))],
                                      title=f"embedding[ids {ids_shape}, repeated id]"))
    return reports


_ELEMENTWISE = {
    "relu": (F.relu, F.relu_backward, {}), "leaky_relu": (F.leaky_relu, F.leaky_relu_backward, {"slope": 0.2}),
    "sigmoid": (F.sigmoid, F.sigmoid_backward, {}), "tanh": (F.tanh, F.tanh_backward, {}),
    "silu": (F.silu, F.silu_backward, {}), "softplus": (F.softplus, F.softplus_backward, {}),
    "gelu": (F.gelu, F.gelu_backward, {"approximate": "none"}),
    "gelu[tanh]": (F.gelu, F.gelu_backward, {"approximate": "tanh"}),
    "softmax": (F.softmax, F.softmax_backward, {"axis": -1}),
    "softmax[axis=0]": (F.softmax, F.softmax_backward, {"axis": 0}),
    "log_softmax": (F.log_softmax, F.log_softmax_backward, {"axis": -1}),
    "log_softmax[axis=1]": (F.log_softmax, F.log_softmax_backward, {"axis": 1}),
}


def _elementwise_case(name):
    fwd, bwd, opts = _ELEMENTWISE[name]
    return lambda: [check_function(fwd, bwd, [_off_kinks(shape, _rng())], title=f"{name} {shape}", **opts)
                    for shape in SHAPES + [(3, 7)]]


for _name in _ELEMENTWISE:
    register_case(f"core.{_name}")(_elementwise_case(_name))


@register_case("core.dropout")
def dropout_case():
    r = _rng()
    reports = []
    for shape, p in [((4, 6), 0.3)] + [(s, 0.25) for s in SHAPES]:
        mask = (r.random(shape) > p) / (1 - p)
        reports.append(check_function(F.dropout, F.dropout_backward, [r.standard_normal(shape)], p=p, mask=mask,
                                      title=f"dropout[{shape}, p={p}, fixed mask]"))
    return reports


@register_case("core.batch_norm")
def batch_norm_case():
    r = _rng()
    reports = []
    for shape in ((6, 4), (5, 3), (4, 3, 2), (3, 4, 2, 3), (3, 2, 4, 5)):
        for training in (True, False):
            for affine in (True, False):
                C = shape[1]
                gamma, beta = (1.0 + r.random(C), r.standard_normal(C)) if affine else (None, None)
                inputs = [r.standard_normal(shape), gamma, beta, r.standard_normal(C), 0.5 + r.random(C)]
                reports.append(check_function(
                    F.batch_norm, F.batch_norm_backward, inputs, wrt=[0, 1, 2] if affine else [0], training=training,
                    title=f"batch_norm[{shape}, training={training}, affine={affine}]"))
    return reports


@register_case("core.layer_norm")
def layer_norm_case():
    r = _rng()
    reports = []
    for shape in ((4, 5), (2, 3, 5), (2, 3, 6)):
        for affine in (True, False):
            D = shape[-1]
            gamma, beta = (1.0 + r.random(D), r.standard_normal(D)) if affine else (None, None)
            reports.append(check_function(F.layer_norm, F.layer_norm_backward, [r.standard_normal(shape), gamma, beta],
                                          title=f"layer_norm[{shape}, affine={affine}]"))
    return reports


@register_case("core.cross_entropy")
def cross_entropy_case():
    r = _rng()
    reports = []
    for shape in ((5, 4), (6, 5), (2, 4, 5)):
        for smoothing in (0.0, 0.15):
            for ignore in (-100, 2):
                for reduction in ("mean", "sum", "none"):
                    target = r.integers(0, shape[-1], size=shape[:-1])
                    reports.append(check_function(
                        F.cross_entropy, F.cross_entropy_backward, [r.standard_normal(shape), target], wrt=[0],
                        label_smoothing=smoothing, ignore_index=ignore, reduction=reduction,
                        title=f"cross_entropy[{shape}, ls={smoothing}, ignore={ignore}, {reduction}]"))
    return reports


@register_case("core.losses")
def other_losses_case():
    r = _rng()
    x, t = r.standard_normal((4, 3)), r.standard_normal((4, 3))
    p = r.random((4, 3))
    logq = F.log_softmax(r.standard_normal((4, 3)))[0]
    q = F.softmax(r.standard_normal((4, 3)))[0]
    reports = []
    for reduction in ("mean", "sum", "none"):
        reports.append(check_function(F.mse_loss, F.mse_loss_backward, [x, t], wrt=[0], reduction=reduction,
                                      title=f"mse_loss[{reduction}]"))
        for pw in (None, 2.0):
            reports.append(check_function(
                F.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits_backward, [x, p], wrt=[0],
                reduction=reduction, pos_weight=pw, title=f"bce_with_logits[{reduction}, pos_weight={pw}]"))
    for reduction in ("mean", "sum", "none", "batchmean"):
        reports.append(check_function(F.kl_div, F.kl_div_backward, [logq, q], wrt=[0], reduction=reduction,
                                      title=f"kl_div[{reduction}]"))
        reports.append(check_function(F.kl_div, F.kl_div_backward, [logq, np.log(q)], wrt=[0], reduction=reduction,
                                      log_target=True, title=f"kl_div[{reduction}, log_target]"))
    return reports


@register_case("core.flatten")
def flatten_case():
    return [check_function(F.flatten, F.flatten_backward, [_rng().standard_normal(shape)], title=f"flatten[{shape}]")
            for shape in ((2, 3, 4), (2, 3, 2))]


@register_case("core.reshape")
def reshape_case():
    return check_function(F.reshape, F.reshape_backward, [_rng().standard_normal((2, 6))], shape=(3, -1),
                          title="reshape[(2, 6) -> (3, -1)]")
