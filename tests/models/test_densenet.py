"""DenseNet: hand-written dense-block backward (the sum over consumers) in the naive and shared
memory layouts, dense layer (bottleneck on/off), transition, the whole network, overfitting one
batch, the memory measurement, wrong inputs and PyTorch parity."""
import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.gradcheck import assert_module_gradients
from scratchnet.models.densenet import DenseBlock, DenseLayer, DenseNet, Transition, cache_bytes
from scratchnet.nn import CrossEntropyLoss, no_grad
from scratchnet.testing import overfit_batch, settle_eval, torch_twin


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("cin,k,bottleneck,shape", [(4, 2, True, (2, 5, 6)), (4, 3, False, (3, 4, 4)),
                                                     (2, 2, True, (3, 3, 5))])
def test_dense_layer_gradcheck(rng, cin, k, bottleneck, shape, training):
    layer = DenseLayer(cin, k, bottleneck=bottleneck, rng=rng, dtype=np.float64)
    assert len(layer.head.layers) == (3 if bottleneck else 2)
    x = rng.standard_normal((shape[0], cin) + shape[1:])
    if not training:
        settle_eval(layer, rng)
    assert layer(x).shape == (shape[0], k) + shape[1:]
    assert_module_gradients(layer, x, fast=False)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("memory", ["naive", "shared"])
@pytest.mark.parametrize("c0,L,k,bottleneck", [(3, 3, 2, True), (2, 2, 3, False)])
def test_dense_block_gradcheck(rng, memory, c0, L, k, bottleneck, training):
    blk = DenseBlock(c0, L, k, bottleneck=bottleneck, memory=memory, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, c0, 4, 5))
    if not training:
        settle_eval(blk, rng)
    assert blk(x).shape == (2, c0 + L * k, 4, 5)
    # every entry for the naive bottleneck block in training mode; random directions elsewhere
    assert_module_gradients(blk, x, fast=not (training and memory == "naive" and bottleneck))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_naive_and_shared_are_identical(rng, dtype):
    """Same weights, same input: the outputs, dx, every parameter gradient and BN's running statistics
    agree exactly (the shared layout recomputes its heads without touching the running statistics)."""
    a = DenseBlock(5, 4, 3, memory="naive", rng=np.random.default_rng(7), dtype=dtype)
    b = DenseBlock(5, 4, 3, memory="shared", rng=np.random.default_rng(7), dtype=dtype)
    x = rng.standard_normal((3, 5, 6, 6)).astype(dtype)
    ya, yb = a(x), b(x)
    np.testing.assert_array_equal(ya, yb)
    dy = rng.standard_normal(ya.shape).astype(dtype)
    np.testing.assert_array_equal(a.backward(dy), b.backward(dy))
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        np.testing.assert_array_equal(p.grad, q.grad)
    for u, v in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        np.testing.assert_array_equal(u, v)
    assert all(not m.caches for m in a.modules()) and all(not m.caches for m in b.modules())


def test_gradient_is_the_sum_over_consumers(rng):
    """dx_0 = (the output's slice of dy) + Σ_l (layer l's input gradient, restricted to x_0's channels)."""
    blk = DenseBlock(3, 3, 2, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 3, 4, 4))
    y = blk(x)
    dy = rng.standard_normal(y.shape)
    dx = blk.backward(dy)
    # redo the walk by hand from the library's layers, keeping each consumer's share of dx_0
    feats, shares = [x], []
    for layer in blk.layers:
        feats.append(layer(np.concatenate(feats, axis=1)))
    dfeats = [dy[:, :3], dy[:, 3:5], dy[:, 5:7], dy[:, 7:9]]
    shares.append(dfeats[0])
    for i in reversed(range(3)):
        dinp = blk.layers[i].backward(dfeats[i + 1])
        bounds = [0, 3] + [3 + 2 * j for j in range(1, i + 1)]
        for j, (a, z) in enumerate(zip(bounds[:-1], bounds[1:])):
            dfeats[j] = dfeats[j] + dinp[:, a:z]
        shares.append(dinp[:, :3])
    assert len(shares) == 4  # x_0 has four consumers: the output and the three layers
    np.testing.assert_allclose(dx, sum(shares), atol=1e-12)


@pytest.mark.parametrize("training", [True, False])
def test_transition_gradcheck(rng, training):
    tr = Transition(7, 0.5, rng=rng, dtype=np.float64)
    assert tr.out_channels == 3  # ⌊0.5 · 7⌋
    x = rng.standard_normal((2, 7, 6, 5))
    if not training:
        settle_eval(tr, rng)
    assert tr(x).shape == (2, 3, 3, 2)
    assert_module_gradients(tr, x, fast=False)


@pytest.mark.parametrize("memory", ["naive", "shared"])
def test_tiny_densenet_gradcheck(rng, memory):
    net = DenseNet((2, 2), growth_rate=3, num_classes=3, stem_pool=True, memory=memory, rng=rng, dtype=np.float64)
    assert [b.out_channels for b in net.blocks] == [12, 12] and net.transitions[0].out_channels == 6
    assert_module_gradients(net, rng.standard_normal((2, 1, 8, 8)), fast=True)


