"""Wasserstein GANs (Arjovsky, Chintala & Bottou 2017; Gulrajani et al. 2017): the critic's gradient
steps with weight clipping or the gradient penalty, and the penalty's parameter gradient by double
backward through a critic built of Conv2d, Linear, (Smooth)LeakyReLU and Flatten layers.

Legend: N batch, x̂ interpolates (N, 1, 28, 28), h_l the input of layer l (h_0 = x̂), g_l = ∂D/∂h_l,
gg_l = ∂P/∂g_l, θ_l layer l's parameters.

The penalty P(g_0) depends on θ through the whole backward chain g_{l-1} = B_l(g_l; h_{l-1}, θ_l).
Pass 1 (forward) caches h_l; pass 2 (the ordinary backward from g_L = 1) caches each B_l as an op;
pass 3 walks the backward graph in reverse, i.e. the layers in FORWARD order, giving ∂P/∂θ_l directly
and a contribution a_{l-1} = ∂P/∂h_{l-1} for every B_l that reads its layer's input; pass 4 pushes
those contributions through an ordinary backward. See chapters/31-wgan.md#double-backward.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import functional as F
from ..backend import get_array_module
from ..nn.conv import Conv2d
from ..nn.layers import Flatten, LeakyReLU, Linear, Reshape
from ..nn.module import Module
from .gan import SmoothLeakyReLU

__all__ = ["critic_input_grad", "gradient_penalty_grads", "penalty_backward", "GradientPenalty", "interpolate",
           "wgan_critic_grads", "clip_weights"]


@dataclass
class _Step:
    """One layer of the tape: its input h, its forward cache, and its input-gradient op's cache."""
    layer: object
    h: object
    fcache: object = None
    icache: object = None
    dh: object = None  # ∂P/∂h from pass 3, where the layer's backward reads h


def _forward(layer, h):
    """Pass 1 for one layer: F.op(h, θ) → (y, cache)."""
    if isinstance(layer, Conv2d):
        return F.conv2d(h, layer.weight.data, None if layer.bias is None else layer.bias.data, **layer.opts)
    if isinstance(layer, Linear):
        return F.linear(h, layer.weight.data, None if layer.bias is None else layer.bias.data)
    if isinstance(layer, LeakyReLU):
        return F.leaky_relu(h, **layer.opts)
    if isinstance(layer, SmoothLeakyReLU):
        return F.smooth_leaky_relu(h, **layer.opts)
    if isinstance(layer, Flatten):
        return F.flatten(h, **layer.opts)
    if isinstance(layer, Reshape):
        return F.reshape(h, **layer.opts)
    raise ValueError(f"gradient penalty: no double backward for a {type(layer).__name__} layer (supported: "
                     "Conv2d, Linear, LeakyReLU, SmoothLeakyReLU, Flatten, Reshape)")


def _input_grad(step, g):
    """Pass 2 for one layer: g_{l-1} = B_l(g_l; h_{l-1}, θ_l), the ordinary backward's dx as an op."""
    layer, h = step.layer, step.h
    if isinstance(layer, Conv2d):
        return F.conv2d_input_grad(g, layer.weight.data, input_size=h.shape[2:], **layer.opts)
    if isinstance(layer, Linear):
        return F.linear_input_grad(g, layer.weight.data)
    if isinstance(layer, LeakyReLU):
        return F.leaky_relu_input_grad(g, h, **layer.opts)
    if isinstance(layer, SmoothLeakyReLU):
        return F.smooth_leaky_relu_input_grad(g, h, **layer.opts)
    return g.reshape(h.shape), g.shape  # Flatten / Reshape: the backward is a reshape


def _input_grad_backward(step, gg):
    """Pass 3 for one layer: gg_{l-1} → gg_l; adds ∂P/∂θ_l; keeps ∂P/∂h_{l-1} in step.dh."""
    layer = step.layer
    if isinstance(layer, Conv2d):
        gg, dw = F.conv2d_input_grad_backward(gg, step.icache)
        layer.weight.grad += dw  # the bias does not appear in B_l: no direct term
    elif isinstance(layer, Linear):
        gg, dw = F.linear_input_grad_backward(gg, step.icache)
        layer.weight.grad += dw
    elif isinstance(layer, LeakyReLU):
        gg, _ = F.leaky_relu_input_grad_backward(gg, step.icache)  # ∂P/∂h = 0 almost everywhere
    elif isinstance(layer, SmoothLeakyReLU):
        gg, step.dh = F.smooth_leaky_relu_input_grad_backward(gg, step.icache)
    else:
        gg = gg.reshape(step.icache)
    return gg


def _backward(step, dy):
    """Pass 4 for one layer: the ordinary backward, adding parameter gradients."""
    layer = step.layer
    if isinstance(layer, (Conv2d, Linear)):
        dx, dw, db = (F.conv2d_backward if isinstance(layer, Conv2d) else F.linear_backward)(dy, step.fcache)
        layer.weight.grad += dw
        if layer.bias is not None:
            layer.bias.grad += db
        return dx
    bwd = {LeakyReLU: F.leaky_relu_backward, SmoothLeakyReLU: F.smooth_leaky_relu_backward,
           Flatten: F.flatten_backward, Reshape: F.reshape_backward}[type(layer)]
    return bwd(dy, step.fcache)


