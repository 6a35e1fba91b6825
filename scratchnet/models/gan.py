"""DCGAN (Radford, Metz & Chintala 2016) for 28×28 images: the generator, the discriminator (also
the WGAN critic), and the two players' gradient steps, the generator's through the discriminator.

Legend: N batch, Z latent size, C base channel count, 1×28×28 images scaled to [−1, 1].

Generator: z (N, Z) → Linear → BN → ReLU → (2C, 7, 7) → ConvT 4×4/2 → BN → ReLU → (C, 14, 14)
→ ConvT 4×4/2 → tanh → (1, 28, 28). Discriminator: Conv 4×4/2 (no BN on the input layer) →
LeakyReLU 0.2 → (C, 14, 14) → Conv 4×4/2 → BN → LeakyReLU 0.2 → (2C, 7, 7) → Linear → (N, 1) logit.
Strided and transposed convolutions instead of pooling, as the DCGAN recipe has it.
The WGAN critic is the same network without batch norm (the gradient penalty is per sample).
See chapters/30-dcgan.md.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .._random import get_rng
from ..functional.double_backward import smooth_leaky_relu, smooth_leaky_relu_backward
from ..nn.conv import Conv2d, ConvTranspose2d
from ..nn.layers import BatchNorm1d, BatchNorm2d, Flatten, LeakyReLU, Linear, ReLU, Reshape, Tanh, _Stateless
from ..nn.module import Sequential, no_grad

__all__ = ["Generator", "Discriminator", "Critic", "SmoothLeakyReLU", "dcgan_init", "sample_latent", "generate",
           "discriminator_grads", "generator_loss", "generator_grads", "GENERATOR_LOSSES"]


class SmoothLeakyReLU(_Stateless):
    """slope·x + (1 − slope)·softplus(βx)/β: a leaky ReLU with a rounded kink (see F.smooth_leaky_relu)."""
    _fn, _bwd = staticmethod(smooth_leaky_relu), staticmethod(smooth_leaky_relu_backward)

    def __init__(self, slope=0.2, beta=5.0):
        super().__init__(slope=slope, beta=beta)


def dcgan_init(model, rng=None):
    """DCGAN's initialisation: conv and linear weights N(0, 0.02²), BN γ ~ N(1, 0.02²), biases and β zero."""
    rng = get_rng(rng)
    for m in model.modules():
        if isinstance(m, (Conv2d, ConvTranspose2d, Linear)):
            m.weight.data[...] = rng.normal(0.0, 0.02, m.weight.shape)
            if m.bias is not None:
                m.bias.data[...] = 0
        elif isinstance(m, (BatchNorm1d, BatchNorm2d)) and m.weight is not None:
            m.weight.data[...] = rng.normal(1.0, 0.02, m.weight.shape)
            m.bias.data[...] = 0
    return model


def sample_latent(n, latent_dim, rng=None, dtype=np.float32):
    """z ~ N(0, I): (n, latent_dim)."""
    return get_rng(rng).standard_normal((n, latent_dim)).astype(dtype)


def generate(G, n=None, *, z=None, rng=None, batch_size=500):
    """n samples (n, 1, 28, 28) from G in evaluation mode (batch norm uses its running statistics),
    from ``z`` when given, else from fresh N(0, I) draws; G is left in the mode it was in."""
    z = sample_latent(n, G.latent_dim, rng, G.layers[0].weight.dtype) if z is None else z
    was_training = G.training
    G.eval()
    with no_grad():
        out = np.concatenate([G(z[i:i + batch_size]) for i in range(0, len(z), batch_size)])
    G.train(was_training)
    return out


# start-generator
class Generator(Sequential):
    """z (N, Z) → images (N, 1, 28, 28) in [−1, 1]: linear projection, two 4×4 stride-2 transposed convs."""

    def __init__(self, latent_dim=64, channels=32, *, out_channels=1, rng=None, dtype=np.float32):
        rng = get_rng(rng)
        kw = dict(rng=rng, dtype=dtype)
        c2 = 2 * channels
        self.latent_dim = latent_dim
        super().__init__(
            Linear(latent_dim, c2 * 7 * 7, **kw), BatchNorm1d(c2 * 7 * 7, dtype=dtype), ReLU(),  # project
            Reshape(-1, c2, 7, 7),  # (N, 2C, 7, 7)
            ConvTranspose2d(c2, channels, 4, 2, 1, **kw), BatchNorm2d(channels, dtype=dtype), ReLU(),  # (N, C, 14, 14)
            ConvTranspose2d(channels, out_channels, 4, 2, 1, **kw), Tanh(),  # (N, 1, 28, 28)
        )
        dcgan_init(self, rng)

    def forward(self, z):
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"Generator: expected z of shape (N, {self.latent_dim}), got {tuple(z.shape)}")
        return super().forward(z)
# end-generator


