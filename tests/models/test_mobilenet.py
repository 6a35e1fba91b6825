"""MobileNet and MobileNetV2: hand-written block backward (depthwise-separable, standard twin,
inverted residual with and without shortcut, BN train/eval), the whole networks, the cost counts
(1/C_out + 1/K², α and ρ), overfitting one batch, wrong inputs and PyTorch parity."""
import numpy as np
import pytest

from scratchnet.gradcheck import assert_module_gradients
from scratchnet.models.mobilenet import (
    DepthwiseSeparable,
    InvertedResidual,
    MobileNet,
    MobileNetV2,
    StandardConvBlock,
    scale_resolution,
    separable_cost_ratio,
    width_channels,
)
from scratchnet.models.summary import summary
from scratchnet.nn import CrossEntropyLoss
from scratchnet.testing import overfit_batch, settle_eval, torch_twin


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("cin,cout,stride,shape", [(3, 5, 1, (2, 6, 5)), (4, 4, 2, (3, 7, 6)), (2, 6, 2, (2, 4, 4))])
def test_separable_block_gradcheck(rng, cin, cout, stride, shape, training):
    blk = DepthwiseSeparable(cin, cout, stride, rng=rng, dtype=np.float64)
    x = rng.standard_normal((shape[0], cin) + shape[1:])
    if not training:
        settle_eval(blk, rng)
    # every entry for the first configuration in training mode; random directions elsewhere
    assert_module_gradients(blk, x, fast=not (training and cin == 3))


@pytest.mark.parametrize("training", [True, False])
def test_standard_block_gradcheck(rng, training):
    blk = StandardConvBlock(3, 4, 2, rng=rng, dtype=np.float64)
    if not training:
        settle_eval(blk, rng)
    assert_module_gradients(blk, rng.standard_normal((2, 3, 6, 5)), fast=True)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("cin,cout,stride,t", [
    (4, 4, 1, 3),   # identity shortcut
    (3, 5, 2, 2),   # stride 2 and channels change: no shortcut
    (4, 6, 1, 2),   # channels change only: no shortcut
    (4, 4, 1, 1),   # t = 1: no expansion conv
])
def test_inverted_residual_gradcheck(rng, cin, cout, stride, t, training):
    blk = InvertedResidual(cin, cout, stride, t, rng=rng, dtype=np.float64)
    assert blk.use_shortcut == (stride == 1 and cin == cout)
    x = rng.standard_normal((2, cin, 6, 5))
    if not training:
        settle_eval(blk, rng)
    assert_module_gradients(blk, x, fast=not (training and t == 3))


def test_inverted_residual_is_linear_after_projection(rng):
    """No activation after the projection: negative outputs survive, and dy reaches x unchanged
    through the shortcut (dx − dx_branch = dy)."""
    blk = InvertedResidual(4, 4, 1, 2, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 4, 5, 5))
    y = blk(x)
    assert (y - x < 0).any()  # f = BN(W_p u) takes negative values
    dy = rng.standard_normal(y.shape)
    dx = blk.backward(dy)
    blk.use_shortcut = False
    blk(x)
    np.testing.assert_allclose(dx - blk.backward(dy), dy, atol=1e-12)


def test_tiny_networks_gradcheck(rng):
    net = MobileNet(3, alpha=0.125, blocks=((16, 2), (16, 1)), stem=16, rng=rng, dtype=np.float64)
    assert_module_gradients(net, rng.standard_normal((3, 1, 8, 8)), fast=True)
    net2 = MobileNetV2(3, alpha=0.25, stages=((1, 16, 1, 2), (2, 16, 2, 1)), head=16, rng=rng, dtype=np.float64)
    assert any(b.use_shortcut for b in net2.blocks)
    assert_module_gradients(net2, rng.standard_normal((3, 1, 8, 8)), fast=True)


def test_cost_counts_match_the_formula():
    """The summary's mult-adds of each block equal H'W'·C_in·(9 + C_out); the ratio to the full conv
    is 1/C_out + 1/9, and the whole network needs ≤ 1/8 of its standard twin's mult-adds."""
    mob, std = MobileNet(alpha=0.75, rng=0), MobileNet(alpha=0.75, separable=False, rng=0)
    s_mob, s_std = summary(mob, (1, 28, 28)), summary(std, (1, 28, 28))
    hw = 28
    for i, blk in enumerate(mob.blocks):
        hw = (hw - 1) // blk.stride + 1
        sep = sum(r["macs"] for r in s_mob.rows if r["name"].startswith(f"blocks.{i}."))
        full = sum(r["macs"] for r in s_std.rows if r["name"].startswith(f"blocks.{i}."))
        assert sep == hw * hw * blk.in_channels * (9 + blk.out_channels)
        assert full == hw * hw * blk.in_channels * blk.out_channels * 9
        assert sep / full == pytest.approx(separable_cost_ratio(blk.out_channels))
    assert s_mob.total_macs <= s_std.total_macs / 8
    assert [b.out_channels for b in mob.blocks] == [48, 96, 192, 192, 192]