# start-critic-input-grad
def critic_input_grad(critic, x):
    """Passes 1 and 2: D(x) (N, 1), g = ∂D(x_n)/∂x_n (N, ...) per sample, and the tape of both passes."""
    tape, h = [], x
    for layer in critic.layers:  # pass 1: forward, caching each layer's input
        step = _Step(layer, h)
        h, step.fcache = _forward(layer, h)
        tape.append(step)
    g = np.ones_like(h)  # (N, 1): dD/dD; samples are independent (no batch norm), so one pass gives all N
    for step in reversed(tape):  # pass 2: the ordinary backward, each layer's dx computed as an op
        g, step.icache = _input_grad(step, g)
    return h, g, tape
# end-critic-input-grad


# start-gradient-penalty-grads
def penalty_backward(tape, gg, x_hat):
    """Passes 3 and 4 from gg = ∂P/∂g_0: adds ∂P/∂θ into the critic's grads; returns ∂P/∂x̂."""
    for step in tape:  # pass 3: the backward graph in reverse = the layers in forward order
        gg = _input_grad_backward(step, gg)  # gg ends as ∂P/∂g_L, unused: g_L = 1 is a constant
    t = None  # pass 4: the total ∂P/∂h_l, an ordinary backward fed by the contributions a_l = step.dh
    for step in reversed(tape):
        t = _backward(step, t) if t is not None else None
        if step.dh is not None:
            t = step.dh if t is None else t + step.dh
    return np.zeros_like(x_hat) if t is None else t  # piecewise-linear critic: pass 4 never starts


def gradient_penalty_grads(critic, x_hat, *, lam=10.0):
    """P = λ·mean_n (‖∂D/∂x̂_n‖ − 1)²: adds ∂P/∂θ into the critic's grads; returns (P, ∂P/∂x̂, ‖g_n‖)."""
    _, g, tape = critic_input_grad(critic, x_hat)  # passes 1 and 2
    P, p_cache = F.gradient_penalty(g, lam=lam)
    dx_hat = penalty_backward(tape, F.gradient_penalty_backward(1.0, p_cache), x_hat)  # passes 3 and 4
    norms = np.sqrt((g.reshape(len(g), -1) ** 2).sum(axis=1))  # (N,)
    return float(P), dx_hat, norms


class GradientPenalty(Module):
    """The penalty as a module of x̂ (for gradchecks): forward → P; backward(dP) → ∂P/∂x̂, adding ∂P/∂θ."""

    def __init__(self, critic, lam=10.0):
        super().__init__()
        self.critic, self.lam = critic, lam

    def forward(self, x_hat):
        _, g, tape = critic_input_grad(self.critic, x_hat)
        P, p_cache = F.gradient_penalty(g, lam=self.lam)
        self.push((tape, p_cache, x_hat))
        return P

    def backward(self, dP):
        tape, p_cache, x_hat = self.pop()
        return penalty_backward(tape, F.gradient_penalty_backward(dP, p_cache), x_hat)
# end-gradient-penalty-grads


def interpolate(real, fake, rng):
    """x̂ = ε·real + (1 − ε)·fake with one ε ~ U[0, 1] per sample: (N, ...)."""
    eps = rng.random((len(real),) + (1,) * (real.ndim - 1)).astype(real.dtype)  # (N, 1, 1, 1) on the host
    eps = get_array_module(real).asarray(eps)  # ... and beside the images (N numbers copied on a GPU)
    return eps * real + (1 - eps) * fake


# start-wgan-critic-grads
def wgan_critic_grads(critic, real, fake, *, lam=None, rng=None):
    """Add ∂L/∂θ for L = mean D(fake) − mean D(real) (+ λ·GP on interpolates when ``lam`` is given).

    Returns (L, W, P): W = mean D(real) − mean D(fake), the critic's Wasserstein estimate, and P the
    penalty (0 without ``lam``). ``fake`` is an array: no gradient goes to the generator.
    """
    d_real = critic(real)  # (N, 1)
    d_fake = critic(fake)  # (N, 1)
    critic.backward(np.full_like(d_fake, 1.0 / d_fake.size))  # ∂(mean D(fake))/∂D: fake was cached last
    critic.backward(np.full_like(d_real, -1.0 / d_real.size))  # ∂(−mean D(real))/∂D
    W = float(d_real.mean() - d_fake.mean())
    P = 0.0
    if lam is not None:
        P, _, _ = gradient_penalty_grads(critic, interpolate(real, fake, rng), lam=lam)
    return -W + P, W, P
# end-wgan-critic-grads


def clip_weights(module, c=0.01):
    """WGAN's Lipschitz constraint, crudely: every parameter clipped to [−c, c] in place after each step."""
    for p in module.parameters():
        np.clip(p.data, -c, c, out=p.data)
