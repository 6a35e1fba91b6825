"""Gradient-check cases of the GAN chapters (30-dcgan, 31-wgan): the double-backward pairs, the
gradient penalty's gradient wrt every critic parameter and wrt the interpolate (conv and MLP critics,
piecewise-linear and smooth), the generator, the discriminator, and the generator's gradient
through the discriminator (float64)."""
from __future__ import annotations

import numpy as np

from ... import functional as F
from ...nn.module import Module, no_grad
from ..checker import check_function, check_module
from ..registry import register_case


def _rng():
    return np.random.default_rng(1234)


@register_case("gan.linear_input_grad")
def linear_input_grad_case():
    r = _rng()
    return [check_function(F.linear_input_grad, F.linear_input_grad_backward,
                           [r.standard_normal(lead + (4,)), r.standard_normal((5, 4))], names=["dy", "w"],
                           title=f"linear_input_grad[{len(lead) + 1}-D]") for lead in ((3,), (2, 3))]


@register_case("gan.conv2d_input_grad")
def conv2d_input_grad_case():
    r = _rng()
    out = []
    for opts, cin, hw in [(dict(stride=1, padding=0), 2, (6, 6)), (dict(stride=2, padding=1), 3, (8, 7)),
                          (dict(stride=2, padding=0, dilation=2), 2, (9, 9)),
                          (dict(stride=1, padding=1, groups=2), 4, (5, 5))]:
        w = r.standard_normal((4, cin // opts.get("groups", 1), 3, 3))
        y, _ = F.conv2d(r.standard_normal((2, cin) + hw), w, None, **opts)
        out.append(check_function(F.conv2d_input_grad, F.conv2d_input_grad_backward, [r.standard_normal(y.shape), w],
                                  names=["dy", "w"], input_size=hw, title=f"conv2d_input_grad{opts}", **opts))
    return out


def _off_kink(r, shape):
    x = r.standard_normal(shape)
    return np.where(np.abs(x) < 0.05, 0.3, x)  # finite differences must not cross x = 0


@register_case("gan.leaky_relu_input_grad")
def leaky_input_grad_case():
    r = _rng()
    return check_function(F.leaky_relu_input_grad, F.leaky_relu_input_grad_backward,
                          [r.standard_normal((3, 5)), _off_kink(r, (3, 5))], names=["dy", "x"], slope=0.2,
                          title="leaky_relu_input_grad")


@register_case("gan.smooth_leaky_relu")
def smooth_leaky_case():
    r = _rng()
    x = r.standard_normal((3, 5))
    return [check_function(F.smooth_leaky_relu, F.smooth_leaky_relu_backward, [x], names=["x"],
                           title="smooth_leaky_relu"),
            check_function(F.smooth_leaky_relu_input_grad, F.smooth_leaky_relu_input_grad_backward,
                           [r.standard_normal((3, 5)), x], names=["dy", "x"], slope=0.1, beta=3.0,
                           title="smooth_leaky_relu_input_grad")]


@register_case("gan.gradient_penalty")
def penalty_pair_case():
    r = _rng()
    return [check_function(F.gradient_penalty, F.gradient_penalty_backward, [r.standard_normal((4, 2, 3, 3)) * s],
                           names=["g"], lam=10.0, title=f"gradient_penalty[‖g‖ ~ {s}]") for s in (0.2, 1.0)]


def small_critic(kind, activation, rng, scale=1.0):
    """A float64 critic for the penalty checks: conv (1×8×8 → 3×4×4 → 4×2×2 → 1) or MLP (12 → 7 → 5 → 1)."""
    from ... import nn
    from ...models.gan import SmoothLeakyReLU
    act = (lambda: nn.LeakyReLU(0.2)) if activation == "leaky" else (lambda: SmoothLeakyReLU(0.2, beta=3.0))
    kw = dict(rng=rng, dtype=np.float64)
    if kind == "conv":
        critic = nn.Sequential(nn.Conv2d(1, 3, 4, 2, 1, **kw), act(), nn.Conv2d(3, 4, 3, 2, 1, **kw), act(),
                               nn.Flatten(), nn.Linear(16, 1, **kw))
    else:
        critic = nn.Sequential(nn.Flatten(), nn.Linear(12, 7, **kw), act(), nn.Linear(7, 5, **kw), act(),
                               nn.Linear(5, 1, **kw))
    for p in critic.parameters():
        p.data *= scale
    return critic


def _penalty_case(kind, activation):
    def run():
        from ...models.wgan import GradientPenalty
        r = _rng()
        critic = small_critic(kind, activation, r, scale=2.0)  # ‖∂D/∂x‖ of order 1: a non-trivial penalty
        x_hat = _off_kink(r, (3, 1, 8, 8) if kind == "conv" else (4, 3, 4))
        report = check_module(GradientPenalty(critic, lam=10.0), [x_hat])
        report.title = f"gradient penalty wrt x̂ and θ [{kind} critic, {activation}]"
        return report
    return run


for _kind in ("conv", "mlp"):
    for _act in ("leaky", "smooth"):
        register_case(f"gan.penalty[{_kind},{_act}]")(_penalty_case(_kind, _act))


def tiny_gan(rng):
    """A float64 generator (latent 3, 2 channels) and discriminator (2 channels) for the checks."""
    from ...models.gan import Discriminator, Generator
    G = Generator(latent_dim=3, channels=2, rng=rng, dtype=np.float64)
    D = Discriminator(channels=2, rng=rng, dtype=np.float64)
    for m in (G, D):  # larger weights than DCGAN's N(0, 0.02²): gradients well above round-off
        for p in m.parameters():
            p.data *= 10.0 if p.data.ndim > 1 else 1.0
    return G, D


@register_case("gan.generator")
def generator_case():
    r = _rng()
    G, _ = tiny_gan(r)
    report = check_module(G, [r.standard_normal((3, 3))], fast=True)
    report.title = "Generator (training mode)"
    return report


@register_case("gan.discriminator")
def discriminator_case():
    from ...models.gan import Critic
    r = _rng()
    _, D = tiny_gan(r)
    reports = [check_module(D, [r.standard_normal((3, 1, 28, 28))], fast=True),
               check_module(Critic(2, rng=r, dtype=np.float64), [r.standard_normal((2, 1, 28, 28))], fast=True)]
    reports[0].title, reports[1].title = "Discriminator (batch norm, training mode)", "Critic (no norm)"
    return reports


class GeneratorThroughD(Module):
    """L_G(z) as a module of G's parameters only (D is held outside the registered children), its
    backward the library's ``generator_grads``: the check that the gradient through D is right."""

    def __init__(self, G, D, loss):
        super().__init__()
        self.G, self._held, self.loss = G, {"D": D}, loss

    def forward(self, z):
        from ...models.gan import generator_loss
        with no_grad():
            value, _ = generator_loss(self._held["D"](self.G(z)), self.loss)
        self.push(z)
        return np.array(value)

    def to(self, device):
        """G's parameters, and D's held outside the children."""
        self._held["D"].to(device)
        return super().to(device)

    def backward(self, dL):
        from ...models.gan import generator_grads
        z = self.pop()
        generator_grads(self.G, self._held["D"], z, loss=self.loss)  # adds ∂L_G/∂θ_G for dL = 1
        for p in self.G.parameters():
            p.grad *= dL
        return None


def _through_d_case(loss):
    def run():
        r = _rng()
        G, D = tiny_gan(r)
        report = check_module(GeneratorThroughD(G, D, loss), [r.standard_normal((3, 3))], check_inputs=False, fast=True)
        report.title = f"generator loss through D [{loss}]"
        return report
    return run


for _loss in ("nonsaturating", "minimax", "wasserstein"):
    register_case(f"gan.generator_through_d[{_loss}]")(_through_d_case(_loss))
