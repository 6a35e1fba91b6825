"""DCGAN and WGAN(-GP) (chapters 30 and 31): shapes, the registered gradchecks (the penalty's gradient
wrt every critic parameter and wrt x̂ — the central test — and the generator's gradient through D),
PyTorch parity of the penalty gradient, overfitting a fixed batch, and clear errors."""
import numpy as np
import pytest

import scratchnet as sn
from scratchnet import nn
from scratchnet.gradcheck.cases import gan as cases
from scratchnet.models.gan import (
    Critic,
    Discriminator,
    Generator,
    discriminator_grads,
    generate,
    generator_grads,
    generator_loss,
)
from scratchnet.models.wgan import (
    GradientPenalty,
    clip_weights,
    critic_input_grad,
    gradient_penalty_grads,
    interpolate,
    wgan_critic_grads,
)
from scratchnet.optim import Adam


@pytest.mark.parametrize("name", [
    "gan.linear_input_grad", "gan.conv2d_input_grad", "gan.leaky_relu_input_grad", "gan.smooth_leaky_relu",
    "gan.gradient_penalty", "gan.penalty[conv,leaky]", "gan.penalty[conv,smooth]", "gan.penalty[mlp,leaky]",
    "gan.penalty[mlp,smooth]", "gan.generator", "gan.discriminator", "gan.generator_through_d[nonsaturating]",
    "gan.generator_through_d[minimax]", "gan.generator_through_d[wasserstein]"])
def test_registered_gradchecks(name):
    from scratchnet.gradcheck.registry import CASES
    reports = CASES[name]()
    for report in reports if isinstance(reports, list) else [reports]:
        assert report.ok, str(report)


def test_shapes_and_parameter_counts():
    G, D, C = Generator(rng=0), Discriminator(rng=1), Critic(rng=2)
    z = np.random.default_rng(0).standard_normal((5, 64)).astype(np.float32)
    x = G(z)
    assert x.shape == (5, 1, 28, 28) and x.dtype == np.float32 and np.abs(x).max() <= 1
    assert D(x).shape == (5, 1) and C(x).shape == (5, 1)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in C.modules())
    assert not isinstance(D.layers[1], nn.BatchNorm2d)  # no batch norm on the input layer
    assert G.num_parameters() == 243489 and D.num_parameters() == 36577 and C.num_parameters() == 36513


def test_piecewise_linear_critic_has_no_input_gradient_and_no_bias_gradient(rng):
    critic = cases.small_critic("conv", "leaky", rng, scale=2.0)
    for p in critic.parameters():
        p.grad[...] = 0
    P, dx, norms = gradient_penalty_grads(critic, rng.standard_normal((3, 1, 8, 8)))
    assert P > 0 and not dx.any()
    assert not critic.layers[0].bias.grad.any() and critic.layers[0].weight.grad.any()


def test_critic_input_grad_equals_the_modules_backward(rng):
    critic = Critic(4, rng=0, dtype=np.float64)
    x = rng.standard_normal((3, 1, 28, 28))
    d, g, _ = critic_input_grad(critic, x)
    np.testing.assert_allclose(d, critic(x))
    np.testing.assert_allclose(g, critic.backward(np.ones((3, 1))), atol=1e-12)


@pytest.mark.parametrize("activation", ["leaky", "smooth"])
def test_penalty_gradient_matches_torch(rng, activation):
    torch = pytest.importorskip("torch")
    critic = cases.small_critic("conv", activation, rng, scale=2.0)
    x = rng.standard_normal((4, 1, 8, 8))
    critic.zero_grad()
    P, dx, _ = gradient_penalty_grads(critic, x, lam=10.0)
    conv1, conv2, lin = critic.layers[0], critic.layers[2], critic.layers[5]
    t = {k: torch.tensor(v.data, requires_grad=True) for k, v in critic.named_parameters()}
    tx = torch.tensor(x, requires_grad=True)

    def act(h):
        if activation == "leaky":
            return torch.nn.functional.leaky_relu(h, 0.2)
        return 0.2 * h + 0.8 * torch.nn.functional.softplus(3.0 * h) / 3.0

    h = act(torch.nn.functional.conv2d(tx, t["layers.0.weight"], t["layers.0.bias"], stride=2, padding=1))
    h = act(torch.nn.functional.conv2d(h, t["layers.2.weight"], t["layers.2.bias"], stride=2, padding=1))
    d = h.flatten(1) @ t["layers.5.weight"] + t["layers.5.bias"]
    (g,) = torch.autograd.grad(d.sum(), tx, create_graph=True)
    tP = 10.0 * ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()
    grads = torch.autograd.grad(tP, [tx] + list(t.values()), allow_unused=True)
    np.testing.assert_allclose(P, tP.item(), rtol=1e-10)
    np.testing.assert_allclose(dx, 0 if grads[0] is None else grads[0].numpy(), atol=1e-10)
    for (name, p), tg in zip(critic.named_parameters(), grads[1:]):
        np.testing.assert_allclose(p.grad, 0 if tg is None else tg.numpy(), atol=1e-10, err_msg=name)
    assert conv1 and conv2 and lin


