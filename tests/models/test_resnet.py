"""ResNet: hand-written block backward (basic/bottleneck, identity/projection, BN train/eval),
the whole network, overfitting one batch, the gradient-norm probe and PyTorch parity."""
import numpy as np
import pytest

from scratchnet.gradcheck import assert_module_gradients
from scratchnet.models.resnet import (
    BasicBlock,
    Bottleneck,
    ResNet,
    block_grad_norms,
    conv_weight_grad_norms,
    resnet_depth_to_blocks,
)
from scratchnet.nn import CrossEntropyLoss
from scratchnet.testing import overfit_batch, settle_eval


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("cin,cout,stride,residual", [
    (3, 3, 1, True),    # identity shortcut
    (3, 4, 2, True),    # projection: channels and size change
    (3, 4, 1, True),    # projection: channels change only
    (3, 4, 2, False),   # plain block (no shortcut)
])
def test_basic_block_gradcheck(rng, cin, cout, stride, residual, training):
    blk = BasicBlock(cin, cout, stride, residual=residual, rng=rng, dtype=np.float64)
    x = rng.standard_normal((3, cin, 6, 5))
    if not training:
        settle_eval(blk, rng)
    expected = "none" if not residual else ("identity" if (cin == cout and stride == 1) else "projection")
    assert blk._kind() == expected
    # every entry for the identity block in training mode; random directions (fast) for the rest
    assert_module_gradients(blk, x, fast=not (training and expected == "identity"))


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("cin,mid,stride", [(8, 2, 1), (4, 2, 2)])
def test_bottleneck_gradcheck(rng, cin, mid, stride, training):
    blk = Bottleneck(cin, mid, stride, rng=rng, dtype=np.float64)
    assert blk.out_channels == 4 * mid
    x = rng.standard_normal((2, cin, 5, 6))
    if not training:
        settle_eval(blk, rng)
    assert_module_gradients(blk, x, fast=True)


@pytest.mark.parametrize("block,depth,residual", [("basic", 8, True), ("bottleneck", 11, True)])
def test_tiny_resnet_gradcheck(rng, block, depth, residual):
    net = ResNet(depth, num_classes=3, width=2, block=block, residual=residual, rng=rng, dtype=np.float64)
    x = rng.standard_normal((3, 1, 8, 8))
    assert_module_gradients(net, x, fast=True)


def test_identity_path_adds_upstream_gradient(rng):
    """dx = ds + F'(x)ᵀ ds: with the residual branch's gradient removed, dx equals ds exactly."""
    blk = BasicBlock(3, 3, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 3, 4, 4))
    y = blk(x)
    dy = rng.standard_normal(y.shape)
    ds = dy * (y > 0)
    dx = blk.backward(dy)
    blk(x)
    dx_branch = blk.branch.backward(blk.out_relu.backward(dy))
    np.testing.assert_allclose(dx - dx_branch, ds, atol=1e-12)


def test_depth_rules():
    assert resnet_depth_to_blocks(20) == 3 and resnet_depth_to_blocks(56) == 9
    assert resnet_depth_to_blocks(29, "bottleneck") == 3
    with pytest.raises(ValueError, match="6n \\+ 2"):
        ResNet(21)
    with pytest.raises(ValueError, match="basic' or 'bottleneck"):
        ResNet(20, block="wide")
    with pytest.raises(ValueError, match=r"ResNet: expected input \(N, 1, H, W\)"):
        ResNet(8, width=2)(np.zeros((2, 3, 8, 8), np.float32))


def test_layer_counts_and_shapes(rng):
    net = ResNet(20, width=4, rng=rng)
    convs = [p for n, p in net.named_parameters() if p.data.ndim == 4 and "shortcut" not in n]
    assert len(convs) + 1 == 20  # 19 convs on the main path + the classifier
    assert net(np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 10)
    assert [b.out_channels for b in net.blocks] == [4] * 3 + [8] * 3 + [16] * 3
    plain = ResNet(20, width=4, residual=False, rng=rng)
    assert all(b.shortcut is None for b in plain.blocks)


def test_grad_norm_probe(rng):
    x = rng.standard_normal((4, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, 4)
    for residual in (True, False):
        net = ResNet(14, width=2, residual=residual, rng=rng)
        norms = block_grad_norms(net, x, y, CrossEntropyLoss())
        assert len(norms) == len(net.blocks) and all(np.isfinite(norms))
        assert len(conv_weight_grad_norms(net)) == 13


def test_overfit_one_batch(rng):
    net = ResNet(8, width=4, rng=rng)
    x = rng.standard_normal((16, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    assert overfit_batch(net, CrossEntropyLoss(), x, y, steps=60, lr=1e-2) < 0.05


@pytest.mark.parametrize("kind", ["basic-identity", "basic-projection", "bottleneck-projection"])
def test_block_matches_pytorch(rng, kind):
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    if kind.startswith("basic"):
        cin, cout, stride = (4, 4, 1) if kind.endswith("identity") else (3, 6, 2)
        blk = BasicBlock(cin, cout, stride, rng=rng, dtype=np.float64)
    else:
        cin, stride = 4, 2
        blk = Bottleneck(cin, 2, stride, rng=rng, dtype=np.float64)
    x = rng.standard_normal((3, cin, 7, 7))

    def twin(seq):  # our Sequential of Conv2d/BatchNorm2d/ReLU → torch, weights copied
        layers = []
        for m in seq.layers:
            name = type(m).__name__
            if name == "Conv2d":
                c = tnn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, stride=m.opts["stride"],
                               padding=m.opts["padding"], bias=False).double()
                c.weight.data = torch.tensor(m.weight.data)
                layers.append(c)
            elif name == "BatchNorm2d":
                b = tnn.BatchNorm2d(m.num_features).double()
                b.weight.data, b.bias.data = torch.tensor(m.weight.data), torch.tensor(m.bias.data)
                layers.append(b)
            else:
                layers.append(tnn.ReLU())
        return tnn.Sequential(*layers)

    branch = twin(blk.branch)
    short = twin(blk.shortcut) if blk.shortcut != "identity" else tnn.Identity()
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.relu(branch(xt) + short(xt))
    y = blk(x)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    dx = blk.backward(dy)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-8, atol=1e-10)
    ours = [p.grad for n, p in blk.named_parameters() if n.startswith("branch")]
    theirs = [p.grad.numpy() for p in branch.parameters()]
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)
    if blk.shortcut != "identity":
        for a, b in zip([p.grad for n, p in blk.named_parameters() if n.startswith("shortcut")],
                        [p.grad.numpy() for p in short.parameters()], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)
    # running statistics follow PyTorch's update (unbiased variance, momentum 0.1)
    for ours_bn, t in zip([m for m in blk.branch.layers if hasattr(m, "running_var")],
                          [m for m in branch if isinstance(m, tnn.BatchNorm2d)]):
        np.testing.assert_allclose(ours_bn.running_var, t.running_var.numpy(), rtol=1e-10)
