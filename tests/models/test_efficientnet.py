"""EfficientNet: the SE block's two-path backward, MBConv (expansion 1 and > 1, stride 1 with the skip and a
fixed drop-path mask, stride 2, BN train/eval), the whole network, compound scaling and its rounding, the
resize of the data preparation, overfitting one batch, wrong inputs and PyTorch parity."""
import numpy as np
import pytest

from scratchnet.gradcheck import assert_module_gradients
from scratchnet.models.efficientnet import (
    EfficientNet,
    MBConv,
    SqueezeExcite,
    compound_multipliers,
    make_prepare,
    resize_bilinear,
    round_channels,
    round_repeats,
    scaled_resolution,
)
from scratchnet.nn import CrossEntropyLoss
from scratchnet.testing import overfit_batch, settle_eval, torch_twin

TINY_STAGES = ((1, 4, 1, 2, 3), (3, 4, 2, 1, 3), (3, 8, 1, 2, 5))


@pytest.mark.parametrize("shape", [(3, 6, 4, 5), (2, 5, 3, 3)])
def test_squeeze_excite_gradcheck(rng, shape):
    se = SqueezeExcite(shape[1], 2, rng=rng, dtype=np.float64)
    assert_module_gradients(se, rng.standard_normal(shape))


def test_squeeze_excite_two_paths(rng):
    """dx = dy·s + (the gate path): with the gate path removed, dx equals dy·s exactly."""
    se = SqueezeExcite(4, 2, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 4, 3, 3))
    y = se(x)
    s = (y / x)[:, :, 0, 0]  # the gate, per sample and channel
    dy = rng.standard_normal(y.shape)
    dx = se.backward(dy)
    p = x.mean(axis=(2, 3))
    z = p @ se.reduce.weight.data + se.reduce.bias.data
    e = (z / (1 + np.exp(-z))) @ se.expand.weight.data + se.expand.bias.data
    np.testing.assert_allclose(s, 1 / (1 + np.exp(-e)), rtol=1e-12)
    gate_path = dx - dy * s[:, :, None, None]
    assert np.abs(gate_path).max() > 1e-6  # the gate path is really there ...
    np.testing.assert_allclose(gate_path, np.broadcast_to(gate_path.mean(axis=(2, 3), keepdims=True), x.shape),
                               atol=1e-12)  # ... and flat over each map


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("cin,cout,k,stride,t", [
    (4, 4, 3, 1, 1),  # expansion 1, skip
    (4, 4, 3, 1, 4),  # expansion 4, skip
    (4, 6, 5, 2, 4),  # expansion 4, stride 2, 5×5
    (4, 6, 3, 2, 1),  # expansion 1, stride 2
    (3, 5, 3, 1, 2),  # stride 1, channels change: no skip
])
def test_mbconv_gradcheck(rng, cin, cout, k, stride, t, training):
    blk = MBConv(cin, cout, k, stride, t, drop_rate=0.5, rng=rng, dtype=np.float64)
    assert blk.skip == (stride == 1 and cin == cout)
    assert (blk.expand is None) == (t == 1)
    if not training:
        settle_eval(blk, rng)
    kwargs = {"drop_mask": np.array([2.0, 0.0, 2.0])} if (blk.skip and training) else None
    # entry by entry for the expansion-4 skip block in training mode; random directions elsewhere
    fast = not (training and t == 4 and blk.skip)
    assert_module_gradients(blk, rng.standard_normal((3, cin, 5, 6)), fast=fast, forward_kwargs=kwargs)


def test_mbconv_without_se(rng):
    blk = MBConv(4, 4, 3, 1, 2, se_ratio=0, rng=rng, dtype=np.float64)
    assert blk.se is None
    assert_module_gradients(blk, rng.standard_normal((2, 4, 4, 4)), fast=True)