def test_generator_pass_leaves_the_discriminator_untouched(rng):
    G, D = Generator(8, 4, rng=0), Discriminator(4, rng=1)
    before = [p.data.copy() for p in D.parameters()]
    generator_grads(G, D, rng.standard_normal((6, 8)).astype(np.float32))
    assert all(not p.grad.any() for p in D.parameters())
    assert all(np.array_equal(a, p.data) for a, p in zip(before, D.parameters()))
    assert any(p.grad.any() for p in G.parameters())


def test_nonsaturating_loss_does_not_saturate():
    logit = np.full((4, 1), -8.0)  # D is sure the fakes are fake
    _, d_ns = generator_loss(logit, "nonsaturating")
    _, d_mm = generator_loss(logit, "minimax")
    assert np.abs(d_ns).min() > 100 * np.abs(d_mm).max()


def test_discriminator_overfits_a_fixed_batch(rng):
    D = Discriminator(4, rng=0)
    real = np.tanh(rng.standard_normal((8, 1, 28, 28))).astype(np.float32)
    fake = np.tanh(rng.standard_normal((8, 1, 28, 28)) - 0.5).astype(np.float32)
    opt = Adam(D.parameters(), lr=2e-3, betas=(0.5, 0.999))
    for _ in range(30):
        opt.zero_grad()
        loss, p_real, p_fake = discriminator_grads(D, real, fake)
        opt.step()
    assert loss < 0.05 and p_real > 0.97 and p_fake < 0.03


def test_wgan_gp_critic_separates_a_fixed_batch_with_bounded_gradients(rng):
    C = Critic(4, rng=0)
    real = np.tanh(rng.standard_normal((8, 1, 28, 28)) + 0.5).astype(np.float32)
    fake = np.tanh(rng.standard_normal((8, 1, 28, 28)) - 0.5).astype(np.float32)
    opt = Adam(C.parameters(), lr=2e-3, betas=(0.5, 0.9))
    for _ in range(25):
        opt.zero_grad()
        loss, W, P = wgan_critic_grads(C, real, fake, lam=10.0, rng=rng)
        opt.step()
    _, _, norms = gradient_penalty_grads(C, interpolate(real, fake, rng))
    C.zero_grad()
    assert W > 5.0 and 0.5 < norms.mean() < 3.0  # separated, with ‖∂D/∂x̂‖ held near 1


def test_weight_clipping(rng):
    C = Critic(4, rng=0)
    for p in C.parameters():
        p.data += 1.0
    clip_weights(C, 0.01)
    assert max(np.abs(p.data).max() for p in C.parameters()) <= 0.01


def test_penalty_module_float32_and_errors(rng):
    C = Critic(4, rng=0)
    P = GradientPenalty(C)(rng.standard_normal((2, 1, 28, 28)).astype(np.float32))
    assert P.dtype == np.float32
    bad = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2 * 26 * 26, 1))
    with pytest.raises(ValueError, match="gradient penalty: no double backward for a BatchNorm2d"):
        gradient_penalty_grads(bad, np.ones((2, 1, 28, 28), np.float32))
    with pytest.raises(ValueError, match=r"Generator: expected z of shape \(N, 64\)"):
        Generator(rng=0)(np.ones((2, 10), np.float32))
    with pytest.raises(ValueError, match=r"Critic: expected images \(N, 1, 28, 28\)"):
        C(np.ones((2, 1, 32, 32), np.float32))
    with pytest.raises(ValueError, match="generator_loss: loss must be one of"):
        generator_loss(np.ones((2, 1)), "hinge")
    with sn.no_grad():
        assert Generator(rng=0)(np.zeros((2, 64), np.float32)).shape == (2, 1, 28, 28)


def test_generate_uses_running_statistics_and_restores_the_mode(rng):
    G = Generator(8, 4, rng=0)
    z = rng.standard_normal((5, 8)).astype(np.float32)
    a = generate(G, z=z, batch_size=2)
    assert a.shape == (5, 1, 28, 28) and G.training
    np.testing.assert_allclose(a[:2], generate(G, z=z[:2]), atol=1e-6)  # eval mode: no batch coupling
    assert not any(m.caches for m in G.modules())
    assert generate(G, 3, rng=1).shape == (3, 1, 28, 28)


def test_interpolates_lie_between_real_and_fake(rng):
    real, fake = np.ones((50, 1, 2, 2)), np.zeros((50, 1, 2, 2))
    x_hat = interpolate(real, fake, rng)
    eps = x_hat[:, 0, 0, 0]
    assert np.all((eps >= 0) & (eps <= 1)) and np.allclose(x_hat, eps[:, None, None, None])