# start-discriminator
class Discriminator(Sequential):
    """x (N, 1, 28, 28) → one logit per image (N, 1): two 4×4 stride-2 convs, then a linear layer.

    norm=True puts batch norm on the second conv (never on the input layer); activation "leaky"
    (LeakyReLU) or "smooth" (SmoothLeakyReLU, for the double-backward tests).
    """

    def __init__(self, channels=32, *, in_channels=1, norm=True, slope=0.2, activation="leaky", rng=None,
                 dtype=np.float32):
        if activation not in ("leaky", "smooth"):
            raise ValueError(f"Discriminator: activation must be 'leaky' or 'smooth', got {activation!r}")
        rng = get_rng(rng)
        kw = dict(rng=rng, dtype=dtype)
        c2 = 2 * channels
        act = (lambda: LeakyReLU(slope)) if activation == "leaky" else (lambda: SmoothLeakyReLU(slope))
        self.in_channels = in_channels
        super().__init__(
            Conv2d(in_channels, channels, 4, 2, 1, **kw), act(),  # (N, C, 14, 14), no BN on the input layer
            Conv2d(channels, c2, 4, 2, 1, bias=not norm, **kw),
            *([BatchNorm2d(c2, dtype=dtype)] if norm else []), act(),  # (N, 2C, 7, 7)
            Flatten(), Linear(c2 * 7 * 7, 1, **kw),  # (N, 1) logit / critic value
        )
        dcgan_init(self, rng)

    def forward(self, x):
        if x.ndim != 4 or x.shape[1:] != (self.in_channels, 28, 28):
            raise ValueError(f"{type(self).__name__}: expected images (N, {self.in_channels}, 28, 28), "
                             f"got shape {tuple(x.shape)}")
        return super().forward(x)
# end-discriminator


class Critic(Discriminator):
    """The WGAN critic: the discriminator without batch norm; its output is a score, not a logit."""

    def __init__(self, channels=32, *, in_channels=1, slope=0.2, activation="leaky", rng=None, dtype=np.float32):
        super().__init__(channels, in_channels=in_channels, norm=False, slope=slope, activation=activation,
                         rng=rng, dtype=dtype)


# start-discriminator-grads
def discriminator_grads(D, real, fake):
    """Add ∂L_D/∂θ_D into D's grads for L_D = BCE(D(real), 1) + BCE(D(fake), 0); returns
    (L_D, mean σ(D(real)), mean σ(D(fake))). ``fake`` is an array: no gradient goes to the generator."""
    logit_r = D(real)  # (N, 1); two forward passes: BN normalises the real and fake batches separately
    logit_f = D(fake)  # (N, 1)
    loss_r, c_r = F.binary_cross_entropy_with_logits(logit_r, np.ones_like(logit_r))
    loss_f, c_f = F.binary_cross_entropy_with_logits(logit_f, np.zeros_like(logit_f))
    D.backward(F.binary_cross_entropy_with_logits_backward(1.0, c_f))  # the caches are a stack: fake first
    D.backward(F.binary_cross_entropy_with_logits_backward(1.0, c_r))
    return float(loss_r + loss_f), float(F.stable_sigmoid(logit_r).mean()), float(F.stable_sigmoid(logit_f).mean())
# end-discriminator-grads


GENERATOR_LOSSES = ("nonsaturating", "minimax", "wasserstein")


# start-generator-grads
def generator_loss(logit, loss="nonsaturating"):
    """L_G of the discriminator's outputs ℓ = D(G(z)) (N, 1) and ∂L_G/∂ℓ: (value, dlogit).

    nonsaturating: BCE(ℓ, 1) = mean softplus(−ℓ);  minimax: −BCE(ℓ, 0) = −mean softplus(ℓ);
    wasserstein: −mean ℓ.
    """
    if loss not in GENERATOR_LOSSES:
        raise ValueError(f"generator_loss: loss must be one of {GENERATOR_LOSSES}, got {loss!r}")
    if loss == "wasserstein":
        return float(-logit.mean()), np.full_like(logit, -1.0 / logit.size)  # ∂(−mean ℓ)/∂ℓ
    target = np.ones_like(logit) if loss == "nonsaturating" else np.zeros_like(logit)
    value, cache = F.binary_cross_entropy_with_logits(logit, target)
    dlogit = F.binary_cross_entropy_with_logits_backward(1.0, cache)  # (σ(ℓ) − t) / N
    sign = 1.0 if loss == "nonsaturating" else -1.0  # minimax: G MAXIMISES D's loss on fakes
    return sign * float(value), sign * dlogit


def generator_grads(G, D, z, *, loss="nonsaturating"):
    """Add ∂L_G/∂θ_G into G's grads, backpropagating THROUGH D; returns L_G.

    D's backward adds into D's grads as any backward does; those are NOT a step for D (its loss is
    another function) and are zeroed here. See chapters/30-dcgan.md#through-d.
    """
    fake = G(z)  # (N, 1, 28, 28)
    logit = D(fake)  # (N, 1)
    value, dlogit = generator_loss(logit, loss)
    dfake = D.backward(dlogit)  # through the discriminator: dfake = J_D(fake)ᵀ dlogit
    D.zero_grad()  # D's parameter gradients from this pass are discarded
    G.backward(dfake)  # into the generator's parameters
    return value
# end-generator-grads