def test_drop_path_mask_and_skip(rng):
    """A dropped sample's branch output is zero (y = x there) and df = 0; eval mode keeps every branch."""
    blk = MBConv(4, 4, 3, 1, 2, drop_rate=0.5, rng=rng, dtype=np.float64)
    x = rng.standard_normal((3, 4, 4, 4))
    y = blk(x, drop_mask=np.array([2.0, 0.0, 2.0]))
    np.testing.assert_array_equal(y[1], x[1])
    blk.backward(np.ones_like(y))
    blk.eval()
    assert not np.allclose(blk(x)[1], x[1])


def test_tiny_model_gradcheck(rng):
    net = EfficientNet(3, stages=TINY_STAGES, stem=4, head=8, dropout=0.0, drop_connect=0.0, rng=rng,
                       dtype=np.float64)
    assert_module_gradients(net, rng.standard_normal((2, 1, 8, 8)), fast=True)


def test_compound_scaling_and_rounding():
    d, w, r = compound_multipliers(1)
    assert (d, w, r) == (1.2, 1.1, 1.15)
    assert abs(1.2 * 1.1 ** 2 * 1.15 ** 2 - 1.92) < 0.01  # α·β²·γ² ≈ 2
    assert round_channels(16, 1.1) == 16 and round_channels(24, 1.1) == 28 and round_channels(24, 1.1, 8) == 24
    assert round_channels(40, 1.21) == 48 and round_channels(3, 1.0) == 4
    assert [round_repeats(n, 1.2) for n in (1, 2, 3)] == [2, 3, 4]
    assert round_repeats(2, 2.5000000000000004) == 5 and round_repeats(2, 1.0) == 2
    assert [scaled_resolution(compound_multipliers(p)[2]) for p in (0, 1, 2)] == [28, 32, 37]
    nets = [EfficientNet.from_phi(p, rng=0) for p in (0, 1, 2)]
    assert [n.resolution for n in nets] == [28, 32, 37]
    assert [len(n.blocks) for n in nets] == [6, 10, 10]
    assert nets[0].num_parameters() < nets[1].num_parameters() < nets[2].num_parameters()
    wide = EfficientNet(width=1.7, rng=0)
    assert [b.out_channels for b in wide.blocks] == [28, 40, 40, 68, 68, 108]
    assert len(EfficientNet(depth=2.5, rng=0).blocks) == 16


def test_stochastic_depth_rises_linearly():
    net = EfficientNet(drop_connect=0.3, rng=0)
    rates = [b.drop_rate for b in net.blocks]
    assert rates[0] == 0 and np.all(np.diff(rates) > 0) and rates[-1] < 0.3


def test_resize_bilinear_matches_definition(rng):
    x = rng.standard_normal((2, 1, 4, 4)).astype(np.float32)
    assert resize_bilinear(x, 4) is x
    y = resize_bilinear(x, 8)
    assert y.shape == (2, 1, 8, 8) and y.dtype == np.float32
    # the output pixel (1, 1) sits at source coordinate 0.25 in both axes (align_corners=False)
    expect = (0.75 * 0.75 * x[..., 0, 0] + 0.75 * 0.25 * (x[..., 0, 1] + x[..., 1, 0]) + 0.0625 * x[..., 1, 1])
    np.testing.assert_allclose(y[..., 1, 1], expect, rtol=1e-5)
    np.testing.assert_allclose(resize_bilinear(np.ones((1, 1, 28, 28)), 37), 1.0)
    xb, yb = make_prepare(32, augment_data=False)(np.zeros((3, 28, 28), np.uint8), np.arange(3), True)
    assert xb.shape == (3, 1, 32, 32)


