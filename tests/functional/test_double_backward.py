"""Double backward (chapters/31-wgan.md): each layer's input gradient as an op equals what the
layer's ordinary backward computes, and its own backward passes central differences; PyTorch's
create_graph=True double backward agrees where torch is installed."""
import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.gradcheck import assert_gradients
from scratchnet.gradcheck.cases import gan as cases

CONV_OPTS = [dict(stride=1, padding=0), dict(stride=2, padding=1), dict(stride=2, padding=0, dilation=2),
             dict(stride=3, padding=1), dict(stride=1, padding=1, groups=2)]


@pytest.mark.parametrize("opts", CONV_OPTS, ids=str)
@pytest.mark.parametrize("hw", [(8, 8), (9, 7)])
def test_conv2d_input_grad_is_conv2d_backwards_dx(rng, opts, hw):
    x = rng.standard_normal((2, 4) + hw)
    w = rng.standard_normal((6, 4 // opts.get("groups", 1), 3, 3))
    y, cache = F.conv2d(x, w, rng.standard_normal(6), **opts)
    dy = rng.standard_normal(y.shape)
    dx, _ = F.conv2d_input_grad(dy, w, input_size=hw, **opts)
    np.testing.assert_allclose(dx, F.conv2d_backward(dy, cache)[0], atol=1e-12)
    assert_gradients(F.conv2d_input_grad, F.conv2d_input_grad_backward, [dy, w], input_size=hw, **opts)


@pytest.mark.parametrize("lead", [(5,), (2, 3)])
def test_linear_input_grad_is_linear_backwards_dx(rng, lead):
    x, w = rng.standard_normal(lead + (4,)), rng.standard_normal((4, 3))
    y, cache = F.linear(x, w, rng.standard_normal(3))
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(F.linear_input_grad(dy, w)[0], F.linear_backward(dy, cache)[0], atol=1e-12)
    assert_gradients(F.linear_input_grad, F.linear_input_grad_backward, [dy, w])


@pytest.mark.parametrize("slope", [0.01, 0.2])
def test_leaky_relu_input_grad(rng, slope):
    x = cases._off_kink(rng, (4, 5))
    dy = rng.standard_normal((4, 5))
    _, cache = F.leaky_relu(x, slope=slope)
    np.testing.assert_allclose(F.leaky_relu_input_grad(dy, x, slope=slope)[0], F.leaky_relu_backward(dy, cache))
    assert_gradients(F.leaky_relu_input_grad, F.leaky_relu_input_grad_backward, [dy, x], slope=slope)
    _, dx = F.leaky_relu_input_grad_backward(dy, F.leaky_relu_input_grad(dy, x, slope=slope)[1])
    assert not dx.any()  # piecewise constant slope: no second-order term


@pytest.mark.parametrize("slope,beta", [(0.2, 5.0), (0.01, 1.0)])
def test_smooth_leaky_relu_and_its_input_grad(rng, slope, beta):
    x, dy = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    assert_gradients(F.smooth_leaky_relu, F.smooth_leaky_relu_backward, [x], slope=slope, beta=beta)
    _, cache = F.smooth_leaky_relu(x, slope=slope, beta=beta)
    dx, _ = F.smooth_leaky_relu_input_grad(dy, x, slope=slope, beta=beta)
    np.testing.assert_allclose(dx, F.smooth_leaky_relu_backward(dy, cache))
    assert_gradients(F.smooth_leaky_relu_input_grad, F.smooth_leaky_relu_input_grad_backward, [dy, x],
                     slope=slope, beta=beta)


def test_smooth_leaky_relu_tends_to_leaky_relu(rng):
    x = cases._off_kink(rng, (50,))
    np.testing.assert_allclose(F.smooth_leaky_relu(x, slope=0.2, beta=1e4)[0], F.leaky_relu(x, slope=0.2)[0], atol=1e-4)


@pytest.mark.parametrize("scale", [0.1, 1.0, 3.0])
def test_gradient_penalty_pair(rng, scale):
    g = scale * rng.standard_normal((5, 1, 3, 3))
    P, _ = F.gradient_penalty(g, lam=10.0)
    norms = np.sqrt((g.reshape(5, -1) ** 2).sum(1))
    np.testing.assert_allclose(P, 10.0 * ((norms - 1) ** 2).mean())
    assert_gradients(F.gradient_penalty, F.gradient_penalty_backward, [g], lam=10.0)


def test_gradient_penalty_is_zero_at_unit_norm():
    g = np.zeros((3, 4))
    g[:, 1] = 1.0
    P, cache = F.gradient_penalty(g)
    assert abs(P) < 1e-10 and np.abs(F.gradient_penalty_backward(1.0, cache)).max() < 1e-10


def test_float32_stays_float32(rng):
    dy, w = rng.standard_normal((2, 3, 4, 4)).astype(np.float32), rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    dx, cache = F.conv2d_input_grad(dy, w, input_size=(6, 6))
    assert dx.dtype == np.float32
    assert all(g.dtype == np.float32 for g in F.conv2d_input_grad_backward(dx, cache))
    P, c = F.gradient_penalty(dx)
    assert P.dtype == np.float32 and F.gradient_penalty_backward(1.0, c).dtype == np.float32


def test_wrong_inputs_name_the_op(rng):
    with pytest.raises(ValueError, match="conv2d_input_grad: a 8×8 input gives a 8×8 output"):
        F.conv2d_input_grad(np.ones((1, 2, 4, 4)), np.ones((2, 1, 3, 3)), input_size=(8, 8), padding=1)
    with pytest.raises(ValueError, match="linear_input_grad: dy has 3 features"):
        F.linear_input_grad(np.ones((2, 3)), np.ones((4, 5)))
    with pytest.raises(ValueError, match="leaky_relu_input_grad: dy shape"):
        F.leaky_relu_input_grad(np.ones((2, 3)), np.ones((3, 2)))
    with pytest.raises(TypeError, match="linear_input_grad: all float inputs must share one dtype"):
        F.linear_input_grad(np.ones((2, 3), np.float32), np.ones((4, 3)))


def test_torch_double_backward_parity(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 9, 9))
    w = rng.standard_normal((4, 3, 4, 4))
    dy = rng.standard_normal((2, 4, 3, 3))
    ddx = rng.standard_normal(x.shape)
    tx, tw, tdy = (torch.tensor(a, requires_grad=True) for a in (x, w, dy))
    y = torch.nn.functional.conv2d(tx, tw, stride=2, padding=0)
    (gx,) = torch.autograd.grad(y, tx, tdy, create_graph=True)
    gdy, gw = torch.autograd.grad(gx, (tdy, tw), torch.tensor(ddx))
    dx, cache = F.conv2d_input_grad(dy, w, input_size=(9, 9), stride=2)
    np.testing.assert_allclose(dx, gx.detach().numpy(), atol=1e-10)
    ddy, dw = F.conv2d_input_grad_backward(ddx, cache)
    np.testing.assert_allclose(ddy, gdy.numpy(), atol=1e-10)
    np.testing.assert_allclose(dw, gw.numpy(), atol=1e-10)