def test_width_and_resolution_multipliers():
    assert width_channels(64, 0.75) == 48 and width_channels(16, 0.25) == 8
    s1 = summary(MobileNet(alpha=1.0, rng=0), (1, 28, 28)).total_macs
    s_half = summary(MobileNet(alpha=0.5, rng=0), (1, 28, 28)).total_macs
    assert 0.25 < s_half / s1 < 0.3  # ≈ α² (the pointwise convs dominate)
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    for mode in ("resize", "crop"):
        xr = scale_resolution(x, 4 / 7, mode=mode)
        assert xr.shape == (2, 1, 16, 16) and xr.dtype == np.float32
    np.testing.assert_allclose(scale_resolution(x, 1.0), x, atol=1e-6)  # ρ = 1 is the identity
    np.testing.assert_array_equal(scale_resolution(x, 4 / 7, mode="crop"), x[:, :, 6:22, 6:22])
    net = MobileNet(alpha=0.5, rng=0)
    m28 = summary(net, (1, 28, 28)).total_macs
    m20 = summary(net, (1, 20, 20)).total_macs
    assert m20 / m28 == pytest.approx((20 / 28) ** 2, rel=0.05)
    with pytest.raises(ValueError, match="scale_resolution"):
        scale_resolution(x, 0)
    with pytest.raises(ValueError, match="crop"):
        scale_resolution(x, 1.5, mode="crop")


def test_shapes_and_wrong_inputs(rng):
    net = MobileNet(alpha=0.25, rng=rng)
    assert net(np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 10)
    assert net(np.zeros((2, 1, 20, 20), np.float32)).shape == (2, 10)  # any resolution (global pooling)
    v2 = MobileNetV2(alpha=0.25, expansion=2, rng=rng)
    assert v2(np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 10)
    with pytest.raises(ValueError, match=r"MobileNet: expected input \(N, 1, H, W\)"):
        net(np.zeros((2, 3, 28, 28), np.float32))
    with pytest.raises(ValueError, match=r"DepthwiseSeparable: expected input \(N, 3, H, W\)"):
        DepthwiseSeparable(3, 4)(np.zeros((2, 4, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"InvertedResidual: expected input \(N, 4, H, W\)"):
        InvertedResidual(4, 4)(np.zeros((2, 4, 5), np.float32))
    with pytest.raises(ValueError, match="expansion"):
        InvertedResidual(4, 4, expansion=0)
    blk = DepthwiseSeparable(3, 4, rng=rng)
    y = blk(np.zeros((2, 3, 5, 5), np.float32))
    with pytest.raises(ValueError, match="expected"):
        blk.backward(np.zeros((2, 4, 5, 6), np.float32))
    assert y.shape == (2, 4, 5, 5)


def test_overfit_one_batch(rng):
    x = rng.standard_normal((16, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    net = MobileNet(alpha=0.5, blocks=((32, 2), (64, 1)), rng=rng)
    assert overfit_batch(net, CrossEntropyLoss(), x, y, steps=80, lr=1e-2) < 0.05
    net2 = MobileNetV2(alpha=0.5, expansion=2, stages=((1, 16, 1, 2), (None, 24, 2, 1)), head=32, rng=rng)
    assert overfit_batch(net2, CrossEntropyLoss(), x, y, steps=60, lr=1e-2) < 0.05



@pytest.mark.parametrize("kind", ["separable", "ir-shortcut", "ir-stride2"])
def test_blocks_match_pytorch(rng, kind):
    """The same weights in PyTorch's Conv2d(groups=C)/BatchNorm2d/ReLU(6): output, dx and every dW."""
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    if kind == "separable":
        blk, cin = DepthwiseSeparable(3, 5, 2, rng=rng, dtype=np.float64), 3
        twin = tnn.Sequential(torch_twin(blk.dw), torch_twin(blk.bn1), tnn.ReLU(),
                              torch_twin(blk.pw), torch_twin(blk.bn2), tnn.ReLU())
        pairs = [(blk.dw, twin[0]), (blk.bn1, twin[1]), (blk.pw, twin[3]), (blk.bn2, twin[4])]
    else:
        cin, cout, stride = (4, 4, 1) if kind == "ir-shortcut" else (3, 5, 2)
        blk = InvertedResidual(cin, cout, stride, 3, rng=rng, dtype=np.float64)
        twin = tnn.Sequential(torch_twin(blk.expand), torch_twin(blk.bn0), tnn.ReLU6(),
                              torch_twin(blk.dw), torch_twin(blk.bn1), tnn.ReLU6(),
                              torch_twin(blk.project), torch_twin(blk.bn2))
        pairs = [(blk.expand, twin[0]), (blk.bn0, twin[1]), (blk.dw, twin[3]), (blk.bn1, twin[4]),
                 (blk.project, twin[6]), (blk.bn2, twin[7])]
    x = rng.standard_normal((3, cin, 7, 7))
    tx = torch.tensor(x, requires_grad=True)
    ty = twin(tx) + (tx if getattr(blk, "use_shortcut", False) else 0)
    y = blk(x)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-9, atol=1e-10)
    dy = rng.standard_normal(y.shape)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(blk.backward(dy), tx.grad.numpy(), rtol=1e-8, atol=1e-10)
    for mine, theirs in pairs:
        np.testing.assert_allclose(mine.weight.grad, theirs.weight.grad.numpy(), rtol=1e-8, atol=1e-10)