def test_overfit_one_batch(rng):
    net = EfficientNet(stages=TINY_STAGES, stem=8, head=32, dropout=0.0, drop_connect=0.0, rng=rng)
    x = rng.standard_normal((16, 1, 12, 12)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    assert overfit_batch(net, CrossEntropyLoss(), x, y, steps=60, lr=1e-2) < 0.05


def test_wrong_inputs(rng):
    with pytest.raises(ValueError, match=r"SqueezeExcite: expected input \(N, 4, H, W\)"):
        SqueezeExcite(4, 2, rng=rng)(np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"MBConv: expected input \(N, 4, H, W\)"):
        MBConv(4, 4, rng=rng)(np.zeros((2, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"EfficientNet: expected input \(N, 1, H, W\)"):
        EfficientNet(rng=0)(np.zeros((2, 3, 28, 28), np.float32))
    blk = MBConv(4, 4, 3, 1, 2, drop_rate=0.2, rng=rng)
    with pytest.raises(ValueError, match="drop_path: mask must have shape"):
        blk(np.zeros((2, 4, 4, 4), np.float32), drop_mask=np.ones(3, np.float32))
    y = blk(np.zeros((2, 4, 4, 4), np.float32))
    with pytest.raises(ValueError, match="expected"):
        blk.backward(np.zeros((2, 4, 4, 5), np.float32))
    blk.backward(np.zeros_like(y))  # the failed backward left the caches in place
    with pytest.raises(RuntimeError, match="no cached forward pass"):
        blk.backward(np.zeros_like(y))


def _torch_twin(torch, blk, mask=None):
    """A torch.nn MBConv built from the same layers (Conv2d, BatchNorm2d, SiLU, Linear), weights copied."""
    expand = torch_twin(blk.expand) if blk.expand is not None else torch.nn.Identity()
    depthwise, project = torch_twin(blk.depthwise), torch_twin(blk.project)
    reduce, grow = torch_twin(blk.se.reduce), torch_twin(blk.se.expand)  # Linear twins transpose the weight

    def forward(x):
        v = depthwise(expand(x))
        s = torch.sigmoid(grow(torch.nn.functional.silu(reduce(v.mean(dim=(2, 3))))))
        f = project(v * s[:, :, None, None])
        return x + f * torch.tensor(mask)[:, None, None, None] if blk.skip else f

    return forward, [expand, depthwise, reduce, grow, project]


@pytest.mark.parametrize("cin,cout,stride,t", [(4, 4, 1, 4), (4, 6, 2, 4), (4, 4, 1, 1)])
def test_mbconv_matches_pytorch(rng, cin, cout, stride, t):
    torch = pytest.importorskip("torch")
    blk = MBConv(cin, cout, 3, stride, t, drop_rate=0.5, rng=rng, dtype=np.float64)
    mask = np.array([2.0, 0.0, 2.0])
    forward, mods = _torch_twin(torch, blk, mask)
    x = rng.standard_normal((3, cin, 7, 7))
    xt = torch.tensor(x, requires_grad=True)
    yt = forward(xt)
    y = blk(x, drop_mask=mask if blk.skip else None)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(blk.backward(dy), xt.grad.numpy(), rtol=1e-8, atol=1e-10)
    ours = {n: p.grad for n, p in blk.named_parameters()}
    np.testing.assert_allclose(ours["depthwise.layers.0.weight"], mods[1][0].weight.grad.numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ours["se.reduce.weight"], mods[2].weight.grad.numpy().T, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ours["se.expand.bias"], mods[3].bias.grad.numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ours["project.layers.0.weight"], mods[4][0].weight.grad.numpy(), rtol=1e-8, atol=1e-10)
    if t != 1:
        np.testing.assert_allclose(ours["expand.layers.1.weight"], mods[0][1].weight.grad.numpy(), rtol=1e-8,
                                   atol=1e-10)


def test_squeeze_excite_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    se = SqueezeExcite(6, 3, rng=rng, dtype=np.float64)
    w1, b1, w2, b2 = (torch.tensor(p.data, requires_grad=True) for p in (se.reduce.weight, se.reduce.bias,
                                                                          se.expand.weight, se.expand.bias))
    x = rng.standard_normal((2, 6, 5, 4))
    xt = torch.tensor(x, requires_grad=True)
    s = torch.sigmoid(torch.nn.functional.silu(xt.mean(dim=(2, 3)) @ w1 + b1) @ w2 + b2)
    yt = xt * s[:, :, None, None]
    y = se(x)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12)
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(se.backward(dy), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    for p, t in [(se.reduce.weight, w1), (se.reduce.bias, b1), (se.expand.weight, w2), (se.expand.bias, b2)]:
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-10, atol=1e-12)