def test_densenet_shapes_and_switch(rng):
    net = DenseNet((4, 8, 8), 12, stem_pool=True, rng=rng)
    with no_grad():
        assert net(np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 10)
    assert [(b.in_channels, b.out_channels) for b in net.blocks] == [(24, 72), (36, 132), (66, 162)]
    assert net.num_parameters() < 1_000_000
    x = rng.standard_normal((3, 1, 12, 12)).astype(np.float32)
    net.eval()
    with no_grad():
        y_naive = net(x)
        y_shared = net.set_memory("shared")(x)
    np.testing.assert_array_equal(y_naive, y_shared)
    assert all(not m.caches for m in net.modules())  # no_grad caches nothing, in either layout


def test_memory_naive_quadratic_shared_linear(rng):
    """The bytes held for backward: second differences over L are zero for the shared layout, positive
    for the naive one (each layer's caches grow with the C_l channels it reads)."""
    x = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    held = {}
    for memory in ("naive", "shared"):
        row = []
        for L in (2, 4, 6, 8):
            blk = DenseBlock(4, L, 4, memory=memory, rng=0)
            blk(x)
            row.append(cache_bytes(blk, exclude=[x]))
        held[memory] = np.diff(row, 2)
    assert np.all(held["shared"] == 0)
    assert np.all(held["naive"] > 0)


def test_overfit_one_batch(rng):
    net = DenseNet((2, 2), growth_rate=6, stem_pool=False, rng=rng)
    x = rng.standard_normal((16, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    assert overfit_batch(net, CrossEntropyLoss(), x, y, steps=60, lr=1e-2) < 0.05


def test_wrong_inputs(rng):
    with pytest.raises(ValueError, match="memory must be 'naive' or 'shared'"):
        DenseBlock(3, 2, 2, memory="fast")
    with pytest.raises(ValueError, match="num_layers"):
        DenseBlock(3, 0, 2)
    with pytest.raises(ValueError, match="compression"):
        Transition(8, 1.5)
    with pytest.raises(ValueError, match=r"DenseBlock\(3, L=2, k=2\): expected input \(N, 3, H, W\)"):
        DenseBlock(3, 2, 2)(np.zeros((2, 4, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"DenseLayer\(5, 2\): expected input \(N, 5, H, W\)"):
        DenseLayer(5, 2)(np.zeros((2, 4, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"Transition\(8\): expected input"):
        Transition(8)(np.zeros((2, 8, 4), np.float32))
    with pytest.raises(ValueError, match=r"DenseNet: expected input \(N, 1, H, W\)"):
        DenseNet((2,), 4)(np.zeros((2, 3, 8, 8), np.float32))
    for memory in ("naive", "shared"):
        blk = DenseBlock(3, 2, 2, memory=memory, rng=rng)
        y = blk(np.zeros((2, 3, 4, 4), np.float32))
        with pytest.raises(ValueError, match="expected upstream gradient"):
            blk.backward(np.zeros((2, 6, 4, 4), np.float32))
        assert blk.backward(np.ones_like(y)).shape == (2, 3, 4, 4)  # the failed call left the caches in place
        with pytest.raises(RuntimeError, match="no cached forward"):
            blk.backward(np.ones_like(y))


@pytest.mark.parametrize("bottleneck", [True, False])
def test_block_matches_pytorch(rng, bottleneck):
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    blk = DenseBlock(4, 3, 3, bottleneck=bottleneck, rng=rng, dtype=np.float64)
    x = rng.standard_normal((3, 4, 6, 6))
    layers = [tnn.Sequential(torch_twin(layer.head), torch_twin(layer.tail)) for layer in blk.layers]
    xt = torch.tensor(x, requires_grad=True)
    feats = [xt]
    for layer in layers:  # the dense connectivity, written with torch.cat; autograd sums the consumers
        feats.append(layer(torch.cat(feats, 1)))
    yt = torch.cat(feats, 1)
    y = blk(x)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(blk.backward(dy), xt.grad.numpy(), rtol=1e-8, atol=1e-10)
    theirs = [p.grad.numpy() for layer in layers for p in layer.parameters()]
    for a, b in zip([p.grad for p in blk.parameters()], theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)
    ours_bn = [m for m in blk.modules() if hasattr(m, "running_var")]
    theirs_bn = [m for layer in layers for m in layer.modules() if isinstance(m, tnn.BatchNorm2d)]
    for a, b in zip(ours_bn, theirs_bn, strict=True):
        np.testing.assert_allclose(a.running_var, b.running_var.numpy(), rtol=1e-10)


def test_concat_gradient_is_a_split(rng):
    """The building block of the sum: F.concat_backward hands each input exactly its slice."""
    xs = [rng.standard_normal((2, c, 3, 3)) for c in (1, 2, 3)]
    y, cache = F.concat(xs, axis=1)
    dy = rng.standard_normal(y.shape)
    parts = F.concat_backward(dy, cache)
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), dy)
